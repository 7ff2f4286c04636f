"""MetaVoice-1B on the CPU: stage-1 step time against the memory-bandwidth bound, the other stages, end-to-end
real-time factor and peak memory, per precision, on full-size random weights.

Protocol (one run, one machine): the memory read bandwidth is measured first (numpy sums over a 1 GiB array, one
thread per core, best of 5). Every measurement then runs in its own process under `/usr/bin/time` (a small parent,
so the peak RSS is the measured process's own):

* `steps`: the bundle's stage-1 decode graph (OpenVINO's stateful `stage1`, or onnxruntime's `stage1_step` where
  `quantize` chose it) through the runtime's own decoder, its KV cache filled to 64 / 600 / 1500 positions by a
  prefill; 3 warm-up steps, then the median of `--steps` timed steps (the bundle's own KV-cache precision: f32 for
  FP32, u8 for OpenVINO's INT8/INT4 variants, half precision for onnxruntime's). The bound is (the graph's weight
  bytes + the cache bytes read at that position) ÷ the measured bandwidth: the least time a step can take when
  every weight and cached key/value is read once.
* `stages`: stage 2 over its whole block, EnCodec for 10 s of audio (750 frames), the speaker encoder on a 34 s
  reference (host DSP + LSTM).
* `e2e`: a fresh process loads the bundle, makes a voice from the reference, and speaks a sentence with
  `--tokens` stage-1 tokens (fixed: random weights never say end-of-audio; 150 tokens = 1 s of audio) after a
  4-token call that compiles the remaining graphs; real-time factor = seconds of compute per second of audio; peak
  RSS of the whole process.

    python benchmarks/metavoice_speed.py --bundle FP32_BUNDLE [--int8 B] [--int4 B] [--also NAME=B] [--json FILE]

FP32_BUNDLE is the export of `edgevoice make-test-model --family metavoice --size full --out DIR`, INT8/INT4 its
`edgevoice quantize --precision int8|int4` variants. Results go to stdout and benchmarks/results/metavoice_speed.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from limits import bandwidth_gbs, cpu_info

POSITIONS = (64, 600, 1500)
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "metavoice" / "audio" / "ref.wav"
TEXT = "The birch canoe slid on the smooth planks, and the boy watched it drift."


def cpu_description() -> str:
    return cpu_info().describe()


# ------------------------------------------------------------------------------------------------ workers


def worker_steps(bundle: str, threads: int, steps: int) -> dict:
    import edgevoice
    from edgevoice.backends import OpenVINOBackend

    synth = edgevoice.load(bundle, backend=OpenVINOBackend(threads=threads))
    s1 = synth.model["stage1"]
    # the decode graph the bundle runs on a CPU: OpenVINO's stateful `stage1`, or onnxruntime's `stage1_step`
    name = "stage1" if "stage1" in synth.bundle.manifest.graphs else "stage1_step"
    graph = synth.bundle.graph(name)
    weights = sum(synth.bundle.file(f).stat().st_size for f in synth.bundle.manifest.files
                  if f.startswith(name + ".") and f.endswith((".bin", ".data", ".onnx")))
    if name == "stage1":
        kv_bytes = {"u8": 1, "f16": 2, "bf16": 2}.get(graph.runtime_options.get("openvino", {}).get(
            "KV_CACHE_PRECISION"), 4)
    else:
        kv_bytes = np.dtype(next(t.dtype for t in graph.inputs if t.name == "past_key.0")).itemsize
    rng = np.random.default_rng(0)
    heads, head_dim = s1["n_head"], s1["n_embd"] // s1["n_head"]
    out = {"graph": name, "weight_bytes": weights, "kv_bytes": kv_bytes, "positions": {}}
    speaker = np.full((1, synth.model["speaker"]["embedding"]), 1 / 16, np.float32)
    for position in (p for p in POSITIONS if p + steps + 3 < s1["block_size"]):
        # the cache is filled as in production: a prefill through the runtime's own decoder
        decoder = synth.stage1_decoder(rng.integers(0, 2048, position), speaker, steps + 3)
        times = []
        for i in range(steps + 3):
            start = time.perf_counter()
            decoder.step(5)
            times.append(time.perf_counter() - start)
        cache_bytes = 2 * s1["n_layer"] * 2 * heads * (position + steps // 2) * head_dim * kv_bytes
        out["positions"][position] = {"ms": 1000 * float(np.median(times[3:])), "cache_bytes": cache_bytes}
        del decoder
    return out


def worker_stages(bundle: str, threads: int) -> dict:
    import soundfile as sf

    import edgevoice

    synth = edgevoice.load(bundle, threads=threads)
    s2, enc = synth.model["stage2"], synth.model["encodec"]
    rng = np.random.default_rng(1)
    ids = np.stack([rng.integers(0, v, s2["block_size"]) for v in s2["vocab_sizes"]])
    speaker = np.full(synth.model["speaker"]["embedding"], 1 / 16, np.float32)
    codes = rng.integers(0, enc["bins"], (enc["n_q"], 750))
    audio, rate = sf.read(REFERENCE, dtype="float32")

    def timed(fn, rounds=3):
        fn()
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    return {"stage2_block_s": timed(lambda: synth.second_stage_logits(ids, speaker)),
            "encodec_s_per_audio_s": timed(lambda: synth.decode_codes(codes)) / 10.0,
            "speaker_encoder_s": timed(lambda: synth.speaker_embedding(audio, rate), rounds=2),
            "reference_s": len(audio) / rate}


def worker_e2e(bundle: str, threads: int, tokens: int) -> dict:
    import soundfile as sf

    start = time.perf_counter()
    import edgevoice

    synth = edgevoice.load(bundle, threads=threads)
    audio, rate = sf.read(REFERENCE, dtype="float32")
    embedding = synth.speaker_embedding(audio, rate)
    ready = time.perf_counter()
    synth.synthesize("Hi.", embedding, seed=1, max_new_tokens=4)  # compiles the remaining graphs
    warm = time.perf_counter()
    wav = synth.synthesize(TEXT, embedding, seed=1, max_new_tokens=tokens)
    done = time.perf_counter()
    seconds = wav.size / synth.sample_rate
    # OpenVINO reads the IR's weights through a file mapping and keeps its own repacked copy: the mapped pages
    # count in RSS but are clean and the kernel can drop them, so the anonymous part is reported too
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {"load_and_voice_s": ready - start, "first_call_s": warm - ready, "synthesis_s": done - warm,
            "audio_s": seconds, "rtf": (done - warm) / seconds,
            "rss_anon_mib": int(status["RssAnon"].split()[0]) / 1024, "rss_file_mib": int(status["RssFile"].split()[0]) / 1024}


# ------------------------------------------------------------------------------------------------ driver


def run_worker(args: list[str]) -> dict:
    """A worker in its own process under /usr/bin/time: (its JSON, wall seconds, peak RSS MiB)."""
    command = ["/usr/bin/time", "-f", "TIME %e %M", sys.executable, __file__, "--worker", *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"worker {shlex.join(args)} failed:\n{result.stderr[-3000:]}")
    wall, rss = result.stderr.strip().splitlines()[-1].split()[1:]
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "wall_s": float(wall), "peak_rss_mib": int(rss) / 1024}


def markdown(results: dict) -> str:
    lines = [f"# MetaVoice-1B on the CPU ({results['date']})", "",
             f"CPU: {results['cpu']}; {results['threads']} threads; memory read bandwidth {results['bandwidth_gbs']:.1f}"
             " GB/s (measured in this run). Full-size random weights (`make-test-model --family metavoice --size "
             "full`). Command: `" + results["command"] + "`", "",
             "| variant | decode graph (KV cache) | stage-1 weights | "
             + " | ".join(f"step @ {p} (bound)" for p in POSITIONS)
             + " | e2e RTF | peak RSS (e2e) | of which file-mapped |", "|---" * (6 + len(POSITIONS)) + "|"]
    for name, r in results["variants"].items():
        steps = r["steps"]["positions"]
        cells = [f"{steps[str(p)]['ms']:.1f} ms ({steps[str(p)]['bound_ms']:.1f}, ×{steps[str(p)]['ratio']:.2f})"
                 if str(p) in steps else "–" for p in POSITIONS]
        kv = {1: "u8", 2: "16-bit", 4: "f32"}[r["steps"]["kv_bytes"]]
        lines.append(f"| {name} | {r['steps']['graph']} ({kv}) | {r['steps']['weight_bytes'] / 1e9:.2f} GB | "
                     + " | ".join(cells)
                     + f" | {r['e2e']['rtf']:.1f} | {r['e2e']['peak_rss_mib']:.0f} MiB | {r['e2e']['rss_file_mib']:.0f} MiB |")
    st = results["stages"]
    lines += ["", f"Other stages (FP32): stage 2 over its block {st['stage2_block_s']:.2f} s; EnCodec "
                  f"{st['encodec_s_per_audio_s']:.3f} s per s of audio; speaker encoder {st['speaker_encoder_s']:.2f} s "
                  f"for {st['reference_s']:.1f} s of reference.", "",
              "e2e: a fresh process loads the bundle, makes the voice, and speaks "
              f"{results['tokens']} stage-1 tokens ({results['tokens'] / 150:.1f} s of audio); RTF = synthesis "
              "seconds per second of audio (lower is faster)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", nargs="+")
    parser.add_argument("--bundle")
    parser.add_argument("--int8")
    parser.add_argument("--int4")
    parser.add_argument("--also", action="append", default=[], metavar="NAME=BUNDLE",
                        help="another variant to measure in the same run (e.g. an INT8 bundle quantised with "
                             "--decode-engine openvino)")
    parser.add_argument("--skip-fp32", action="store_true",
                        help="measure only the variants (the FP32 bundle still gives the other stages' times)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--tokens", type=int, default=150)
    parser.add_argument("--json")
    parser.add_argument("--markdown", default=str(Path(__file__).parent / "results" / "metavoice_speed.md"))
    args = parser.parse_args()
    if args.worker:
        kind, bundle, *rest = args.worker
        fn = {"steps": worker_steps, "stages": worker_stages, "e2e": worker_e2e}[kind]
        print(json.dumps(fn(bundle, args.threads, *map(int, rest))))
        return
    bandwidth = bandwidth_gbs(args.threads)
    results = {"date": datetime.date.today().isoformat(), "cpu": cpu_description(), "threads": args.threads,
               "bandwidth_gbs": bandwidth, "tokens": args.tokens, "variants": {},
               "command": "python benchmarks/metavoice_speed.py " + shlex.join(sys.argv[1:])}
    variants = {"fp32": args.bundle, "int8": args.int8, "int4": args.int4,
                **dict(item.split("=", 1) for item in args.also)}
    for name, bundle in variants.items():
        if not bundle or (name == "fp32" and args.skip_fp32):
            continue
        steps = run_worker(["steps", bundle, str(args.steps)])
        for position, step in steps["positions"].items():
            step["bound_ms"] = 1000 * (steps["weight_bytes"] + step["cache_bytes"]) / (bandwidth * 1e9)
            step["ratio"] = step["ms"] / step["bound_ms"]
        results["variants"][name] = {"steps": steps, "e2e": run_worker(["e2e", bundle, str(args.tokens)])}
        print(name, json.dumps(results["variants"][name]), flush=True)
    results["stages"] = run_worker(["stages", args.bundle])
    text = markdown(results)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
