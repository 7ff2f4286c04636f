"""The GPT-SoVITS vocoder on its engines, each in a fresh process: time per call at a few frame counts, the memory
its load and first call add, and its audio against the FP32 vocoder on the same random `z`.

Why: `edgevoice quantize --vocoder-engine` decides between OpenVINO's static-INT8 `sovits_vocoder` (masked, run
padded to a few frame counts) and onnxruntime's 8-bit `sovits_vocoder_vnni` (masks dropped, run at the exact
length); this shows the trade behind the table in export/gpt_sovits/vocoder_engine.py.

    python benchmarks/vocoder_engines.py --fp32 FP32_BUNDLE --int8 INT8_BUNDLE [--frames 128 280 512] [--threads 2]

INT8_BUNDLE: made with `edgevoice quantize ... --vocoder-engine onnxruntime` (on a CPU with VNNI) so that it has both.
Engines: `fp32` (OpenVINO FP32, the reference), `openvino-int8`, `onnxruntime-int8` (as a process that loads no
OpenVINO runs it: the one graph, or head + float tail where the bundle ships only the split),
`onnxruntime-int8-split` (head + float tail on OpenVINO, as a process that loads OpenVINO anyway runs a bundle with
the split beside the one graph; the one graph where `quantize` kept no split), and on the same IRs computed
in bf16 `openvino-bf16`, `openvino-int8-bf16` (why compute.py keeps the vocoder's float parts f32). Accuracy: SNR
and log-mel L1 (what `quantize`'s vocoder gates judge) of the worst frame count against FP32. Time: best of 3 calls after one
warm-up; the masked graphs run padded to the runtime's frame buckets, as the synthesizer runs them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgevoice_export.gpt_sovits.accuracy import log_mel_l1
from limits import cpu_info

GRAPHS = {"fp32": "sovits_vocoder", "openvino-int8": "sovits_vocoder", "onnxruntime-int8": "sovits_vocoder_vnni",
          "onnxruntime-int8-split": "sovits_vocoder_vnni", "openvino-bf16": "sovits_vocoder", "openvino-int8-bf16": "sovits_vocoder"}
# The bf16 rows: the FP32 IR, and the INT8 IR's float parts, computed in bf16 (OpenVINO's precision hint; only
# CPUs with native bf16 compute it, others fall back to f32). The evidence behind compute.py's vocoder choice.
BF16_ENGINES = ("openvino-bf16", "openvino-int8-bf16")


def rss_mib() -> float:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024


def child(engine: str, bundle: str, frames: list[int], threads: int, out: Path) -> dict:
    from edgevoice.backends import OpenVINOBackend
    from edgevoice.bundle import Bundle
    from edgevoice.gpt_sovits.chunking import VOCODER_FRAME_BUCKETS, bucketed_length

    loaded = Bundle.load(bundle, lazy=True)
    graph = GRAPHS[engine]
    base = rss_mib()
    backend = OpenVINOBackend(threads=threads, precision="bf16" if engine in BF16_ENGINES else None)
    if graph == "sovits_vocoder_vnni":  # as the synthesizer runs it: its float tail apart where quantize split it off
        from edgevoice.gpt_sovits.synthesizer import Synthesizer

        synth = Synthesizer(loaded, backend=backend)
        if engine == "onnxruntime-int8-split" and synth._vocoder_tail:
            synth._split_here = lambda: True  # what a process that loads OpenVINO anyway runs
        session = synth._session(graph)
    else:
        session = backend.session(loaded, graph)
    result = {"engine": engine, "load_mib": rss_mib() - base, "seconds": {}}
    rng = np.random.default_rng(0)
    ge = (0.3 * rng.standard_normal((1, 512, 1))).astype(np.float32)
    for i, count in enumerate(frames):
        z = (0.7 * rng.standard_normal((1, 192, count))).astype(np.float32)
        if graph == "sovits_vocoder_vnni":
            feeds = {"z": z, "ge": ge}
        else:
            size = bucketed_length(count, VOCODER_FRAME_BUCKETS)
            feeds = {"z": np.pad(z, ((0, 0), (0, 0), (0, size - count))), "ge": ge,
                     "valid_frames": np.array([count], np.int64)}
        before = rss_mib()
        audio = session.run(feeds)["audio"].reshape(-1)
        if i == 0:
            result["first_call_mib"] = rss_mib() - before
        times = []
        for _ in range(3):
            start = time.perf_counter()
            session.run(feeds)
            times.append(time.perf_counter() - start)
        result["seconds"][str(count)] = min(times)
        np.save(out / f"{engine}-{count}.npy", audio[: count * 640])
    return result


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    noise = np.sum((test.astype(np.float64) - reference) ** 2)
    return float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / noise)) if noise else float("inf")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fp32", required=True)
    parser.add_argument("--int8", required=True)
    parser.add_argument("--frames", type=int, nargs="+", default=[128, 280, 512])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        bundle = args.fp32 if args.child in ("fp32", "openvino-bf16") else args.int8
        print(json.dumps(child(args.child, bundle, args.frames, args.threads, Path(args.out))))
        return
    cpu = cpu_info()
    print(f"CPU: {cpu.model}, flags {' '.join(cpu.flags)}; {args.threads} threads; {time.strftime('%Y-%m-%d %H:%M')}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for engine in GRAPHS:
            command = [sys.executable, __file__, "--child", engine, "--fp32", args.fp32, "--int8", args.int8,
                       "--threads", str(args.threads), "--out", tmp, "--frames", *map(str, args.frames)]
            rows.append(json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout))
        print("\n| engine | " + " | ".join(f"s @ {f} frames" for f in args.frames)
              + " | RSS added: load + first call (MiB) | SNR vs FP32 (dB) | log-mel L1 vs FP32 |")
        print("|---|" + "---|" * len(args.frames) + "---|---|---|")
        for row in rows:
            snr = [snr_db(np.load(Path(tmp) / f"fp32-{f}.npy"), np.load(Path(tmp) / f"{row['engine']}-{f}.npy"))
                   for f in args.frames]
            mel = [log_mel_l1(np.load(Path(tmp) / f"fp32-{f}.npy"), np.load(Path(tmp) / f"{row['engine']}-{f}.npy"))
                   for f in args.frames]
            times = " | ".join(f"{row['seconds'][str(f)]:.3f}" for f in args.frames)
            print(f"| {row['engine']} | {times} | {row['load_mib']:.0f} + {row['first_call_mib']:.0f} | "
                  f"{min(snr):.1f} | {max(mel):.4f} |")


if __name__ == "__main__":
    main()
