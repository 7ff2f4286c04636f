"""Where OpenVINO's memory per new SoVITS input length goes, and what does not give it back (issue 10 item 5).

    python benchmarks/sovits_shape_memory.py --bundle DIR [--lengths 100,180,250,140,210,90] [--threads 2]

Runs the bundle's `sovits_vocoder` IR alone (random `z` of 2 frames per token, `ge`), where SoVITS's activations
are, at a series of token counts, each mode in its own process, and prints resident memory (VmRSS, MiB) after each call:

* `dynamic`: one compiled model for every length (what the runtime does);
* `dynamic+clean`: the same, asking TBB's allocator (which OpenVINO loads) to return its cached buffers after
  each call (`scalable_allocation_command(TBBMALLOC_CLEAN_ALL_BUFFERS)`) and glibc too (`malloc_trim`);
* `recompile`: a fresh compiled model per call (from OpenVINO's compile cache in a temporary folder), deleted, then
  both allocators cleaned, so nothing of the model outlives the call;
* `static`: a compiled model reshaped to each call's exact length (static shapes), kept.

Each row also gives the seconds of the second call at that length (the first may compile kernels).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODES = ("dynamic", "dynamic+clean", "recompile", "static")


def rss_mib() -> int:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) // 1024


def feeds(tokens: int, gin: int, inter: int, rng) -> dict[str, np.ndarray]:
    """Random vocoder inputs for `tokens` tokens (two frames each, all real)."""
    return {"z": (0.7 * rng.standard_normal((1, inter, 2 * tokens))).astype(np.float32),
            "ge": (0.1 * rng.standard_normal((1, gin, 1))).astype(np.float32),
            "valid_frames": np.array([2 * tokens])}


def clean_allocators() -> None:
    import openvino as ov

    gc.collect()
    tbb = Path(ov.__file__).parent / "libs" / "libtbbmalloc.so.2"
    if tbb.exists():
        ctypes.CDLL(str(tbb)).scalable_allocation_command(0, None)  # TBBMALLOC_CLEAN_ALL_BUFFERS
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def run_mode(bundle_dir: str, mode: str, lengths: list[int], threads: int) -> dict:
    import openvino as ov

    from edgevoice.bundle import Bundle

    bundle = Bundle.load(bundle_dir, verify=False)
    sovits = bundle.manifest.model["sovits"]
    xml = str(bundle.file(bundle.graph("sovits_vocoder").files["openvino"]))
    config = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
              **bundle.graph("sovits_vocoder").runtime_options.get("openvino", {})}
    core = ov.Core()
    scratch = tempfile.TemporaryDirectory()
    if mode == "recompile":
        core.set_property({"CACHE_DIR": scratch.name})
    rng = np.random.default_rng(0)
    kept = core.compile_model(xml, "CPU", config) if mode.startswith("dynamic") else None
    start = rss_mib()
    rows, alive = [], []  # static: every reshaped model stays alive, as a per-length cache would keep it
    for tokens in lengths:
        inputs = feeds(tokens, sovits["gin_channels"], sovits["inter_channels"], rng)
        if mode == "static":
            model = core.read_model(xml)
            model.reshape({name: list(value.shape) for name, value in inputs.items()})
            compiled = core.compile_model(model, "CPU", config)
        else:
            compiled = kept or core.compile_model(xml, "CPU", config)
        request = compiled.create_infer_request()
        request.infer(inputs)
        began = time.perf_counter()
        request.infer(inputs)
        seconds = time.perf_counter() - began
        if mode == "recompile":
            del request, compiled
        if mode in ("dynamic+clean", "recompile"):
            clean_allocators()
        rows.append({"tokens": tokens, "rss_mib": rss_mib(), "seconds": round(seconds, 3)})
        if mode == "static":
            alive.append((compiled, request))
    scratch.cleanup()
    return {"mode": mode, "start_mib": start, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--lengths", default="100,180,250,140,210,90")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]
    if args.child:
        print(json.dumps(run_mode(args.bundle, args.child, lengths, args.threads)))
        return
    results = []
    for mode in args.modes:
        command = [sys.executable, __file__, "--bundle", args.bundle, "--lengths", args.lengths,
                   "--threads", str(args.threads), "--child", mode]
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=dict(os.environ))
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print("| mode | RSS before (MiB) | RSS after each call: tokens → MiB | growth | s per call (second run) |")
    print("|---|---|---|---|---|")
    for result in results:
        rows = result["rows"]
        after = ", ".join(f"{row['tokens']} → {row['rss_mib']}" for row in rows)
        seconds = ", ".join(f"{row['seconds']:.2f}" for row in rows)
        growth = rows[-1]["rss_mib"] - rows[0]["rss_mib"]
        print(f"| {result['mode']} | {result['start_mib']} | {after} | +{growth} | {seconds} |")


if __name__ == "__main__":
    main()
