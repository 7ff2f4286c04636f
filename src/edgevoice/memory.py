"""What a synthesizer keeps of the memory it frees: glibc's malloc is asked to hand large freed blocks back; and
Python's cyclic garbage collector is paused inside token loops.

glibc serves blocks from 128 KiB up with their own mappings, returned to the system when freed, but each time such
a block is freed it raises that threshold to the block's size (up to 32 MiB); from then on blocks of that size
come from the heap and stay in the process after they are freed. Loading an onnxruntime graph frees its parsed
copy of the weights that way (tens of MB), so the limit rose at the first graph and every later large buffer
stayed: the block-INT8 decode step alone held 163 MiB of anonymous memory after loading instead of 114 (83 MB of
weights; full-size GPT-SoVITS, onnxruntime 1.32). Fixing the threshold at glibc's own starting value keeps large
blocks mapped; `benchmarks/startup_memory.py` has the effect on a whole synthesis.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from contextlib import contextmanager
from typing import Iterator

_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's default starting value, kept fixed
_done: bool | None = None


def hand_back_large_blocks() -> bool:
    """Fix glibc's mmap threshold at `MMAP_THRESHOLD_BYTES` once per process; True where that took effect (Linux
    with glibc), False elsewhere (other C libraries manage their own)."""
    global _done
    if _done is None:
        _done = False
        name = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
        try:
            libc = ctypes.CDLL(name) if name else None
            _done = bool(libc and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
        except (OSError, AttributeError):  # no such library, or one without mallopt (musl)
            _done = False
    return _done


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Python's cyclic collector off for the block (as it was after it). A token loop makes and drops a few dozen
    small arrays per token, which count towards the collector's thresholds; its collections then walk every
    object the process holds, after a decode step has evicted them all from the caches. Measured (full-size
    GPT-SoVITS INT8, 250 tokens, Zen 4): host work outside the step and the sampler 0.28-0.36 ms per token in some
    syntheses with the collector on, 0.05 ms with it paused. The loop makes no reference cycles (arrays, ints,
    tuples); whatever else does is collected after the block. Threads: the collector is enabled again by the
    block that found it enabled."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
