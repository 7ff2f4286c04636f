"""Where one stateful GPT decode step spends its time, per OpenVINO op type (PERF_COUNT), for each bundle.

    python benchmarks/decode_profile.py BUNDLE [BUNDLE ...] [--filled 400 ...] [--threads 2]
        [--kv-cache f32|f16|bf16|u8] [--rows 1 2 4 8] [--dynamic-quantization GROUP]

Each graph compiles with its bundle's OpenVINO options (KV cache precision, dynamic quantisation), as the runtime
does; `--kv-cache` overrides the cache precision. The cache is seeded with `--filled` random positions (what a prefill of that length hands over); a few warm-up
steps run, then the mean step time of `--steps` steps and the per-op-type times of the last one are printed.
Splits the step into weight-bound matrix products (FullyConnected) and cache-bound attention
(ScaledDotProductAttentionWithKVCache): only the first shrinks with weight-only INT8.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import openvino as ov

from edgevoice.backends import OpenVINOSession
from edgevoice.bundle import Bundle
from edgevoice.gpt_sovits.decode_cache import StatefulCache
from gpt_step_speed import random_caches
from ov_profile import by_kind


@dataclass(frozen=True)
class Setup:
    threads: int = 2
    steps: int = 10
    kv_cache: str | None = None  # None: the bundle's choice
    dynamic: str | None = None  # DYNAMIC_QUANTIZATION_GROUP_SIZE; None: the bundle's choice


def profile(path: str, filled: int, rows: int, setup: Setup) -> None:
    """One row: the one-row `gpt_decode`; more: the batched `gpt_batch_decode` with that many rows."""
    bundle = Bundle.load(path, verify=False)
    name = "gpt_decode" if rows == 1 else "gpt_batch_decode"
    graph = bundle.graph(name)
    config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_PRECISION_HINT": "f32",
              **graph.runtime_options.get("openvino", {}), "INFERENCE_NUM_THREADS": setup.threads,
              "PERF_COUNT": True}
    if setup.kv_cache:
        config["KV_CACHE_PRECISION"] = setup.kv_cache
    if setup.dynamic is not None:
        config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = setup.dynamic
    kv_cache = config.get("KV_CACHE_PRECISION", "f32")
    session = OpenVINOSession(ov.Core().compile_model(str(bundle.file(graph.files["openvino"])), "CPU", config))
    prefill_out = {f"present_{name}": value for name, value in random_caches(bundle, filled).items()}
    prefill_out["logits"] = np.zeros((1, bundle.manifest.model["gpt"]["vocab_size"]), np.float32)
    cache = StatefulCache.of_rows(session, [prefill_out] * rows, graph.states, [max(filled - 100, 0)] * rows)
    tokens = np.full(rows, 5, np.int64)
    for _ in range(3):
        cache.step_rows(tokens)
    start = time.perf_counter()
    for _ in range(setup.steps):
        cache.step_rows(tokens)
    step_ms = 1000 * (time.perf_counter() - start) / setup.steps
    per_type, count = by_kind(session.profiling_info())
    dynamic = config.get("DYNAMIC_QUANTIZATION_GROUP_SIZE", "default")
    print(f"{path}: {name} {graph.precision}, {rows} row(s), {filled} cached "
          f"positions, KV cache {kv_cache}, dynamic quantisation group {dynamic}, {setup.threads} threads: "
          f"{step_ms:.1f} ms per step (profiled {sum(per_type.values()):.1f} ms)")
    for (node, kernel), ms in per_type.most_common(6):
        print(f"  {node:38s} {kernel:18s} ×{count[(node, kernel)]:<4d} {ms:6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", nargs="+")
    parser.add_argument("--filled", type=int, nargs="+", default=[400])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kv-cache", choices=["f32", "f16", "bf16", "u8"], help="default: the bundle's choice")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds over the bundles")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rows", type=int, nargs="+", default=[1],
                        help="rows per step: 1 runs gpt_decode, more the batched gpt_batch_decode")
    parser.add_argument("--dynamic-quantization", metavar="GROUP",
                        help="DYNAMIC_QUANTIZATION_GROUP_SIZE (0 = off); default: the bundle's choice")
    args = parser.parse_args()
    setup = Setup(args.threads, args.steps, args.kv_cache, args.dynamic_quantization)
    for _ in range(args.rounds):
        for filled in args.filled:
            for rows in args.rows:
                for path in args.bundles:
                    profile(path, filled, rows, setup)


if __name__ == "__main__":
    main()
