"""GPT-SoVITS per-graph compute precision on the CPU at hand: speed and accuracy of every graph in f32, bf16 (the
FP32 IR with a bf16 hint), INT8 (the INT8 bundle's IR, float parts in f32) and INT8 + bf16 (the same IR, float parts
in bf16), against FP32. The measurements behind `COMPUTE_POLICY` in `edgevoice_export.gpt_sovits.compute`.

    python benchmarks/precision_sweep.py --fp32 FP32_DIR --int8 INT8_DIR [--threads 2] [--rounds 5]
        [--tokens 100 250] [--graphs GRAPH ...] [--markdown FILE] [--json FILE]
    python benchmarks/precision_sweep.py --fp32 - --int8 - --render JSON --markdown FILE   # re-judge with the gates

Protocol:

* Inputs are recorded from the FP32 bundle as the runtime feeds them: two voices made from the shared fixture
  clips (`ref_en.wav`, `ref_zh.wav`, 5 s each: `hubert_codes`, `ref_encoder`, and the zh prompt's `bert`), then
  `SENTENCES` synthesised with the FP32 GPT (`gpt_prefill`, `bert` for the zh ones). The two long sentences are
  decoded to max(--tokens) tokens (random weights never end earlier); `sovits_vocoder` is fed the first 2N
  frames of their `z` for every N of --tokens. `gpt_decode` (stateful) is seeded by the FP32 prefill of the long
  sentences and fed the first `DECODE_STEPS` of their FP32 tokens; the INT8 variants get the KV cache precision
  `edgevoice quantize` gives INT8 decodes on this CPU (`decode_kv_precision`).
* Speed: per graph, the four sessions are compiled side by side (OpenVINO, --threads, `PERFORMANCE_HINT=LATENCY`
  as the runtime compiles them), warmed on every input shape, then timed in --rounds rounds; in each round every
  input runs through the four variants one after the other (the order rotates), so a noisy neighbour on this shared
  machine hits all alike. ms per call: the median round; speed-up: the median of the per-call ratios to the f32 call
  on the same input in the same round (paired). RTF = seconds of compute per second of audio (1280 samples a token).
* Accuracy: the worst input against the f32 run (`graph_errors`: SNR and log-mel L1 for audio, rel-L2 and top-1 for
  logits, rel-L2 for features, agreement for tokens), judged by `COMPUTE_GATES` (edgevoice_export.gpt_sovits.compute).
* A graph the INT8 bundle keeps in float (ref_encoder) has no INT8 rows.

Random weights: the accuracy figures are not a proxy for the released checkpoints.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SHARED_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "gpt_sovits" / "audio"
SENTENCES = [  # (language, text, long): the long ones are decoded to max(--tokens) tokens for sovits_vocoder
    ("en", "Every evening after work, my sister walks her small brown dog along the river and watches the boats "
           "drift slowly past the old stone bridge.", True),
    ("zh", "春天到了，公园里的花都开了，孩子们在草地上放风筝，"
           "老人们坐在长椅上聊天，湖面上还有几只白色的小船慢慢地划过。", True),
    ("en", "Please call Stella and ask her to bring these things with her from the store.", False),
    ("zh", "今天天气很好，我们去公园散步吧。", False),
    ("en", "How much wood would a woodchuck chuck if a woodchuck could chuck wood?", False),
    ("zh", "这个周末我想去图书馆借几本关于历史的书，然后和朋友一起去喝咖啡。", False),
]
VARIANTS = (("f32", "fp32", "f32"), ("bf16", "fp32", "bf16"), ("int8", "int8", "f32"), ("int8+bf16", "int8", "bf16"))
GRAPHS = ("sovits_vocoder", "gpt_decode", "gpt_prefill", "bert", "hubert_codes", "ref_encoder")
DECODE_STEPS = 100
SAMPLES_PER_TOKEN = 1280
RATE = 32000


@dataclass
class Case:
    graph: str
    label: str
    items: list[dict] = field(default_factory=list)
    audio_seconds: float = 0.0  # per round, all items (sovits_vocoder only)


def record_inputs(fp32, audio_dir: Path, tokens: list[int], threads: int) -> list[Case]:
    """Every graph's inputs as the FP32 runtime feeds them (see the module docstring)."""
    from edgevoice.backends import OpenVINOBackend
    from edgevoice.gpt_sovits.sampler import SamplingOptions
    from edgevoice.gpt_sovits.synthesizer import Synthesizer
    from edgevoice_calibration.collect import Recorder, RecordingBackend

    recorder = Recorder(max_items=64)
    synth = Synthesizer(fp32, backend=RecordingBackend(OpenVINOBackend(threads=threads, precision="f32"), recorder))
    voices = {lang: synth.create_voice(audio_dir / f"ref_{lang}.wav",
                                       (audio_dir / f"ref_{lang}.txt").read_text().strip(), lang)
              for lang in ("en", "zh")}
    rng = np.random.default_rng(0)
    long_feeds, decode_items = [], []
    for language, text, long in SENTENCES:
        sampling = SamplingOptions(max_tokens=max(tokens) if long else 4)
        synth.synthesize_fragment(text, voices[language], language, sampling, 0.5, rng)
        if long:
            long_feeds.append(recorder.items["sovits_vocoder"][-1])  # ≤ 256 tokens: one call, the whole z
            decode_items.append({"prefill": recorder.items["gpt_prefill"][-1],
                                 "tokens": recorder.items["sovits_latent"][-1]["codes"].reshape(-1)[:DECODE_STEPS]})
    items = recorder.items
    wav = items["hubert_codes"]
    cases = [Case("sovits_vocoder", f"sovits_vocoder {n} tokens", [_first_tokens(f, n) for f in long_feeds])
             for n in tokens]
    for case in cases:
        case.audio_seconds = sum(f["z"].shape[-1] for f in case.items) * SAMPLES_PER_TOKEN / 2 / RATE
    cases.append(Case("hubert_codes", f"hubert_codes {wav[0]['wav16k'].shape[-1] / 16000:.2f} s", wav))
    context = max(d["prefill"]["prompt_tokens"].shape[-1] + d["prefill"]["phone_ids"].shape[-1] for d in decode_items)
    cases.append(Case("gpt_decode", f"gpt_decode, {DECODE_STEPS} steps after ≤ {context} positions", decode_items))
    cases.append(Case("gpt_prefill", "gpt_prefill", items["gpt_prefill"]))
    cases.append(Case("bert", "bert", items["bert"]))
    cases.append(Case("ref_encoder", "ref_encoder", items["ref_encoder"]))
    return cases


def _first_tokens(feeds: dict, n: int) -> dict:
    """The vocoder's feeds for the first `n` tokens (2n frames) of a recorded whole-fragment call."""
    if int(feeds["valid_frames"][0]) < 2 * n:
        raise SystemExit(f"the GPT stopped after {int(feeds['valid_frames'][0]) // 2} tokens; {n} were asked for")
    return dict(feeds, z=feeds["z"][..., : 2 * n].copy(), valid_frames=np.array([2 * n]))


def _describe(case: Case) -> str:
    if case.graph == "gpt_decode":
        return "; ".join(f"prompt {d['prefill']['prompt_tokens'].shape[-1]} tokens + "
                         f"{d['prefill']['phone_ids'].shape[-1]} phones, {d['tokens'].size} forced steps"
                         for d in case.items)
    shapes = {name: sorted({tuple(item[name].shape) for item in case.items}) for name in case.items[0]}
    return "; ".join(f"{name} {' '.join('x'.join(map(str, s)) for s in values)}" for name, values in shapes.items())


def sweep_case(case: Case, sessions: dict, rounds: int) -> dict:
    from edgevoice_export.gpt_sovits.accuracy import graph_errors

    for session in sessions.values():  # compile every input shape before timing
        for item in case.items:
            session.run(item)
    reference = [sessions["f32"].run(item) for item in case.items]
    times: dict[str, list[list[float]]] = {name: [[] for _ in case.items] for name in sessions}
    order = list(sessions)
    for r in range(rounds):
        for i, item in enumerate(case.items):
            for name in order[r % len(order):] + order[: r % len(order)]:
                start = time.perf_counter()
                sessions[name].run(item)
                times[name][i].append(time.perf_counter() - start)
    rows = {}
    for name, session in sessions.items():
        outputs = [session.run(item) for item in case.items]
        per_round = [sum(t[r] for t in times[name]) / len(case.items) for r in range(rounds)]
        # paired: each call against the f32 call on the same input in the same round, moments apart
        ratios = [f32 / t for ref, mine in zip(times["f32"], times[name]) for f32, t in zip(ref, mine)]
        rows[name] = {"ms": statistics.median(per_round) * 1e3, "rounds_ms": [t * 1e3 for t in per_round],
                      "speedup": statistics.median(ratios),
                      "compiled": session.precision(),
                      "accuracy": graph_errors(case.graph, reference, outputs)}
        if case.audio_seconds:
            rows[name]["rtf"] = statistics.median(per_round) * len(case.items) / case.audio_seconds
    return rows


def sweep_decode(case: Case, sessions: dict, prefill, states: dict, rounds: int) -> dict:
    """The stateful decode: every variant seeded by the same FP32 prefill, fed the FP32 tokens; time per step."""
    from edgevoice.gpt_sovits.decode_cache import StatefulCache
    from edgevoice_export.gpt_sovits.accuracy import graph_errors

    seeds = [(prefill.run(item["prefill"]), item["prefill"]["prompt_tokens"].shape[-1]) for item in case.items]

    def steps(name: str, i: int) -> list[dict]:
        cache = StatefulCache(sessions[name], seeds[i][0], states, seeds[i][1])
        return [{"logits": cache.step(int(token))[None].copy()} for token in case.items[i]["tokens"]]

    outputs = {name: [row for i in range(len(case.items)) for row in steps(name, i)] for name in sessions}
    times: dict[str, list[float]] = {name: [] for name in sessions}
    order = list(sessions)
    for r in range(rounds):
        for i, item in enumerate(case.items):
            for name in order[r % len(order):] + order[: r % len(order)]:
                start = time.perf_counter()
                steps(name, i)
                times[name].append((time.perf_counter() - start) / item["tokens"].size)
    rows = {}
    for name, session in sessions.items():
        rows[name] = {"ms": statistics.median(times[name]) * 1e3, "rounds_ms": [t * 1e3 for t in times[name]],
                      "speedup": statistics.median(f / t for f, t in zip(times["f32"], times[name])),
                      "compiled": session.precision(),
                      "accuracy": graph_errors("gpt_decode", outputs["f32"], outputs[name])}
    return rows


def accuracy_text(graph: str, accuracy: dict) -> str:
    parts = []
    for output, stats in accuracy.items():
        if not isinstance(stats, dict):
            continue
        if "snr_db" in stats:
            parts.append(f"SNR {stats['snr_db']['worst']:.1f} dB, log-mel L1 {stats['log_mel_l1']['worst']:.4f}")
        elif "agreement" in stats:
            parts.append(f"{output} agree {stats['agreement']['worst']:.3f}")
        elif "rel_l2" in stats:
            top1 = f", top-1 {stats['top1_agreement']:.2f}" if "top1_agreement" in stats else ""
            parts.append(f"{output} rel-L2 {stats['rel_l2']['worst']:.4f}{top1}")
    return "; ".join(parts)


def gate_text(graph: str, variant: str, row: dict) -> str:
    from edgevoice_export.gpt_sovits.compute import gate_failures

    if variant == "f32":
        return "—"
    failures = gate_failures(graph, row["accuracy"])
    return "pass" if not failures else "FAIL: " + "; ".join(failures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fp32", required=True, type=Path, help="FP32 GPT-SoVITS bundle")
    parser.add_argument("--int8", required=True, type=Path, help="its INT8 variant (edgevoice quantize)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, nargs="+", default=[100, 250])
    parser.add_argument("--graphs", nargs="+", default=list(GRAPHS), choices=GRAPHS)
    parser.add_argument("--audio", type=Path, default=SHARED_AUDIO, help="folder with ref_en/ref_zh .wav + .txt")
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--render", type=Path, default=None,
                        help="only write --markdown from an earlier --json (gates as they are now)")
    args = parser.parse_args()
    if args.render:
        if not args.markdown:
            parser.error("--render writes --markdown: give it")
        data = json.loads(args.render.read_text())
        args.markdown.write_text(markdown(data, data["results"]))
        return

    import openvino as ov

    from edgevoice import cpu
    from edgevoice.backends import OpenVINOBackend
    from edgevoice.bundle import Bundle
    from edgevoice_export.gpt_sovits.compute import COMPUTE_GATES
    from edgevoice_export.gpt_sovits.quantize import decode_kv_precision

    start, load_before = time.time(), os.getloadavg()[0]
    bundles = {"fp32": Bundle.load(args.fp32), "int8": Bundle.load(args.int8)}
    missing = [g for g in args.graphs if g not in bundles["int8"].manifest.graphs]
    if missing:  # checked before minutes of recording: gpt_decode is absent where onnxruntime's step was taken
        sys.exit(f"{args.int8} has no {', '.join(missing)} (an INT8 bundle whose decode runs on onnxruntime keeps no "
                 "gpt_decode: make one with `quantize --decode-engine openvino`, or leave it out with --graphs)")
    cases = [c for c in record_inputs(bundles["fp32"], args.audio, args.tokens, args.threads)
             if c.graph in args.graphs]
    results = []
    for graph in args.graphs:
        quantised = bundles["int8"].manifest.graphs[graph].precision == "int8"
        # the INT8 decode as `edgevoice quantize` makes it for this CPU now (u8 KV cache on AVX-512)
        kv = {"KV_CACHE_PRECISION": decode_kv_precision()} if graph == "gpt_decode" else {}
        sessions = {name: OpenVINOBackend(threads=args.threads, precision=hint, extra_config=kv if source == "int8"
                                          else {}).session(bundles[source], graph)
                    for name, source, hint in VARIANTS if source == "fp32" or quantised}
        for case in (c for c in cases if c.graph == graph):
            if graph == "gpt_decode":
                prefill = OpenVINOBackend(threads=args.threads, precision="f32").session(bundles["fp32"],
                                                                                          "gpt_prefill")
                rows = sweep_decode(case, sessions, prefill, bundles["fp32"].graph(graph).states, args.rounds)
            else:
                rows = sweep_case(case, sessions, args.rounds)
            for name, row in rows.items():
                print(f"{case.label:24s} {name:10s} {row['ms']:9.2f} ms {row['speedup']:5.2f}x "
                      f"{row.get('rtf', float('nan')):7.4f} {row['compiled']:9s} "
                      f"{accuracy_text(graph, row['accuracy'])} [{gate_text(graph, name, row)}]", flush=True)
            results.append({"case": case.label, "graph": graph, "inputs": _describe(case), "rows": rows})
        del sessions

    info = cpu.detect()
    header = {"cpu": info.summary(), "cpu_class": info.cpu_class, "openvino": ov.__version__,
              "threads": args.threads, "rounds": args.rounds, "seconds": round(time.time() - start),
              "load": [round(load_before, 1), round(os.getloadavg()[0], 1)],
              "date": time.strftime("%Y-%m-%d %H:%M"), "command": "python " + shlex.join(sys.argv),
              "gates": {g: [t.to_json() for t in limits] for g, limits in COMPUTE_GATES.items()}}
    if args.json:
        args.json.write_text(json.dumps({**header, "results": results}, indent=1))
    if args.markdown:
        args.markdown.write_text(markdown(header, results))


def markdown(header: dict, results: list[dict]) -> str:
    lines = [
        "# GPT-SoVITS compute precision per graph (benchmarks/precision_sweep.py)", "",
        f"`{header['command']}` ({header['seconds']} s), {header['date']}.", "",
        f"CPU: {header['cpu']}. OpenVINO {header['openvino']}, {header['threads']} threads, median of "
        f"{header['rounds']} interleaved rounds; load average {header['load'][0]} at the start, {header['load'][1]} "
        "at the end (a shared machine: compare rows of one case, not runs).", "",
        "Variants: f32 = FP32 IR, `INFERENCE_PRECISION_HINT=f32`; bf16 = FP32 IR, hint bf16; int8 = the INT8 "
        "bundle's IR (NNCF, the GPT-SoVITS policy), float parts f32; int8+bf16 = the same IR, float parts bf16. "
        "Accuracy: worst input against f32; gate = `COMPUTE_GATES` (edgevoice_export.gpt_sovits.compute).", "",
        "| graph (inputs) | variant | ms per call | speed-up vs f32 | s per s of audio | compiled | accuracy vs f32 "
        "(worst) | gate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for name, row in result["rows"].items():
            rtf = f"{row['rtf']:.4f}" if "rtf" in row else "—"
            lines.append(f"| {result['case']} | {name} | {row['ms']:.1f} | {row['speedup']:.2f}× | {rtf} | "
                         f"{row['compiled']} | {accuracy_text(result['graph'], row['accuracy'])} | "
                         f"{gate_text(result['graph'], name, row)} |")
    lines += ["", "Inputs per graph:", ""]
    lines += [f"* {r['case']}: {r['inputs']}" for r in results]
    lines += ["", "Random weights: accuracy is not a proxy for the released checkpoints; re-measure on them.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
