"""Exact output of a local sequence graph from calls at a few fixed lengths, without masks (shared; knows no family).

Why: OpenVINO prepares kernels and buffers for every new input length on its first run at it and keeps them for
good, so feeding a convolutional vocoder each sentence at its own length costs a preparation per sentence (for a
bf16 vocoder more than the call itself) and memory that grows with every new length
(benchmarks/emotivoice_shapes.py, benchmarks/long_running_memory.py). A graph whose every output frame depends only
on the input frames within `reach` of it (a HiFi-GAN: its convolutions see a few frames to each side) gives, for the
frames at least `reach` away from where a call's input was padded or cut, exactly what one call on the whole input
gives. So a sequence of any length is covered by calls
at a handful of lengths:

* up to `2·reach` frames: one call at the sequence's own length (both its edges are true edges, which no padded
  call gives: up to `2·reach` small shapes, each prepared once; ~11–27 MiB apiece for full-size EmotiVoice);
* up to the longest length: one call padded at the end to the smallest length that holds it, which yields every
  frame but the last `reach`, and one call on the last `2·reach` frames alone (its start is cut, its end is the true
  end), which yields those;
* longer: windows of the longest length, each keeping the frames `reach` away from its cut edges; the last ends at
  the sequence's end.

Graphs with a length mask (GPT-SoVITS' vocoder) pad without the tail call (`gpt_sovits/chunking.py`); graphs that
take the real length as an input and mask the rest (EmotiVoice's acoustic model, a transformer: nothing is local
there) are padded to `padded_length`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Call:
    """Input frames `[start, stop)`, padded at the end to `length`; the output of frames `[keep_start, keep_stop)`
    (absolute) is kept."""

    start: int
    stop: int
    length: int
    keep_start: int
    keep_stop: int


def fixed_shape_calls(frames: int, reach: int, lengths: tuple[int, ...]) -> list[Call]:
    """The calls that cover `frames` input frames at the lengths `lengths` (ascending, the first above `2·reach`),
    or at a length of at most `2·reach` for a short sequence. Each frame is kept from exactly one call, in order."""
    if frames < 1 or reach < 1 or not lengths or lengths[0] <= 2 * reach or list(lengths) != sorted(set(lengths)):
        raise ValueError(f"no fixed-shape plan for {frames} frames, reach {reach}, lengths {lengths}")
    tail = 2 * reach
    if frames <= tail or frames in lengths:
        return [Call(0, frames, frames, 0, frames)]
    longest = lengths[-1]
    if frames < longest:
        padded = next(length for length in lengths if length >= frames)
        return [Call(0, frames, padded, 0, frames - reach),
                Call(frames - tail, frames, tail, frames - reach, frames)]
    calls, kept = [], 0
    while kept < frames:
        start = max(0, kept - reach)
        if start + longest >= frames:  # the last window ends at the true end, reaching back as far as it must
            start = frames - longest
            calls.append(Call(start, frames, longest, kept, frames))
            break
        calls.append(Call(start, start + longest, longest, kept, start + longest - reach))
        kept = start + longest - reach
    return calls


def padded_length(length: int, smallest: int = 16) -> int:
    """The shortest of `smallest`, 1.5·`smallest`, 2·`smallest`, 3·`smallest`, 4·`smallest`, … (half-octave steps,
    without end) that holds `length`: a process meets two lengths per doubling, and pays at most half again the
    compute of the real length (~17 % more on average over evenly spread lengths)."""
    if length < 1 or smallest < 2 or smallest % 2:
        raise ValueError(f"no padded length for {length} (smallest {smallest})")
    size = smallest
    while True:
        if length <= size:
            return size
        if length <= size * 3 // 2:
            return size * 3 // 2
        size *= 2
