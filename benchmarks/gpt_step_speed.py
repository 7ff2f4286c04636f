"""Time one GPT decode step in isolation for each given bundle (same inputs, interleaved rounds, OpenVINO).

    python benchmarks/gpt_step_speed.py BUNDLE [BUNDLE ...] [--threads 2] [--filled 400] [--rounds 5]

The cache holds `--filled` positions in a buffer rounded up to the runtime's growth step, as during synthesis.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from edgevoice.backends import OpenVINOBackend
from edgevoice.bundle import Bundle


def step_feeds(bundle: Bundle, filled: int, growth: int = 128) -> dict[str, np.ndarray]:
    gpt = bundle.manifest.model["gpt"]
    heads, head_dim = gpt["heads"], gpt["hidden"] // gpt["heads"]
    capacity = -(-filled // growth) * growth
    rng = np.random.default_rng(0)
    mask = np.full((1, capacity), -np.inf, np.float32)
    mask[:, :filled] = 0
    feeds = {"token": np.array([[5]], np.int64), "position": np.array([filled - 100], np.int64), "past_mask": mask}
    for kind in ("key", "value"):
        for i in range(gpt["n_layer"]):
            feeds[f"past_{kind}.{i}"] = rng.standard_normal((1, heads, capacity, head_dim)).astype(np.float32)
    return feeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--filled", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    bundles = [Bundle.load(path, verify=False) for path in args.bundles]
    feeds = step_feeds(bundles[0], args.filled)
    backend = OpenVINOBackend(threads=args.threads)
    sessions = [backend.session(b, "gpt_step") for b in bundles]
    times: list[list[float]] = [[] for _ in bundles]
    for _ in range(args.rounds):
        for session, samples in zip(sessions, times):
            session.run(feeds)
            start = time.perf_counter()
            for _ in range(args.calls):
                session.run(feeds)
            samples.append(1000 * (time.perf_counter() - start) / args.calls)
    base = statistics.median(times[0])
    print(f"gpt_step, {args.filled} cached positions, {args.threads} threads, median of {args.rounds} rounds")
    for bundle, samples in zip(bundles, times):
        median = statistics.median(samples)
        precision = bundle.graph("gpt_step").precision
        print(f"  {precision:5s} {median:6.1f} ms  ({base / median:.2f}× vs the first)  {bundle.path}")


if __name__ == "__main__":
    main()
