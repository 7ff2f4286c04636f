"""Time one GPT decode step in isolation for each given bundle (same cache contents, interleaved rounds, OpenVINO).

    python benchmarks/gpt_step_speed.py BUNDLE [BUNDLE ...] [--threads 2] [--filled 400] [--rounds 5]

Bundles with the stateful `gpt_decode` are timed through it (the cache is seeded with `--filled` positions and
grows by one per call, as in synthesis); others through `gpt_step` with the runtime's own host cache
(`HostKVCache`: buffers bound where the backend can, a fused step writing in place), seeded the same way.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from edgevoice.backends import OpenVINOBackend
from edgevoice.bundle import Bundle
from edgevoice.gpt_sovits.decode_cache import HostKVCache, StatefulCache


def random_caches(bundle: Bundle, filled: int) -> dict[str, np.ndarray]:
    gpt = bundle.manifest.model["gpt"]
    heads, head_dim = gpt["heads"], gpt["hidden"] // gpt["heads"]
    rng = np.random.default_rng(0)
    shape = (1, heads, filled, head_dim)
    return {f"{kind}.{i}": rng.standard_normal(shape).astype(np.float32)
            for kind in ("key", "value") for i in range(gpt["n_layer"])}


def step_timer(bundle: Bundle, backend: OpenVINOBackend, filled: int, calls: int):
    """A function that runs `calls` decode steps and returns the mean milliseconds per step."""
    if "gpt_decode" in bundle.manifest.graphs:
        session = backend.session(bundle, "gpt_decode")
        # what a prefill of `filled` positions would hand over
        prefill_out = {f"present_{name}": value for name, value in random_caches(bundle, filled).items()}
        prefill_out["logits"] = np.zeros((1, bundle.manifest.model["gpt"]["vocab_size"]), np.float32)
        states = bundle.graph("gpt_decode").states

        def run() -> float:
            cache = StatefulCache(session, prefill_out, states, max(filled - 100, 0))
            start = time.perf_counter()
            for _ in range(calls):
                cache.step(5)
            return 1000 * (time.perf_counter() - start) / calls

        return run, "gpt_decode", session.precision()
    session = backend.session(bundle, "gpt_step")
    prefill_out = {f"present_{name}": value for name, value in random_caches(bundle, filled).items()}
    prefill_out["logits"] = np.zeros((1, bundle.manifest.model["gpt"]["vocab_size"]), np.float32)

    def run() -> float:
        cache = HostKVCache(session, prefill_out, bundle.manifest.model["gpt"]["n_layer"],
                           max(filled - 100, 0))
        cache.step(5)  # the first call after seeding is not steady state
        start = time.perf_counter()
        for _ in range(calls):
            cache.step(5)
        return 1000 * (time.perf_counter() - start) / calls

    return run, "gpt_step", getattr(session, "precision", lambda: "onnxruntime")()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--filled", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    backend = OpenVINOBackend(threads=args.threads)
    bundles = [Bundle.load(path, verify=False) for path in args.bundles]
    timers = [step_timer(bundle, backend, args.filled, args.calls) for bundle in bundles]
    times: list[list[float]] = [[] for _ in bundles]
    for _ in range(args.rounds):
        for (run, _, _), samples in zip(timers, times):
            samples.append(run())
    base = statistics.median(times[0])
    print(f"GPT decode step, {args.filled} cached positions, {args.threads} threads, median of {args.rounds} rounds")
    for bundle, (_, graph, compiled), samples in zip(bundles, timers, times):
        median = statistics.median(samples)
        precision = bundle.graph(graph).precision
        print(f"  {graph:10s} {precision:5s} (compiled {compiled}) {median:6.1f} ms  "
              f"({base / median:.2f}× vs the first)  {bundle.path}")


if __name__ == "__main__":
    main()
