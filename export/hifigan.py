"""What every HiFi-GAN generator shares, whatever family carries it (knows no family): how far it reaches.

Both GPT-SoVITS' and EmotiVoice's vocoders are upstream HiFi-GAN V1 generators (conv_pre, transposed-convolution
stages each followed by parallel resblocks, conv_post), configured from each checkpoint's own config. Their runtimes
cut a long input into windows (streamed chunks, fixed shapes) whose kept samples must equal one whole call's, which
holds when each window carries as many frames of context as one input frame reaches; that count is worked out here
from the configuration, so a model set with other kernels or rates gets its own, and written into the bundle.
"""

from __future__ import annotations

import math

import numpy as np

EDGE_KERNEL = 7  # conv_pre and conv_post in upstream's generator


def hifigan_reach_frames(resblock: str, resblock_kernel_sizes: list[int], resblock_dilation_sizes: list[list[int]],
                         upsample_rates: list[int], upsample_kernel_sizes: list[int]) -> int:
    """How many input frames to each side one output sample of the generator depends on, rounded up (an upper
    bound: the measured reach of upstream's EmotiVoice configuration is 12.4 frames, this gives 15)."""

    def block_reach(kernel: int, dilations: list[int]) -> int:  # in samples at the block's rate
        half = (int(kernel) - 1) // 2
        if str(resblock) == "1":  # a dilated then an undilated convolution per step
            return sum(half * int(d) + half for d in dilations)
        return sum(half * int(d) for d in dilations[:2])

    reach = float(EDGE_KERNEL // 2)  # conv_pre, at the frame rate
    rate = 1
    for factor, kernel in zip(upsample_rates, upsample_kernel_sizes):
        # a transposed convolution mixes ⌈k/u⌉ neighbouring inputs
        reach += math.ceil(int(kernel) / int(factor)) / rate
        rate *= int(factor)
        reach += max(block_reach(k, d) for k, d in zip(resblock_kernel_sizes, resblock_dilation_sizes)) / rate
    reach += (EDGE_KERNEL // 2) / rate  # conv_post
    return math.ceil(reach)


def measured_reach_frames(run, channels: int, per_frame: int, limit: int) -> int:
    """How many frames to each side one frame of a vocoder's input reaches in its output: the context a window
    needs for its kept samples to equal the whole decode's. `run(x)` maps `[1, channels, frames·per_frame]` to
    the audio samples; measured by moving one frame in the middle of random input and seeing which output frames
    change (a convolution's reach is exact: every sample inside it changes). `limit`: a reach known to be larger."""
    frames, middle = 2 * limit + 3, limit + 1
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((1, channels, frames * per_frame)).astype(np.float32)
    moved = hidden.copy()
    moved[:, :, middle * per_frame:(middle + 1) * per_frame] += 1.0
    before, after = run(hidden).reshape(-1), run(moved).reshape(-1)
    hop = before.size // frames
    changed = np.flatnonzero(before != after)
    if changed.size == 0:  # a vocoder that ignores its input (all-zero weights) reaches nothing
        return 0
    reach = max(middle - changed[0] // hop, changed[-1] // hop - middle)
    if changed[0] == 0 or changed[-1] == before.size - 1 or reach > limit:
        raise ValueError(f"the vocoder reaches further than {limit} frames")
    return int(reach)
