"""The speaker-verification trunk of GPT-SoVITS v2Pro / v2ProPlus: ERes2NetV2 (3D-Speaker), spec §4.7.

Input Kaldi fbank features `[B, T, 80]` (computed on the host, `edgevoice.gpt_sovits.spectrogram.kaldi_fbank`); output the
20480-wide embedding upstream feeds to SoVITS's `sv_emb`: the last fusion block's map `[B, C, F/8, T/8]` with
channels and frequency flattened, averaged over time (upstream's `forward3`; the pooling and `seg_1` head of
the file are unused). Sizes (stem width, blocks per stage) are read from the weights, so a smaller test model
works the same way; upstream's file has stem 64, blocks [3, 4, 6, 3], base width 24, scale 4, expansion 4.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch
from torch import nn

from ...checkpoints import MAX_CONFIG_COUNT, CheckpointError, built_on_meta

BASE_WIDTH, SCALE, EXPANSION = 24, 4, 4  # upstream builds ERes2NetV2(baseWidth=24, scale=4, expansion=4)
FBANK_BINS = 80


def sv_embedding_dim(stem: int) -> int:
    """Width of the embedding: the last stage's channels × the 80 fbank bins after three stride-2 stages."""
    return stem * 8 * EXPANSION * math.ceil(math.ceil(math.ceil(FBANK_BINS / 2) / 2) / 2)


def _clipped_relu(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x, 0.0, 20.0)  # upstream's "ReLU" is Hardtanh(0, 20)


class AFF(nn.Module):
    """Attentional feature fusion: out = x·w + y·(2 − w), w = 1 + tanh(local attention over [x; y])."""

    def __init__(self, channels: int, r: int = 4):
        super().__init__()
        inner = channels // r
        self.local_att = nn.Sequential(nn.Conv2d(2 * channels, inner, 1), nn.BatchNorm2d(inner), nn.SiLU(),
                                       nn.Conv2d(inner, channels, 1), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        weight = 1.0 + torch.tanh(self.local_att(torch.cat([x, y], dim=1)))
        return x * weight + y * (2.0 - weight)


class Res2Block(nn.Module):
    """1×1 conv to `width·scale`, hierarchical 3×3 convs over the `scale` splits (each split is added to — or, in
    the fused stages, AFF-fused with — the previous split's output), 1×1 conv out, shortcut, clipped ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int, fused: bool):
        super().__init__()
        width = int(math.floor(planes * BASE_WIDTH / 64.0))
        self.width = width
        self.conv1 = nn.Conv2d(in_planes, width * SCALE, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(width * SCALE)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1, bias=False) for _ in range(SCALE))
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(SCALE))
        self.fuse_models = nn.ModuleList(AFF(width) for _ in range(SCALE - 1)) if fused else None
        self.conv3 = nn.Conv2d(width * SCALE, planes * EXPANSION, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * EXPANSION)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes * EXPANSION:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes * EXPANSION, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes * EXPANSION))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        splits = torch.split(_clipped_relu(self.bn1(self.conv1(x))), self.width, dim=1)
        outputs = []
        for i, split in enumerate(splits):
            if i == 0:
                sp = split
            elif self.fuse_models is None:
                sp = sp + split
            else:
                sp = self.fuse_models[i - 1](sp, split)
            sp = _clipped_relu(self.bns[i](self.convs[i](sp)))
            outputs.append(sp)
        out = self.bn3(self.conv3(torch.cat(outputs, dim=1)))
        return _clipped_relu(out + self.shortcut(x))


class ERes2NetV2Trunk(nn.Module):
    def __init__(self, stem: int, blocks: list[int]):
        super().__init__()
        self.conv1 = nn.Conv2d(1, stem, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        in_planes = stem
        layers = []
        for stage, count in enumerate(blocks):
            planes = stem * 2 ** stage
            stage_blocks = []
            for i in range(count):
                stride = 2 if stage > 0 and i == 0 else 1
                stage_blocks.append(Res2Block(in_planes, planes, stride, fused=stage >= 2))
                in_planes = planes * EXPANSION
            layers.append(nn.Sequential(*stage_blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.layer3_ds = nn.Conv2d(stem * 4 * EXPANSION, stem * 8 * EXPANSION, 3, stride=2, padding=1, bias=False)
        self.fuse34 = AFF(stem * 8 * EXPANSION)
        self.embedding_dim = sv_embedding_dim(stem)
        self.eval()

    @classmethod
    def from_weights(cls, weights: dict[str, np.ndarray], source) -> "ERes2NetV2Trunk":
        if "conv1.weight" not in weights or "fuse34.local_att.0.weight" not in weights:
            raise CheckpointError(f"{source}: not an ERes2NetV2 speaker-verification checkpoint "
                                  "(no conv1 / fuse34 weights)")
        stem = int(weights["conv1.weight"].shape[0])
        blocks = []
        for stage in range(1, 5):
            found = {int(m.group(1)) for k in weights if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
            if not found:
                raise CheckpointError(f"{source}: ERes2NetV2 checkpoint has no layer{stage} weights")
            blocks.append(max(found) + 1)
        if not 1 <= stem <= MAX_CONFIG_COUNT or max(blocks) > MAX_CONFIG_COUNT:  # upstream's: 32 wide, 3-6 blocks
            raise CheckpointError(f"{source}: ERes2NetV2 checkpoint of {stem} stem channels and {blocks} blocks "
                                  "per stage: not a speaker-verification model this exporter can build")
        # shapes and names first, on torch's meta device: a zero-element tensor can claim any width at no cost, and
        # the real model would be built from it (gigabytes) before a shape was compared
        expected = built_on_meta(lambda: cls(stem, blocks), source, "ERes2NetV2").state_dict()
        used = {k: v for k, v in weights.items() if k in expected}
        # BatchNorm's step counters are training bookkeeping; files may or may not carry them
        missing = sorted(k for k in set(expected) - set(used) if not k.endswith("num_batches_tracked"))
        if missing:
            raise CheckpointError(f"{source}: ERes2NetV2 weights missing {missing[:5]}")
        wrong = [k for k, v in used.items() if tuple(expected[k].shape) != tuple(np.shape(v))]
        if wrong:
            raise CheckpointError(f"{source}: ERes2NetV2 weights have unexpected shapes: {wrong[:5]}")
        state = {k: torch.from_numpy(np.array(v, dtype=np.float32 if v.dtype.kind == "f" else np.int64))
                 for k, v in used.items()}
        model = cls(stem, blocks)
        model.load_state_dict(state, strict=False)
        return model.eval()

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        """fbank `[B, T, 80]` → embedding `[B, C·10]` (20480 for upstream's weights)."""
        x = fbank.transpose(1, 2).unsqueeze(1)  # [B, 1, 80, T]
        x = torch.relu(self.bn1(self.conv1(x)))  # the stem uses a plain ReLU
        out3 = self.layer3(self.layer2(self.layer1(x)))
        fused = self.fuse34(self.layer4(out3), self.layer3_ds(out3))
        return fused.flatten(1, 2).mean(-1)
