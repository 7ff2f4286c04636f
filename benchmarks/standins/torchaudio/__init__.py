"""A stand-in for torchaudio inside the environment `peers_speed.py` runs upstream GPT-SoVITS in: PyPI's torchaudio
wheels are CUDA builds that torch 2.13's CPU wheel cannot load. It offers what upstream's v2 inference path calls,
`load` and `transforms.Resample`, on soundfile and scipy; both touch only the reference clip."""

import numpy as np
import soundfile
import torch

from . import functional, transforms  # noqa: F401


def load(path):
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(data.T)), rate
