"""EmotiVoice FP32 vs the INT8/BF16 variant `quantize_emotivoice` makes for this CPU (and the all-BF16 variant):
per-graph and end-to-end speed, and accuracy.

    python benchmarks/emotivoice_quantize.py --work DIR [--bundle FP32_DIR] [--threads 2] [--rounds 3]
        [--sentences 40] [--sweep] [--sensitivity] [--isa AVX512_CORE] [--markdown FILE] [--json FILE]

Protocol:

* FP32 bundle: `--bundle`, or a full-size random-weight model set (`make_test_model(size="full")`) exported
  under `--work` (reused when there).
* Calibration: `collect_emotivoice_calibration` (`--sentences` spread over the en + zh corpus, speakers and style
  prompts rotating), cached under `--work` per source bundle; then `quantize_emotivoice` writes the `int8` variant
  (the per-CPU policy: see `POLICY` / `default_policies`) and the `bf16` variant (every graph bf16), timed.
* Speed: the three bundles are loaded side by side (OpenVINO, `--threads`, each graph compiled with its manifest's
  hints) and every sentence of `SENTENCES` is synthesised by each variant in turn, `--rounds` times (interleaved
  per sentence, so a noisy neighbour hits all alike; median kept). As in emotivoice_speed.py, am_front's durations
  are pinned to 4, 5, 6, 4, … frames per phone (random weights predict short ones), so every variant vocodes the
  same number of frames; the seconds spent inside each graph call are recorded. RTF = seconds of compute per
  second of audio (lower is faster).
* Accuracy: what the quantiser measured and stored in the variant's manifest (held-out graph inputs; end to end
  on held-out sentences with FP32's durations forced).
* `--sweep`: per graph and method (FP32, BF16 hint, weight-only INT8, static INT8 with its policy, static INT8
  with bf16 for its float parts), the same held-out graph inputs, timed per item in turn (paired: the speed-up is
  the median of per-item ratios to FP32) with accuracy against FP32 — the measurements `POLICY` rests on.
* `--sensitivity`: one graph at a time quantised (the others FP32, gate off) and spoken end to end over the
  held-out sentences: what each graph's error costs downstream, which the gate's thresholds rest on.
* `--isa AVX512_CORE`: the sweep again in a child process with ONEDNN_MAX_CPU_ISA set, FP32 hints only,
  to emulate a CPU without VNNI/bf16 (oneDNN's kernels are restricted; OpenVINO's own graph decisions are not, so
  this is an approximation of such a CPU, not a measurement on one).

Random weights: accuracy figures are not a proxy for the released checkpoints.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pickle
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from emotivoice_speed import PROMPT, SENTENCES  # the same sentences as the speed benchmark; numpy only
GRAPHS = ("style_bert", "am_front", "am_back", "hifigan")
VARIANTS = ("fp32", "int8", "bf16")


# ------------------------------------------------------------------------------------------------ bundles


def fp32_bundle(args) -> Path:
    if args.bundle:
        return Path(args.bundle)
    from edgevoice_export.emotivoice.exporter import export_emotivoice, resolve_files
    from edgevoice_export.emotivoice.random_model import make_test_model
    from edgevoice_export.graph_export import ExportOptions

    root, bundle = args.work / "model-full", args.work / "bundle-full"
    if not (bundle / "manifest.json").exists():
        print("writing the full-size random model set and exporting it …", flush=True)
        if not (root / "config").exists():
            make_test_model(root, size="full", seed=0)
        export_emotivoice(resolve_files(root, {}), ExportOptions(bundle, overwrite=True, progress=False,
                                                                 threads=args.threads))
    return bundle


def calibration(args, bundle: Path):
    from edgevoice.bundle import Bundle
    from edgevoice_calibration.emotivoice import collect_emotivoice_calibration

    source = Bundle.load(bundle)
    cache = args.work / f"calibration-{source.bundle_hash[:12]}-{args.sentences}.pkl"
    if cache.exists():
        with open(cache, "rb") as handle:
            return pickle.load(handle)  # our own file, written below
    result = collect_emotivoice_calibration(source, args.sentences, threads=args.threads, progress=True)
    with open(cache, "wb") as handle:
        pickle.dump(result, handle)
    return result


def make_variants(args, bundle: Path, cal) -> dict:
    from edgevoice_export.emotivoice.quantize import quantize_emotivoice
    from edgevoice_export.quantize import QuantizeOptions

    made = {}
    for precision in ("int8", "bf16"):
        out = args.work / f"bundle-{precision}"
        report = quantize_emotivoice(bundle, out, QuantizeOptions(precision, subset_size=args.subset_size,
                                                                  overwrite=True, threads=args.threads,
                                                                  progress=True), calibration=cal)
        print("\n".join(report.lines()), flush=True)
        made[precision] = {"bundle": str(out), "seconds": report.seconds, "lines": report.lines(),
                           "end_to_end": report.end_to_end,
                           "methods": {n: g["method"] for n, g in report.graphs.items()}}
    return made


# ------------------------------------------------------------------------------------------------ speed


def pinned_durations(n: int) -> np.ndarray:
    return (4 + np.arange(n) % 3).astype(np.int64)


class Probe:
    """Wraps `synth._run`: seconds inside each graph call; am_front's durations pinned (see the module doc)."""

    def __init__(self, synth):
        self.run, self.seconds = synth._run, dict.fromkeys(GRAPHS, 0.0)
        synth._run = self

    def __call__(self, name, **feeds):
        start = time.perf_counter()
        out = self.run(name, **feeds)
        self.seconds[name] += time.perf_counter() - start
        if name == "am_front":
            out["durations"] = pinned_durations(out["durations"].shape[-1])[None]
        return out


def speed(args, bundles: dict[str, Path]) -> dict:
    import edgevoice
    from edgevoice.backends import OpenVINOBackend

    synths, probes, voices, compiled = {}, {}, {}, {}
    for name, path in bundles.items():
        synth = edgevoice.load(path, backend=OpenVINOBackend(threads=args.threads))
        probes[name], synths[name] = Probe(synth), synth
        voices[name] = synth.voice_for(prompt=PROMPT)
        for _, text in SENTENCES:  # warm-up: compile, jieba, the CMU dictionary
            synth.synthesize(text, voices[name])
        compiled[name] = {g: s.precision() for g, s in synth._sessions.items()
                          if hasattr(s, "precision")}
    rows = {name: [] for name in bundles}
    for _ in range(args.rounds):
        for _, text in SENTENCES:
            for name, synth in synths.items():
                synth._styles.pop(text, None)  # the content embedding is recomputed, the prompt's is cached
                probe = probes[name]
                probe.seconds = dict.fromkeys(GRAPHS, 0.0)
                start = time.perf_counter()
                audio = synth.synthesize(text, voices[name])
                rows[name].append({"total": time.perf_counter() - start, **probe.seconds,
                                   "audio": audio.size / synth.sample_rate})
    n = len(SENTENCES)
    result = {}
    for name, measured in rows.items():
        per_sentence = [{key: statistics.median(measured[r * n + i][key] for r in range(args.rounds))
                         for key in measured[0]} for i in range(n)]
        audio = sum(p["audio"] for p in per_sentence)
        result[name] = {"audio_s": audio, "e2e_rtf": sum(p["total"] for p in per_sentence) / audio,
                        "ms_per_sentence": {g: 1000 * statistics.mean(p[g] for p in per_sentence) for g in GRAPHS},
                        "rtf": {g: sum(p[g] for p in per_sentence) / audio for g in GRAPHS},
                        "compiled_precision": compiled[name]}
    return result


# ------------------------------------------------------------------------------------------------ sweep


def sweep(args, bundle: Path, cal, f32_only: bool = False) -> dict:
    """Per graph and method: per-item paired timing against FP32 and accuracy on the held-out inputs."""
    import logging
    from dataclasses import replace

    import nncf
    import openvino as ov

    from edgevoice.bundle import Bundle
    from edgevoice_export.emotivoice.quantize import HIFIGAN_INT8, POLICY, graph_accuracy
    from edgevoice_export.quantize import GraphPolicy, quantize_graph

    nncf.set_log_level(logging.ERROR)
    source, core = Bundle.load(bundle), ov.Core()
    rate, hop = source.manifest.sample_rate, int(source.manifest.model["hop"])
    audio_s = sum(item["mel"].shape[-1] for item in cal.held_out["hifigan"]) * hop / rate

    def config(precision):
        return {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": args.threads,
                "INFERENCE_PRECISION_HINT": precision}

    result = {}
    for name in GRAPHS:
        entry = source.manifest.graphs[name]
        xml, onnx = str(source.file(entry.files["openvino"])), source.file(entry.files["onnx"])
        static = HIFIGAN_INT8 if name == "hifigan" else replace(POLICY[name], method="static")
        models, seconds = {"fp32": (xml, "f32")}, {}
        if not f32_only:
            models["bf16"] = (xml, "bf16")
        for method, policy in (("weights", GraphPolicy("weights", "")), ("static", static)):
            start = time.perf_counter()
            model = quantize_graph(core.read_model(xml), policy, cal.calibration[name], onnx, args.subset_size)
            seconds[method] = time.perf_counter() - start
            models[method] = (model, "f32")
            if not f32_only:
                models[f"{method}+bf16"] = (model, "bf16")
        compiled = {k: core.compile_model(m, "CPU", config(p)) for k, (m, p) in models.items()}
        requests = {k: c.create_infer_request() for k, c in compiled.items()}
        held = cal.held_out[name]
        outputs = {k: [] for k in requests}
        for item in held:
            for k, request in requests.items():
                request.infer(item)
                outputs[k].append({o.get_any_name(): request.get_tensor(o.get_any_name()).data.copy()
                                   for o in compiled[k].outputs})
        times = {k: [] for k in requests}
        for _ in range(args.rounds):
            for item in held:  # interleaved per item
                for k, request in requests.items():
                    start = time.perf_counter()
                    request.infer(item)
                    times[k].append(time.perf_counter() - start)
        rows = {}
        for k in requests:
            ratios = [f / t for f, t in zip(times["fp32"], times[k])]
            per_round = [sum(times[k][r * len(held):(r + 1) * len(held)]) for r in range(args.rounds)]
            rows[k] = {"speedup": statistics.median(ratios), "ms_per_item": 1000 * statistics.median(times[k]),
                       "rtf": statistics.median(per_round) / audio_s,
                       "accuracy": graph_accuracy(name, held, outputs["fp32"], outputs[k], rate),
                       "quantise_s": seconds.get(k.split("+")[0])}
            print(f"{name:10s} {k:12s} x{rows[k]['speedup']:.2f} {rows[k]['ms_per_item']:8.1f} ms/item "
                  f"{_accuracy_text(name, rows[k]['accuracy'])}", flush=True)
        result[name] = {"items": len(held), "rows": rows}
    return result


SENSITIVITY = (("style_bert", "static"), ("style_bert", "weights"), ("style_bert", "bf16"), ("am_front", "static"),
               ("am_front", "weights"), ("am_back", "static"), ("hifigan", "bf16"), ("hifigan", "static"))


def sensitivity(args, bundle: Path, cal) -> dict:
    """One graph changed, the others FP32, gate off: the end-to-end figures `quantize_emotivoice` measures."""
    import edgevoice_export.emotivoice.quantize as quantize
    from edgevoice_export.quantize import QuantizeOptions

    gate, quantize.GATE = quantize.GATE, {}
    result = {}
    try:
        for graph, method in SENSITIVITY:
            methods = {**dict.fromkeys(GRAPHS, "float"), graph: method}
            report = quantize.quantize_emotivoice(bundle, args.work / "sensitivity", QuantizeOptions(
                "int8", subset_size=args.subset_size, methods=methods, overwrite=True, threads=args.threads,
                progress=False), calibration=cal)
            result[f"{graph}={method}"] = report.end_to_end
            print(f"{graph}={method}: {report.lines()[-1]}", flush=True)
    finally:
        quantize.GATE = gate
    return result


def _accuracy_text(name: str, acc: dict) -> str:
    if name == "style_bert":
        return f"pooled cos {acc['pooled']['cosine']['worst']:.4f} rel-L2 {acc['pooled']['rel_l2']['worst']:.3f}"
    if name == "am_front":
        d = acc["durations"]
        return (f"durations {d['pooled_agreement']['worst']:.3f} (max |Δ| {d['max_abs_frames']['worst']:.0f}), "
                f"hidden rel-L2 {acc['hidden']['rel_l2']['worst']:.3f}")
    if name == "am_back":
        return f"mel max-rel {acc['mel']['max_rel']['worst']:.3f} rel-L2 {acc['mel']['rel_l2']['worst']:.3f}"
    return f"wav SNR {acc['wav']['snr_db']['worst']:.1f} dB log-mel L1 {acc['wav']['log_mel_l1']['worst']:.3f}"


# ------------------------------------------------------------------------------------------------ report


def markdown(info: dict) -> str:
    cpu = info["cpu"]
    lines = [f"`{info['command']}` — {info['date']}, {cpu['model']} ({', '.join(cpu['flags'])}), "
             f"{info['args']['threads']} threads, OpenVINO {info['versions']['openvino']}, NNCF "
             f"{info['versions']['nncf']}; load average {info['load'][0]:.1f} at the start, {info['load_end'][0]:.1f} "
             "at the end (a shared machine: compare columns of one run, not runs).", ""]
    if "variants" in info:
        cal = info["calibration"]
        lines += [f"Calibration: {cal['sentences']} sentences ({cal['held_out']} held out), {cal['audio_s']:.0f} s of "
                  f"audio, {cal['seconds']:.0f} s. Variants made in: " + ", ".join(
                      f"{p} {v['seconds']:.0f} s" for p, v in info["variants"].items()) + ".", ""]
    if "speed" in info:
        speed = info["speed"]
        methods = {"fp32": dict.fromkeys(GRAPHS, "fp32"), **{p: v["methods"] for p, v in info["variants"].items()}}
        lines += ["Speed (warm, OpenVINO, durations pinned, median of rounds; RTF = s of compute per s of audio):", "",
                  "| variant | " + " | ".join(f"{g} ms/sentence (RTF)" for g in GRAPHS) + " | end-to-end RTF | "
                  "speed-up |", "|---|" + "---|" * (len(GRAPHS) + 2)]
        base = speed["fp32"]["e2e_rtf"]
        for name, s in speed.items():
            cells = [f"{methods[name][g]}: {s['ms_per_sentence'][g]:.0f} ({s['rtf'][g]:.4f})" for g in GRAPHS]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {s['e2e_rtf']:.3f} | {base / s['e2e_rtf']:.2f}× |")
        lines += ["", f"{len(SENTENCES)} sentences (en, zh, mixed; short and long), "
                  f"{speed['fp32']['audio_s']:.1f} s of audio per round; style prompt {PROMPT!r} cached, content "
                  "embedding recomputed. Compiled precision: " + "; ".join(
                      f"{n}: " + ", ".join(f"{g} {p}" for g, p in s["compiled_precision"].items())
                      for n, s in speed.items()), ""]
        lines += ["Accuracy against FP32 (the quantiser's report: worst held-out item per graph, stored in each "
                  "manifest; end to end over held-out sentences with FP32 durations forced):", "",
                  "| variant | report line |", "|---|---|"]
        for precision, v in info["variants"].items():
            for line in v["lines"]:
                lines.append(f"| {precision} | `{line.strip()}` |")
        lines.append("")
    if "sweep" in info:
        lines += _sweep_table(info["sweep"], "Policy sweep (held-out graph inputs; speed-up = median of per-item "
                                             "FP32/variant time ratios, items timed in turn):")
    if "sensitivity" in info:
        lines += ["End-to-end effect of one graph changed, the others FP32 (6 held-out sentences, FP32 durations "
                  "forced for the mel; durations: share of phones each bundle predicts alike):", "",
                  "| graph=method | durations agree (worst piece) | mel rel-L2 | mel max-rel | wav SNR dB (worst) | "
                  "wav log-mel L1 |", "|---|---|---|---|---|---|"]
        for key, e in info["sensitivity"].items():
            pooled = e["durations_agreement"].get("pooled", e["durations_agreement"]["mean"])
            lines.append(f"| {key} | {pooled:.3f} ({e['durations_agreement']['worst']:.3f}) | "
                         f"{e['mel_rel_l2']['worst']:.4f} | {e['mel_max_rel']['worst']:.4f} | "
                         f"{e['wav_snr_db']['worst']:.1f} | {e['wav_log_mel_l1']['worst']:.4f} |")
        lines.append("")
    if "sweep_isa" in info:
        lines += _sweep_table(info["sweep_isa"], f"Emulated CPU without VNNI/bf16 (ONEDNN_MAX_CPU_ISA="
                                                 f"{info['args']['isa']}, f32 hints; an approximation):")
    if "sweep_isa_error" in info:
        lines += [f"The sweep with ONEDNN_MAX_CPU_ISA={info['args']['isa']} could not run: "
                  f"{info['sweep_isa_error']}", ""]
    lines.append("Random weights: accuracy is not a proxy for the released checkpoints; re-measure on them.")
    return "\n".join(lines) + "\n"


def _sweep_table(sweep: dict, title: str) -> list[str]:
    lines = [title, "", "| graph | method | speed-up vs FP32 | ms per item | RTF | accuracy vs FP32 (worst) |",
             "|---|---|---|---|---|---|"]
    for name, data in sweep.items():
        for k, row in data["rows"].items():
            lines.append(f"| {name} ({data['items']} items) | {k} | {row['speedup']:.2f}× | {row['ms_per_item']:.1f} | "
                         f"{row['rtf']:.4f} | {_accuracy_text(name, row['accuracy'])} |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--bundle", default=None, help="FP32 EmotiVoice bundle (default: make a full-size one)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sentences", type=int, default=40, help="calibration sentences")
    parser.add_argument("--subset-size", type=int, default=300)
    parser.add_argument("--sweep", action="store_true", help="also the per-graph method sweep")
    parser.add_argument("--sensitivity", action="store_true", help="also one graph at a time, end to end")
    parser.add_argument("--no-variants", action="store_true", help="only the sweep(s)")
    parser.add_argument("--isa", default=None, help="also the sweep with ONEDNN_MAX_CPU_ISA=ISA (e.g. AVX512_CORE)")
    parser.add_argument("--markdown", default=str(Path(__file__).parent / "results" / "emotivoice_quantize.md"))
    parser.add_argument("--json", default=None)
    parser.add_argument("--child-sweep", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    import nncf
    import openvino

    from limits import cpu_info  # the benchmarks' CPU record (model, flags), as vocoder_engines.py writes it

    bundle = fp32_bundle(args)
    cal = calibration(args, bundle)
    if args.child_sweep:
        print("RESULT " + json.dumps(sweep(args, bundle, cal, f32_only=True), default=str))
        return
    started, load = time.perf_counter(), os.getloadavg()
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__), *sys.argv[1:]])
    info = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "command": command,
            "cpu": asdict(cpu_info()),
            "args": {k: str(v) for k, v in vars(args).items()}, "load": load,
            "versions": {"openvino": openvino.__version__.split("-")[0], "nncf": nncf.__version__},
            "calibration": {"sentences": len(cal.sentences) + len(cal.held_out_sentences),
                            "held_out": len(cal.held_out_sentences), "audio_s": cal.audio_seconds,
                            "seconds": cal.seconds}}
    if not args.no_variants:
        info["variants"] = make_variants(args, bundle, cal)
        info["speed"] = speed(args, {"fp32": bundle, **{p: Path(v["bundle"]) for p, v in info["variants"].items()}})
    if args.sweep:
        info["sweep"] = sweep(args, bundle, cal)
    if args.sensitivity:
        info["sensitivity"] = sensitivity(args, bundle, cal)
    if args.isa:
        command_line = [sys.executable, __file__, "--work", str(args.work), "--threads", str(args.threads),
                        "--rounds", str(args.rounds), "--sentences", str(args.sentences), "--subset-size",
                        str(args.subset_size), "--child-sweep"] + (["--bundle", args.bundle] if args.bundle else [])
        child = subprocess.run(command_line, capture_output=True, text=True, env={**os.environ,
                                                                                   "ONEDNN_MAX_CPU_ISA": args.isa})
        found = [line for line in child.stdout.splitlines() if line.startswith("RESULT ")]
        if child.returncode or not found:  # e.g. AVX2: OpenVINO still picks AVX-512 kernels oneDNN then refuses
            error = (child.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"--isa {args.isa} sweep failed: {error}", flush=True)
            info["sweep_isa_error"] = error
        else:
            info["sweep_isa"] = json.loads(found[-1][len("RESULT "):])
    info["load_end"] = os.getloadavg()
    info["seconds"] = time.perf_counter() - started
    text = markdown(info)
    print(text)
    print(f"benchmark took {info['seconds']:.0f} s")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text("# EmotiVoice INT8/BF16 (benchmarks/emotivoice_quantize.py)\n\n" + text)
    if args.json:
        Path(args.json).write_text(json.dumps(info, indent=1, default=str))


if __name__ == "__main__":
    main()
