"""Where the SoVITS vocoder's time goes, per OpenVINO node type, for one or more bundles side by side.

    python benchmarks/vocoder_profile.py BUNDLE [BUNDLE ...] [--tokens 256] [--rounds 3] [--threads 2]

Each round runs every bundle's `sovits_vocoder` IR in a fresh process (random `z` of 2 frames per token, all
real), two warm-up calls, then the best of three timed calls and the per-node
counters (PERF_COUNT) of the last. Prints per bundle the best call over the rounds, seconds per second of audio,
and the node types that took the most time (kernel, count, ms) from the best round, with layout reorders summed:
what the session-8 comparison of transposed vs strided-phase upsampling (benchmarks/RESULTS.md) was made with.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np

from ov_profile import best_call_s, by_kind, top_kinds
from sovits_shape_memory import feeds


def profile(bundle_dir: str, tokens: int, threads: int) -> dict:
    import openvino as ov

    from edgevoice.bundle import Bundle

    bundle = Bundle.load(bundle_dir, verify=False)
    graph = bundle.graph("sovits_vocoder")
    config = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERF_COUNT": True,
              **graph.runtime_options.get("openvino", {})}
    compiled = ov.Core().compile_model(str(bundle.file(graph.files["openvino"])), "CPU", config)
    sovits = bundle.manifest.model["sovits"]
    inputs = feeds(tokens, sovits["gin_channels"], sovits["inter_channels"], np.random.default_rng(0))
    request = compiled.create_infer_request()
    call_s = best_call_s(request, inputs)
    per_kind, _ = by_kind(request.profiling_info)
    audio_s = tokens * 2 * sovits["hop_length"] / bundle.manifest.sample_rate
    return {"bundle": bundle_dir, "call_s": call_s, "audio_s": audio_s, "profiled_ms": sum(per_kind.values()),
            "reorder_ms": sum(ms for (node, _), ms in per_kind.items() if node == "Reorder"),
            "top": top_kinds(request.profiling_info, 8)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="*")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(profile(args.child, args.tokens, args.threads)))
        return
    if not args.bundles:
        parser.error("give at least one bundle")
    best: dict[str, dict] = {}
    for round_index in range(args.rounds):
        for bundle in args.bundles:
            out = subprocess.run([sys.executable, __file__, "--child", bundle, "--tokens", str(args.tokens),
                                  "--threads", str(args.threads)], capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"{bundle}: the profiling process failed: {out.stderr.strip().splitlines()[-1:]}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"round {round_index + 1}: {bundle} {result['call_s']:.3f} s", flush=True)
            if bundle not in best or result["call_s"] < best[bundle]["call_s"]:
                best[bundle] = result
    for bundle, result in best.items():
        print(f"\n{bundle}: best {result['call_s']:.3f} s for {result['audio_s']:.2f} s of audio "
              f"({result['call_s'] / result['audio_s']:.3f} s per s); profiled {result['profiled_ms']:.0f} ms, "
              f"reorders {result['reorder_ms']:.0f} ms")
        for node, kernel, n, ms in result["top"]:
            print(f"  {node:26s} {kernel:22s} ×{n:<4d} {ms:7.1f} ms")


if __name__ == "__main__":
    main()
