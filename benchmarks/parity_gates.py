"""The measurements behind `edgevoice parity`'s gate defaults: every figure of many cases, worst and median per
variant, for any family.

    python benchmarks/parity_gates.py --reference B [--variant B:onnxruntime] [--variant B-int8] [--variant B-bf16]
        [--seeds 4] [--tokens 60] [--voice-clip ref.wav --voice-text "..."] [--threads 2] [--json FILE]

Protocol: the reference is `--reference` on OpenVINO; each `--variant BUNDLE[:BACKEND]` (OpenVINO by default) runs
every case the way `edgevoice parity` does (the family's `make_case`, `run_case`, `compare_runs`, then
`parity_report.judge` with no gates: the log-mel distance, per-step errors, `--seeds` free runs). Cases:
GPT-SoVITS — three English texts with the English clip and a Chinese one with the Chinese clip (`--voice-clip`
and `--voice-text` replace the English clip; the shared fixture clips by default), case seeds 0 and 1;
EmotiVoice — English, Chinese and mixed texts × three speaker/prompt pairs (deterministic: one free run);
MetaVoice — the three English texts with the shared fixture's speaker clip (`--voice-clip` replaces it: at least
30 s), case seeds 0 and 1.
The worst of each figure (the lowest of an SNR or agreement, the highest of an error) is what a default gate
must pass; `GATES` in `src/edgevoice/<family>/parity.py` quotes these figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path

import numpy as np

import edgevoice
from edgevoice import parity_report
from edgevoice.families import family_module

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "gpt_sovits" / "audio"
METAVOICE_CLIP = FIXTURES.parents[1] / "metavoice" / "audio" / "ref.wav"
ENGLISH = ["The little boat drifted past the old stone bridge.",
           "Please call Stella and ask her to bring these things with her from the store.",
           "How much wood would a woodchuck chuck?"]
CHINESE = "今天天气很好，我们去公园散步吧。"
MIXED = "我喜欢 machine learning 和 deep learning。"
LOWER_IS_WORSE = ("snr", "agreement")


def _cases(family: str, synth, clip: Path | None, clip_text: str | None) -> list[dict]:
    if family == "emotivoice":
        voices = [synth.voice_for(speaker=s, prompt=p) for s, p in ((0, ""), (7, "Happy"), (100, "悲伤"))]
        return [{"text": t, "voice": v, "language": ""} for t in [*ENGLISH, CHINESE, MIXED] for v in voices]
    if family == "metavoice":  # English only; the speaker comes from the clip alone
        speaker = synth.create_voice(clip or METAVOICE_CLIP)
        return [{"text": t, "voice": speaker, "language": "", "seed": s} for t in ENGLISH for s in (0, 1)]
    english = synth.create_voice(clip or FIXTURES / "ref_en.wav",
                                 clip_text or (FIXTURES / "ref_en.txt").read_text().strip(), "en")
    chinese = synth.create_voice(FIXTURES / "ref_zh.wav", (FIXTURES / "ref_zh.txt").read_text().strip(), "zh")
    return [{"text": t, "voice": english, "language": "en", "seed": s} for t in ENGLISH for s in (0, 1)] + \
        [{"text": CHINESE, "voice": chinese, "language": "zh", "seed": s} for s in (0, 1)]


def measure(args) -> dict[str, list[dict]]:
    reference = edgevoice.load(args.reference, backend="openvino", threads=args.threads)
    family = reference.bundle.manifest.family
    checks = importlib.import_module(f"{family_module(family).__name__}.parity")
    variants = []
    for spec in args.variant:
        bundle, _, backend = spec.partition(":")
        variants.append((f"{backend or 'openvino'} {Path(bundle).name}",
                         edgevoice.load(bundle, backend=backend or "openvino", threads=args.threads)))
    seeds = list(range(100, 100 + args.seeds)) if checks.SAMPLED else [0]
    figures: dict[str, list[dict]] = {name: [] for name, _ in variants}
    for case_spec in _cases(family, reference, args.voice_clip, args.voice_text):
        started = time.perf_counter()
        case = checks.make_case(reference, case_spec["voice"], case_spec["text"], case_spec["language"],
                                args.tokens, seed=case_spec.get("seed", 0))
        ref_run = checks.run_case(reference, case, "reference")
        ref_run.free_runs = [checks.free_run(reference, case, s) for s in seeds]
        for name, synth in variants:
            run = checks.run_case(synth, case, name)
            run.free_runs = [checks.free_run(synth, case, s) for s in seeds]
            verdict = parity_report.judge(parity_report.ReportRun.of(ref_run), parity_report.ReportRun.of(run),
                                          checks.compare_runs(ref_run, run), {}, reference.sample_rate)
            figures[name].append({"precision": verdict.precision, **verdict.figures})
        print(f"{case_spec['text'][:40]!r}: {time.perf_counter() - started:.1f} s", flush=True)
    return figures


def summary(rows: list[dict]) -> dict:
    out = {"precision": rows[0]["precision"], "cases": len(rows)}
    for name in rows[0]:
        values = [r[name] for r in rows if isinstance(r[name], (int, float)) and not isinstance(r[name], bool)]
        if name == "precision" or not values:
            continue  # e.g. an SNR of identical audio (None) in every case
        worst = min if any(word in name for word in LOWER_IS_WORSE) else max
        out[name] = {"worst": worst(values), "median": float(np.median(values))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", required=True, help="FP32 bundle, run on OpenVINO")
    parser.add_argument("--variant", action="append", required=True, help="BUNDLE[:BACKEND] (repeatable)")
    parser.add_argument("--seeds", type=int, default=4, help="free runs per case (GPT-SoVITS, MetaVoice)")
    parser.add_argument("--tokens", type=int, default=60)
    parser.add_argument("--voice-clip", type=Path, default=None)
    parser.add_argument("--voice-text", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="write every case's figures here")
    args = parser.parse_args()
    figures = measure(args)
    for name, rows in figures.items():
        print(name, json.dumps(summary(rows)))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
