"""EmotiVoice synthesis options; the defaults reproduce upstream's `inference_am_vocoder_joint` and travel in the
bundle."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import numpy as np

from ..errors import OptionsError
from ..options import ModelOptions

FAMILY = "emotivoice"
SPEED_RANGE = (0.25, 4.0)


def check_speed(speed) -> float:
    """`speed` as a float, or a one-line OptionsError unless it is a finite number in SPEED_RANGE: the options and
    the `acoustic` stage (which takes a bare speed) share this check."""
    if isinstance(speed, (bool, np.bool_)) or not isinstance(speed, Real):
        raise OptionsError(f"speed must be a number, not {type(speed).__name__} {speed!r}")
    if not math.isfinite(speed):
        raise OptionsError(f"speed must be a finite number, not {speed}")
    if not SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]:
        raise OptionsError(f"speed {speed} is outside {SPEED_RANGE[0]}–{SPEED_RANGE[1]}")
    return float(speed)


@dataclass(frozen=True)
class SynthesisOptions(ModelOptions):
    MODEL_DEFAULTS = ("speed", "sentence_pause", "max_sentence_chars", "vocoder_chunk_frames")

    # speech rate: the predicted durations (exp(d) − 1) are divided by it before rounding; 1 is upstream exactly
    speed: float = 1.0
    sentence_pause: float = 0.2  # seconds of silence between the sentences of a longer text (none before the first)
    max_sentence_chars: int = 120  # long sentences are cut at clause marks, then spaces, to stay under this
    vocoder_chunk_frames: int = 64  # mel frames per streamed chunk on onnxruntime (OpenVINO: its fixed windows)
    seed: int | None = None  # EmotiVoice is deterministic; accepted so every family takes --seed

    def __post_init__(self):
        super().__post_init__()
        check_speed(self.speed)
        if not 0 <= self.sentence_pause <= 5:
            raise OptionsError(f"sentence_pause {self.sentence_pause} is outside 0–5 s")
        if not 20 <= self.max_sentence_chars <= 400:
            raise OptionsError(f"max_sentence_chars {self.max_sentence_chars} is outside 20–400")
        if not 8 <= self.vocoder_chunk_frames <= 4096:
            raise OptionsError(f"vocoder_chunk_frames {self.vocoder_chunk_frames} is outside 8–4096")
