"""FP32 vs BF16 vs INT8 of one bundle: per-graph and end-to-end speed (same run, interleaved) and accuracy.

    python benchmarks/quantize_bench.py --bundle FP32_DIR [--int8 DIR] [--bf16 DIR] [--threads 2] [--rounds 3]
        [--tokens 50] [--sentences 12] [--write-results]

Missing `--int8`/`--bf16` variants are made first with `edgevoice quantize`'s code path (calibrated on the
corpus with a generated speech-like reference clip). Per-graph inputs are recorded from the FP32 bundle; every
round times each variant once on the same inputs (interleaved, so machine load hits all alike) and the median
per call is kept. End to end = the forced-token protocol: `teacher_forced_logits` over `--tokens` FP32 tokens
(prefill + one step per token) plus `decode_tokens` with the same noise. Accuracy figures are those the
quantiser measured and stored in each bundle's manifest. Random weights: accuracy is not a proxy for trained
checkpoints, and BF16 only runs bf16 on CPUs with native support (the compiled precision is reported).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e_speed import PROMPT_TEXT, reference_clip, write_results  # noqa: E402

ITEMS_PER_GRAPH = 6


def _make_variant(bundle: Path, precision: str, work: Path, clip, sentences: int, threads: int) -> Path:
    from edgevoice_calibration.gpt_sovits import CalibrationInputs
    from edgevoice_export.gpt_sovits.quantize import calibrate_and_quantize
    from edgevoice_calibration import sample_sentences
    from edgevoice_export.quantize import QuantizeOptions

    out = work / f"bundle-{precision}"
    inputs = CalibrationInputs(references=(clip,), sentences=tuple(sample_sentences(sentences)))
    report = calibrate_and_quantize(bundle, out, inputs, QuantizeOptions(precision, threads=threads, overwrite=True))
    print("\n".join(report.lines()), file=sys.stderr)
    return out


def _time_ms(fn, timings: dict, key: str) -> None:
    start = time.perf_counter()
    fn()
    timings.setdefault(key, []).append((time.perf_counter() - start) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", required=True, type=Path, help="FP32 bundle")
    parser.add_argument("--int8", type=Path, default=None)
    parser.add_argument("--bf16", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=50, help="forced tokens end to end")
    parser.add_argument("--sentences", type=int, default=12, help="calibration sentences for missing variants")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()

    from edgevoice.audio import write_wav
    from edgevoice.backends import OpenVINOBackend
    from edgevoice.bundle import Bundle
    from edgevoice.gpt_sovits.sampler import SamplingOptions
    from edgevoice.gpt_sovits.synthesizer import Synthesizer
    from edgevoice_calibration.gpt_sovits import CalibrationInputs, CollectOptions, ReferenceClip, collect_calibration

    work = Path(tempfile.mkdtemp(prefix="quantize-bench-"))
    wav = write_wav(work / "reference.wav", reference_clip(), 32000)
    clip = ReferenceClip(wav, PROMPT_TEXT, "en")
    variants = {"fp32": args.bundle,
                "bf16": args.bf16 or _make_variant(args.bundle, "bf16", work, clip, args.sentences, args.threads),
                "int8": args.int8 or _make_variant(args.bundle, "int8", work, clip, args.sentences, args.threads)}
    bundles = {name: Bundle.load(path) for name, path in variants.items()}
    fp32 = bundles["fp32"]
    sentences = (("en", "The little boat drifted past the old stone bridge."), ("zh", "我们一起去公园散步，天气很好。"))
    calibration = collect_calibration(fp32, CalibrationInputs(references=(clip,), sentences=sentences),
                                      CollectOptions(max_tokens=16, step_stride=3, threads=args.threads, progress=False))
    backend = OpenVINOBackend(threads=args.threads)  # each manifest's own precision hint, as in production
    sessions = {(v, g): backend.session(b, g) for v, b in bundles.items() for g in calibration.items}
    precision_graph = "gpt_decode" if "gpt_decode" in fp32.manifest.graphs else "gpt_step"
    precisions = {v: backend.session(b, precision_graph).precision()
                  for v, b in bundles.items()}

    graph_ms: dict = {}
    for _ in range(args.rounds):
        for graph, items in calibration.items.items():
            for variant in variants:
                session = sessions[(variant, graph)]
                chosen = items[:ITEMS_PER_GRAPH]
                _time_ms(lambda: [session.run(item) for item in chosen], graph_ms, (variant, graph))
                graph_ms[(variant, graph)][-1] /= len(chosen)
        if "gpt_decode" in fp32.manifest.graphs:  # stateful: seeded from one real prefill, then forced steps
            _time_decode_steps(bundles, backend, sessions, calibration.items["gpt_prefill"][0], graph_ms)

    synths = {v: Synthesizer(b, backend=backend) for v, b in bundles.items()}
    voice = synths["fp32"].create_voice(wav, PROMPT_TEXT, "en")
    phones, bert = synths["fp32"].phonemize("Every evening after work, my sister walks her small brown dog.", "en")
    all_phones = np.concatenate([voice.prompt_phone_ids, phones.phone_ids])
    all_bert = np.concatenate([voice.prompt_bert, bert], axis=1)
    tokens = synths["fp32"].generate_tokens(all_phones, all_bert, voice.prompt_tokens,
                                            SamplingOptions(max_tokens=args.tokens), np.random.default_rng(0))
    noise = np.random.default_rng(1).standard_normal((1, 192, 2 * tokens.size)).astype(np.float32) * 0.5
    e2e_ms: dict = {}
    for _ in range(args.rounds):
        for variant, synth in synths.items():
            _time_ms(lambda: (synth.teacher_forced_logits(all_phones, all_bert, voice.prompt_tokens, tokens),
                                synth.decode_tokens(tokens, phones.phone_ids, noise=noise, ge=voice.ge)),
                       e2e_ms, (variant, "end to end"))

    rows = []
    timed_graphs = [*calibration.items] + (["gpt_decode"] if "gpt_decode" in fp32.manifest.graphs else [])
    for graph in [*timed_graphs, "end to end"]:
        times = e2e_ms if graph == "end to end" else graph_ms
        med = {v: statistics.median(times[(v, graph)]) for v in variants}
        accuracy = []
        for variant in ("bf16", "int8"):
            manifest = bundles[variant].manifest
            if graph == "end to end":
                e2e = manifest.extra.get("quantization", {}).get("end_to_end_vs_fp32", {})
                if e2e:
                    accuracy.append(f"{variant}: top-1 {e2e['logits']['top1_agreement']:.3f}, SNR "
                                    f"{e2e['audio']['snr_db']['worst']:.1f} dB")
                continue
            entry = manifest.graphs[graph]
            figures = entry.accuracy.get(f"{variant}_vs_fp32", {})
            first = next((v for k, v in figures.items() if isinstance(v, dict)), None)
            if first and "rel_l2" in first:
                accuracy.append(f"{variant}[{entry.precision}]: rel-L2 {first['rel_l2']['worst']:.4f}")
            elif first and "agreement" in first:
                accuracy.append(f"{variant}[{entry.precision}]: tokens {first['agreement']['worst']:.3f}")
            else:
                accuracy.append(f"{variant}[{entry.precision}]: unchanged")
        rows.append(f"| {graph} | {med['fp32']:.2f} | {med['bf16']:.2f} ({med['fp32'] / med['bf16']:.2f}×) | "
                    f"{med['int8']:.2f} ({med['fp32'] / med['int8']:.2f}×) | {'; '.join(accuracy)} |")
    sizes = {v: sum(b.file(r).stat().st_size for r in b.manifest.files) / 1e6 for v, b in bundles.items()}
    header = (f"bundle {args.bundle.name}, {args.threads} thread(s), {args.rounds} interleaved rounds, "
              f"{tokens.size} forced tokens; compiled precision fp32/bf16/int8-float-parts: "
              f"{precisions['fp32']}/{precisions['bf16']}/{precisions['int8']}; bundle MB fp32 {sizes['fp32']:.0f}, "
              f"bf16 {sizes['bf16']:.0f}, int8 {sizes['int8']:.0f}")
    table = ["| graph | FP32 ms | BF16 ms (speed-up) | INT8 ms (speed-up) | accuracy vs FP32 (worst held-out) |",
             "|---|---|---|---|---|", *rows]
    print(header)
    print("\n".join(table))
    if args.write_results:
        heading = "## Quantisation: FP32 vs BF16 vs INT8 (quantize_bench.py)"
        write_results(f"{heading}\n\n{time.strftime('%Y-%m-%d %H:%M')}, {header}\n\n" + "\n".join(table)
                      + "\n\nRandom weights: accuracy must be re-measured on trained checkpoints.\n", heading)

def _time_decode_steps(bundles, backend, sessions, prefill_feeds, graph_ms, steps: int = 16) -> None:
    from edgevoice.gpt_sovits.decode_cache import StatefulCache

    states = bundles["fp32"].graph("gpt_decode").states
    prefill = sessions.get(("fp32", "gpt_prefill")) or backend.session(bundles["fp32"], "gpt_prefill")
    out = prefill.run(prefill_feeds)
    position = prefill_feeds["prompt_tokens"].shape[1]
    for variant, bundle in bundles.items():
        key = (variant, "gpt_decode")
        if key not in sessions:
            sessions[key] = backend.session(bundle, "gpt_decode")
        cache = StatefulCache(sessions[key], out, states, position)

        def run_steps():
            for i in range(steps):
                cache.step(i + 1)

        _time_ms(run_steps, graph_ms, key)
        graph_ms[key][-1] /= steps


if __name__ == "__main__":
    main()
