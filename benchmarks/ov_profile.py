"""What the profiling benchmarks share: OpenVINO's per-node counters (PERF_COUNT) summed by (node type, kernel),
and the best of a few timed calls of an infer request."""

from __future__ import annotations

import collections
import time


def by_kind(items) -> tuple[collections.Counter, collections.Counter]:
    """Profiling items of one inference → (ms per (node type, kernel), nodes per (node type, kernel))."""
    ms: collections.Counter = collections.Counter()
    count: collections.Counter = collections.Counter()
    for item in items:
        key = (item.node_type, item.exec_type)
        ms[key] += item.real_time.total_seconds() * 1000
        count[key] += 1
    return ms, count


def top_kinds(items, n: int) -> list[list]:
    """The `n` (node type, kernel) pairs that took the most time: `[node, kernel, count, ms]` each."""
    ms, count = by_kind(items)
    return [[node, kernel, count[(node, kernel)], total] for (node, kernel), total in ms.most_common(n)]


def best_call_s(request, inputs, warmup: int = 2, repeats: int = 3) -> float:
    """Seconds of the fastest of `repeats` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        request.infer(inputs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        request.infer(inputs)
        times.append(time.perf_counter() - start)
    return min(times)
