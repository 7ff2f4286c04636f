"""INT8 (NNCF) and BF16 variants of an FP32 EmotiVoice bundle, through the machinery GPT-SoVITS uses
(`edgevoice_export.quantize`: `GraphPolicy`, `quantize_graph`; `edgevoice_export.quant_accuracy`: `graph_errors`
and friends).

1. Calibration (`edgevoice_calibration.emotivoice`): the FP32 bundle speaks a spread of the English and Chinese
   calibration corpus with its built-in speakers and style prompts, every graph's inputs recorded; inputs recorded
   on held-out sentences are used only by the accuracy gate.
2. A per-graph policy (`POLICY`, adjusted to the CPU by `default_policies`), each entry with the measurement it
   rests on. A BF16 graph is the FP32 IR compiled with `INFERENCE_PRECISION_HINT=bf16` (the manifest's
   `runtime_options`; a user-given backend precision still overrides it, see `OpenVINOBackend.config_for`).
3. Accuracy gate: every changed graph runs the held-out inputs next to FP32, compiled exactly as the runtime
   compiles it; a graph outside its `GATE` falls back (`FALLBACK`: static → weights → bf16 (only where the CPU
   has native bf16) → float for the transformer graphs, anything → float for the vocoder) and the report says
   so. End to end, a few held-out sentences go through both bundles with FP32's durations forced (a flipped
   duration would otherwise shift every later frame, and waveforms could not be compared sample by sample); the
   durations each bundle predicts are compared too.
4. The variant is written atomically; ONNX files stay FP32 (onnxruntime runs them unchanged, as for GPT-SoVITS).

Random weights are not trained ones (no activation outliers; here the random 12-layer BERT amplifies every rounding
error tenfold): re-measure every figure on the released checkpoints before trusting a policy (the figures below
are from random-weight models, `make_test_model(size="full")`).
"""

from __future__ import annotations

import copy
import logging
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from edgevoice import cpu
from edgevoice.backends import OpenVINOBackend
from edgevoice.bundle import Bundle, Manifest, accuracy_summary, atomic_folder, write_manifest
from edgevoice.emotivoice.synthesizer import Synthesizer
from edgevoice.errors import BundleError, EdgevoiceError
from edgevoice_calibration.emotivoice import EmotiVoiceCalibration, Sentence, collect_emotivoice_calibration

from ..graph_export import save_ir
from ..quant_accuracy import LogMel, graph_errors, relative_l2, snr_db
from ..quantize import (METHODS, SDPA_TYPES, GraphPolicy, QuantizeOptions, Threshold, cpu_has_int8_dot,
                        quantize_graph, read_ir)

GRAPHS = ("style_bert", "am_front", "am_back", "hifigan")
END_TO_END_SENTENCES = 6  # held-out sentences spoken end to end by both bundles

# ------------------------------------------------------------------------------------------------ policy
# Measured with `benchmarks/emotivoice_quantize.py --sweep` (results in benchmarks/results/emotivoice_quantize.md):
# full-size random weights (make_test_model size="full"), AMD EPYC with AVX-512 VNNI and AVX512_BF16, 2 threads,
# OpenVINO 2026.4, NNCF 3.4, 40 calibration sentences (8 held out). Speed-ups are medians of per-item FP32/variant
# time ratios on the held-out graph inputs (items timed in turn); accuracy is the worst held-out item against FP32;
# "end to end" is that graph alone quantised, the others FP32, over 6 held-out sentences (FP32 durations forced).
# FP32 compute per second of audio (end to end, 6 sentences): hifigan 0.199 s of 0.221 (90 %), am_back 0.012,
# style_bert 0.007, am_front 0.003. The variant this policy makes: 0.119 s (1.86x), 27.3 dB worst wav SNR end to end.
POLICY: dict[str, GraphPolicy] = {
    # 12-layer BERT-base over the prompt (once per voice) and every sentence (content embedding).
    "style_bert": GraphPolicy(
        "static", "compute-bound BERT-base, GPT-SoVITS bert recipe (SmoothQuant off, SDPA float): static INT8 2.43x "
                  "FP32 (W8 2.21x, BF16 1.60x; SDPA quantised too: more error, 0.226). The random-weight BERT "
                  "amplifies any rounding (BF16 alone moves pooled by 4.7 %): static gave pooled rel-L2 0.199, W8 "
                  "0.135, so the gate sends it on to BF16 there (0.047); trained SimBERT is expected to pass",
        transformer=True, ignored_types=SDPA_TYPES),
    "am_front": GraphPolicy(
        "static", "encoder + variance predictors: static INT8 2.21x FP32 (W8 1.02x, BF16 1.53x); 95.9 % of held-out "
                  "durations unchanged, the rest by 1 frame (BF16 97.9 %, W8 97.7 %), hidden rel-L2 0.026; end to "
                  "end 35.6 dB wav SNR. Keeping the duration predictor float hardly helped (93 vs 91 % worst item, "
                  "one ad-hoc run)",
        transformer=True, ignored_types=SDPA_TYPES),
    "am_back": GraphPolicy(
        "static", "Gaussian upsampling + decoder: static INT8 2.18x FP32 at mel max-rel 0.067 / rel-L2 0.025 (end to "
                  "end 31.3 dB); not BF16: 1.73x but max-rel 0.186 (frame positions and the upsampling energies lose "
                  "their resolution in bf16), W8 1.06x",
        transformer=True, ignored_types=SDPA_TYPES),
    "hifigan": GraphPolicy(
        "bf16", "native bf16: 1.97x FP32 at 39.2 dB wav SNR (log-mel L1 0.009); static INT8 (MIXED, conv_pre/post "
                "float) is 2.36x but 25.4 dB (log-mel L1 0.044), W8 1.01x: BF16 is the quality point on the graph "
                "that is 90 % of the compute (upsampling exported as plain convolutions; before that 1.79x / "
                "2.31x / 0.99x)"),
}
# The vocoder's policy where the CPU has no native bf16: the GPT-SoVITS HiFi-GAN recipe (MIXED preset, i.e.
# asymmetric u8 activations after the LeakyReLUs, first and last convolution float), kept only when it passes GATE.
HIFIGAN_INT8 = GraphPolicy(
    "static", "no native bf16 on this CPU: static INT8, MIXED preset, conv_pre/conv_post float (GPT-SoVITS HiFi-GAN "
              "recipe), kept only if it passes the gate; measured with VNNI: 2.36x FP32 at 25.4 dB wav SNR, log-mel "
              "L1 0.044 (last stage float too: 26.4 dB); emulated without VNNI or bf16 "
              "(ONEDNN_MAX_CPU_ISA=AVX512_CORE, measured before the upsampling rewrite): 1.52x at the same 25.4 dB",
    mixed_preset=True, float_modules=(r"vocoder\.conv_pre$", r"vocoder\.conv_post$"))
# Static INT8 pays only with 8-bit dot-product instructions (edgevoice_export.quantize.STATIC_NEEDS_INT8_DOT):
# without them these fall back to weight-only INT8, as gpt_prefill and bert do for GPT-SoVITS.
STATIC_NEEDS_INT8_DOT = ("style_bert", "am_front", "am_back")
NO_INT8_DOT_REASON = ("no VNNI/AMX on this CPU: weight-only INT8, as for GPT-SoVITS (static INT8 ran 2x slower than "
                      "FP32 on an AVX2 EPYC). AVX-512 without VNNI emulated here (ONEDNN_MAX_CPU_ISA=AVX512_CORE): "
                      "static 1.46-1.81x FP32 but inaccurate (u8*s8 pair sums saturate without VNNI: am_back mel "
                      "rel-L2 0.270 vs 0.025, am_front hidden 0.124 vs 0.026), W8 1.05-1.71x at W8's usual error; "
                      "AVX2 could not be emulated (OpenVINO's kernels fail under ONEDNN_MAX_CPU_ISA=AVX2)")

# What a graph falls back to, in order, when it misses GATE ("bf16" only where the CPU has native bf16).
FALLBACK = {"static": ("weights", "bf16", "float"), "weights": ("bf16", "float"), "bf16": ("float",), "float": ()}
VOCODER_FALLBACK = {"static": ("float",), "weights": ("float",), "bf16": ("float",), "float": ()}


# Worst held-out item (pooled over phones for the durations) of each graph against FP32. The limits keep each graph's
# own end-to-end effect near what the accepted graphs cost (mel rel-L2 <= ~3 %, wav SNR >= ~30 dB; figures above).
GATE: dict[str, tuple[Threshold, ...]] = {
    "style_bert": (Threshold("pooled", "rel_l2", 0.08, False,
                             "pooled rel-L2 0.047 (BF16) moved the end-to-end mel by 2.8 % (30.0 dB wav SNR, 95 % of "
                             "durations kept); 0.135 (W8) by 8.2 % (21.1 dB, 79 %), 0.199 (static) by 11 % (18.7 dB, "
                             "84 %)"),),
    "am_front": (Threshold("durations", "pooled_agreement", 0.90, True,
                           "static INT8 kept 95.9 % of the held-out durations (94 % end to end, 35.6 dB); a random "
                           "model's durations sit anywhere between two roundings, so a few 1-frame flips are normal"),
                 Threshold("durations", "max_abs_frames", 2.0, False,
                           "a rounding flip moves a duration by 1 frame (16 ms); more means the log-durations moved, "
                           "every method measured stayed at 1"),
                 Threshold("hidden", "rel_l2", 0.05, False, "static INT8 0.026 gave 1.4 % mel rel-L2 end to end")),
    "am_back": (Threshold("mel", "max_rel", 0.10, False,
                          "static INT8 0.067 (31.3 dB end to end) passes; BF16's 0.186 (position rounding) does not"),
                Threshold("mel", "rel_l2", 0.05, False, "static INT8 0.025, BF16 0.085")),
    "hifigan": (Threshold("wav", "snr_db", 20.0, True,
                          "static INT8 measured 25.4 dB (GPT-SoVITS accepted 27.1 dB for its HiFi-GAN): 5 dB margin "
                          "for other models, no more"),
                Threshold("wav", "log_mel_l1", 0.1, False, "static INT8 0.044, BF16 0.009")),
}

# ------------------------------------------------------------------------------------------------ CPU


def cpu_has_native_bf16(cpuinfo: Path | None = None) -> bool:
    """Whether the CPU computes bf16 natively (AVX512_BF16 or AMX-BF16; `edgevoice.cpu`, the runtime's reader);
    without it OpenVINO runs a bf16 hint in f32 (or emulates it)."""
    return cpu.detect(cpuinfo).native_bf16


def _cpu_record(native_bf16: bool) -> dict:
    """The CPU a variant was made on, for its manifest: what chose its policies."""
    here = cpu.detect()
    return {"model": here.model, "flags": [f for f in cpu.REPORTED_FLAGS if f in here.flags],
            "int8_dot": here.int8_dot, "native_bf16": native_bf16}


def default_policies(has_int8_dot: bool | None = None, has_native_bf16: bool | None = None
                     ) -> dict[str, GraphPolicy]:
    """`POLICY` adjusted to the CPU: weight-only INT8 instead of static where there is no VNNI/AMX, and the
    vocoder in static INT8 (gated) instead of BF16 where there is no native bf16."""
    policies = dict(POLICY)
    if not (cpu_has_int8_dot() if has_int8_dot is None else has_int8_dot):
        for name in STATIC_NEEDS_INT8_DOT:
            policies[name] = replace(policies[name], method="weights", reason=NO_INT8_DOT_REASON)
    if not (cpu_has_native_bf16() if has_native_bf16 is None else has_native_bf16):
        policies["hifigan"] = HIFIGAN_INT8
    return policies


def static_policy(name: str, policy: GraphPolicy) -> GraphPolicy:
    """`policy` if it is static INT8, else the static INT8 recipe for graph `name` (for overrides and fallbacks)."""
    if policy.method == "static":
        return policy
    return HIFIGAN_INT8 if name == "hifigan" else replace(POLICY[name], method="static")


def _policies(bundle: Bundle, precision: str, methods: dict[str, str] | None) -> dict[str, GraphPolicy]:
    if precision == "bf16":
        policies = {name: GraphPolicy("bf16", "--precision bf16: every graph is the FP32 IR with a bf16 hint")
                    for name in GRAPHS}
    else:
        policies = default_policies()
    for name, method in (methods or {}).items():
        if name not in GRAPHS:
            raise EdgevoiceError(f"--method {name}={method}: EmotiVoice has no graph {name!r} "
                                 f"(graphs: {', '.join(GRAPHS)})")
        if method not in METHODS:
            raise EdgevoiceError(f"--method {name}={method}: unknown method {method!r} (choose "
                                 f"{', '.join(METHODS)})")
        base = static_policy(name, policies[name]) if method == "static" else policies[name]
        policies[name] = replace(base, method=method,
                                 reason=f"chosen by the caller (default: {policies[name].method})")
    for name, policy in policies.items():
        entry = bundle.manifest.graphs[name]
        if policy.method in ("static", "weights") and "openvino" not in entry.files:
            raise BundleError(f"{bundle.path}: {name} has no OpenVINO IR (exported with --format onnx only); NNCF "
                              "quantises the IR: export with --format openvino")
        if policy.method == "static" and policy.float_modules and "onnx" not in entry.files:
            raise BundleError(f"{bundle.path}: {name} keeps some layers in float, found through its ONNX file, "
                              "which this bundle does not ship (--format openvino): export with both formats to "
                              f"quantise, or pass --method {name}=float")
    return policies


def _check_source(bundle: Bundle) -> None:
    if bundle.manifest.family != "emotivoice":
        raise BundleError(f"{bundle.path}: a {bundle.manifest.family!r} bundle; quantize_emotivoice reads EmotiVoice "
                          "bundles")
    missing = [n for n in GRAPHS if n not in bundle.manifest.graphs]
    if missing:
        raise BundleError(f"{bundle.path}: no {', '.join(missing)} graph; re-export the bundle")
    not_fp32 = [n for n in GRAPHS if bundle.manifest.graphs[n].precision != "fp32"]
    if not_fp32:
        raise BundleError(f"{bundle.path}: graphs {', '.join(not_fp32)} are not FP32; quantise the FP32 bundle")
    without_ir = [n for n in GRAPHS if "openvino" not in bundle.manifest.graphs[n].files]
    if without_ir:
        raise BundleError(f"{bundle.path}: {', '.join(without_ir)} has no OpenVINO IR (exported with --format onnx "
                          "only): quantisation works on the IR, export with --format openvino")


# ------------------------------------------------------------------------------------------------ accuracy


def max_rel(reference: np.ndarray, test: np.ndarray) -> float:
    """max |Δ| / max |reference|."""
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    return float(np.max(np.abs(reference.astype(np.float64) - test))) / scale if scale else 0.0


def _stats(values: list[float], worst) -> dict:
    return {"mean": float(np.mean(values)), "worst": float(worst(values))}


def graph_accuracy(name: str, feeds: list[dict], reference: list[dict], test: list[dict], rate: int) -> dict:
    """`graph_errors` (SNR and log-mel L1 for the waveform) plus the durations' agreement and the mel's max relative
    error."""
    result = graph_errors(name, reference, test, {"wav": LogMel(rate)})
    if name == "am_front":
        # one phone per rounding flip: pooled over every held-out phone (the real ones: padded phones' durations
        # are zero on both sides), and how far any duration moved
        real = [int(np.asarray(f["valid_phones"]).reshape(-1)[0]) if "valid_phones" in f else None for f in feeds]
        diffs = [np.abs(r["durations"][..., :n].astype(np.int64) - t["durations"][..., :n])
                 for r, t, n in zip(reference, test, real)]
        pooled = float(np.mean(np.concatenate([d.ravel() for d in diffs]) == 0)) if diffs else 1.0
        result["durations"]["pooled_agreement"] = {"mean": pooled, "worst": pooled}
        result["durations"]["max_abs_frames"] = _stats([float(d.max(initial=0)) for d in diffs], max)
    if name == "am_back":
        result["mel"]["max_rel"] = _stats([max_rel(r["mel"], t["mel"]) for r, t in zip(reference, test)], max)
    return result


def gate(name: str, accuracy: dict) -> list[str]:
    """The thresholds `accuracy` misses, as text (empty: passed)."""
    failures = []
    for threshold in GATE.get(name, ()):
        ok, value = threshold.check(accuracy)
        if not ok:
            failures.append(f"{threshold.output} {threshold.metric} {value:.4g} "
                            f"{'<' if threshold.higher_is_better else '>'} {threshold.limit}")
    return failures


def end_to_end(reference: Synthesizer, test: Synthesizer, sentences: list[Sentence]) -> dict:
    """Held-out sentences through both bundles: each embeds prompt and text and predicts durations itself; the
    mel is then made with FP32's durations on both sides (so frames line up) and vocoded by each bundle."""
    agree, mel_rel, mel_max, mel_l1, snrs, wav_mel = [], [], [], [], [], []
    phones = equal = 0
    for sentence in sentences:
        voices = [synth.voice_for(speaker=sentence.speaker, prompt=sentence.prompt) for synth in (reference, test)]
        for piece in reference.split_text(sentence.text):
            _, ids = reference.phonemes(piece)
            (ref_voice, test_voice) = voices
            ref_dur, ref_mel = reference.acoustic(ids, ref_voice.speaker_row, ref_voice.style,
                                                  reference.style_embedding(piece))
            test_content = test.style_embedding(piece)
            test_dur, _ = test.acoustic(ids, test_voice.speaker_row, test_voice.style, test_content)
            test_mel = test.acoustic_with_durations(ids, test_voice.speaker_row, test_voice.style, test_content,
                                                    ref_dur)
            ref_wav, test_wav = reference.vocode(ref_mel), test.vocode(test_mel)
            phones += len(ids)
            agree.append(float(np.mean(ref_dur == test_dur)))
            equal += int(np.sum(ref_dur == test_dur))
            mel_rel.append(relative_l2(ref_mel, test_mel))
            mel_max.append(max_rel(ref_mel, test_mel))
            mel_l1.append(float(np.mean(np.abs(ref_mel.astype(np.float64) - test_mel))))
            snrs.append(snr_db(ref_wav, test_wav))
            wav_mel.append(LogMel(reference.sample_rate).l1(ref_wav, test_wav))
    if not agree:
        return {}
    return {"sentences": len(sentences), "pieces": len(agree), "phones": phones,
            "durations_agreement": {**_stats(agree, min), "pooled": equal / phones}, "mel_rel_l2": _stats(mel_rel, max),
            "mel_max_rel": _stats(mel_max, max), "mel_l1": _stats(mel_l1, max), "wav_snr_db": _stats(snrs, min),
            "wav_log_mel_l1": _stats(wav_mel, max)}


# ------------------------------------------------------------------------------------------------ report


@dataclass
class EmotiVoiceQuantizationReport:
    bundle: Path
    precision: str
    seconds: float
    graphs: dict[str, dict] = field(default_factory=dict)  # name -> method, planned, reason, accuracy, attempts
    end_to_end: dict = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        lines = list(self.notes)
        for name, info in self.graphs.items():
            extra = []
            for output, stats in info.get("accuracy", {}).items():
                if isinstance(stats, dict) and "max_rel" in stats:
                    extra.append(f"{output} max-rel {stats['max_rel']['worst']:.4f}")
            summary = accuracy_summary(info.get("accuracy", {}), info["method"])
            lines.append(f"{name:11s} {info['method']:8s} {summary}" + (f"; {', '.join(extra)}" if extra else ""))
            for attempt in [a for a in info.get("attempts", []) if a["failed"]]:
                lines.append(f"{'':11s} {attempt['method']} failed the gate ({'; '.join(attempt['failed'])}): fell "
                             "back")
        if self.end_to_end:
            e = self.end_to_end
            lines.append(f"end to end ({e['sentences']} held-out sentences, {e['phones']} phones, FP32 durations "
                         f"forced): durations agree {e['durations_agreement']['pooled']:.3f} (worst piece "
                         f"{e['durations_agreement']['worst']:.3f}); mel rel-L2 worst {e['mel_rel_l2']['worst']:.4f},"
                         f" max-rel {e['mel_max_rel']['worst']:.4f}, L1 {e['mel_l1']['worst']:.4f}; wav SNR worst "
                         f"{e['wav_snr_db']['worst']:.1f} dB, log-mel L1 {e['wav_log_mel_l1']['worst']:.4f}")
        return lines


# ------------------------------------------------------------------------------------------------ quantise


def _runtime_entry(entry, method: str):
    """A copy of a manifest graph entry as it will be written for `method` (precision and hints)."""
    entry = copy.deepcopy(entry)
    options = dict(entry.runtime_options.get("openvino", {}))
    if method in ("static", "weights"):
        entry.precision, options["INFERENCE_PRECISION_HINT"] = "int8", "f32"
    elif method == "bf16":
        entry.precision, options["INFERENCE_PRECISION_HINT"] = "bf16", "bf16"
    entry.runtime_options = {**entry.runtime_options, "openvino": options} if options else entry.runtime_options
    return entry


def quantize_emotivoice(source_bundle: str | Path | Bundle, out: str | Path,
                        options: QuantizeOptions = QuantizeOptions(), *,
                        sentences: int | Sequence[tuple[str, str]] | None = None,
                        calibration: EmotiVoiceCalibration | None = None) -> EmotiVoiceQuantizationReport:
    """Write the `options.precision` ("int8": per-graph policy for this CPU; "bf16": every graph bf16) variant
    of the FP32 EmotiVoice bundle `source_bundle` to `out`.

    `options.methods` overrides graphs ({"am_front": "weights"}; methods: weights, static, float, bf16);
    `subset_size`, `threads`, `overwrite`, `progress` as for GPT-SoVITS; family choices (`options.family`, such as
    GPT-SoVITS' vocoder accuracy control) are refused. `sentences`: how many
    calibration sentences (default `edgevoice_calibration.emotivoice.DEFAULT_SENTENCES`) or (language, text)
    pairs; `calibration`: inputs already recorded with `collect_emotivoice_calibration` on this bundle (then
    `sentences` is not used)."""
    import nncf
    import openvino as ov

    start = time.perf_counter()
    _check_options(options)
    source = source_bundle if isinstance(source_bundle, Bundle) else Bundle.load(source_bundle)
    _check_source(source)
    policies = _policies(source, options.precision, options.methods)
    if Path(out).resolve() == source.path.resolve():
        raise BundleError(f"{out}: the output must not be the source bundle")
    if Path(out).exists() and not options.overwrite:
        raise BundleError(f"{out}: already exists (pass --overwrite to replace it)")
    nncf.set_log_level(logging.WARNING)
    report = EmotiVoiceQuantizationReport(Path(out), options.precision, 0.0)
    if calibration is None:
        calibration = collect_emotivoice_calibration(source, sentences, options.threads, options.progress)
    trial = _Trial(source, calibration, options, native_bf16=cpu_has_native_bf16(),
                   fp32_backend=OpenVINOBackend(threads=options.threads, precision="f32"),
                   test_backend=OpenVINOBackend(threads=options.threads),  # the manifest's hint decides
                   core=ov.Core())
    report.calibration = _calibration_record(calibration, options.subset_size)
    report.notes += _calibration_notes(calibration, options.precision, policies, trial.native_bf16)
    manifest: Manifest = copy.deepcopy(source.manifest)
    written: dict[str, object] = {}  # graph -> quantised ov.Model (NNCF methods only)
    bar = tqdm(GRAPHS, desc=f"{options.precision} graphs", unit="graph", disable=not options.progress)
    for name in bar:
        bar.set_postfix_str(name)
        report.graphs[name], model = _try_methods(trial, name, policies[name], manifest.graphs[name])
        if model is not None:
            written[name] = model
        report.notes += _method_notes(name, policies[name], report.graphs[name], calibration)
    with atomic_folder(out, overwrite=options.overwrite, keep=[source.path]) as folder:
        _write_graphs(folder, source, manifest, report, written)
        test = Bundle.load(folder)
        report.end_to_end = end_to_end(Synthesizer(source, backend=trial.fp32_backend),
                                       Synthesizer(test, backend=trial.test_backend),
                                       calibration.held_out_sentences[:END_TO_END_SENTENCES])
        report.seconds = time.perf_counter() - start
        manifest.extra["quantization"] = _record(trial, policies, report)
        write_manifest(folder, manifest)
    return report


def _check_options(options: QuantizeOptions) -> None:
    if options.precision not in ("int8", "bf16"):
        raise EdgevoiceError(f"unknown precision {options.precision!r} (choose int8 or bf16)")
    if options.family is not None:  # e.g. GPT-SoVITS' accuracy control: EmotiVoice's graphs fall back by themselves
        raise EdgevoiceError(f"EmotiVoice takes no family choices in QuantizeOptions (given "
                             f"{type(options.family).__name__}): its graphs fall back by themselves when they miss "
                             "the accuracy gate")
    if options.subset_size < 1:
        raise EdgevoiceError(f"subset size must be at least 1, not {options.subset_size}")


def _calibration_record(calibration: EmotiVoiceCalibration, subset_size: int) -> dict:
    return {"sentences": len(calibration.sentences), "held_out_sentences": len(calibration.held_out_sentences),
            "audio_seconds": round(calibration.audio_seconds, 1), "items": calibration.counts(),
            "subset_size": subset_size, "collect_seconds": round(calibration.seconds, 1),
            "speakers": sorted({s.speaker for s in calibration.sentences}),
            "prompts": list(dict.fromkeys(s.prompt for s in calibration.sentences))}


def _calibration_notes(calibration: EmotiVoiceCalibration, precision: str, policies: dict[str, GraphPolicy],
                       native_bf16: bool) -> list[str]:
    notes = []
    if calibration.held_out is calibration.calibration:
        notes.append("note: fewer than 5 calibration sentences: the accuracy gate is in-sample")
    if (precision == "bf16" or any(p.method == "bf16" for p in policies.values())) and not native_bf16:
        notes.append("note: this CPU has no native bf16 (avx512_bf16 / amx_bf16): OpenVINO runs the bf16 "
                     "graphs in f32 (or emulates bf16) here; the figures say nothing about bf16 accuracy")
    return notes


@dataclass
class _Trial:
    """What trying a graph's methods needs: the source bundle, its recorded inputs, the options, and the backends
    that run the FP32 reference and each attempt as the runtime will."""

    source: Bundle
    calibration: EmotiVoiceCalibration
    options: QuantizeOptions
    native_bf16: bool
    fp32_backend: OpenVINOBackend
    test_backend: OpenVINOBackend
    core: object  # openvino.Core


def _try_methods(trial: _Trial, name: str, policy: GraphPolicy, entry) -> tuple[dict, object | None]:
    """The policy's method, then its fallbacks (`FALLBACK`), until one passes the graph's gate on the held-out
    inputs; returns the graph's report (method, accuracy, every attempt) and the quantised model (NNCF methods)."""
    graph_start = time.perf_counter()
    held = trial.calibration.held_out.get(name, [])
    calib = trial.calibration.calibration.get(name, [])
    fallbacks = tuple(m for m in (VOCODER_FALLBACK if name == "hifigan" else FALLBACK)[policy.method]
                      if m != "bf16" or trial.native_bf16)  # a bf16 hint without native bf16 is just f32
    info = {"planned": policy.method, "reason": policy.reason, "attempts": []}
    reference = ([trial.fp32_backend.session(trial.source, name).run(item) for item in held]
                 if held and policy.method != "float" else [])
    chosen = None
    for method in (policy.method, *fallbacks):
        if method == "float":
            info.update(method="float", accuracy={})
            break
        if method == "static" and not calib:
            info["attempts"].append({"method": method, "failed": ["no calibration inputs recorded"]})
            continue
        model, tested = _attempt(trial, name, replace(policy, method=method), entry, calib, held)
        accuracy = graph_accuracy(name, held, reference, tested, trial.source.manifest.sample_rate) if held else {}
        failed = gate(name, accuracy) if held else []
        info["attempts"].append({"method": method, "failed": failed, "accuracy": accuracy})
        if not failed:
            info.update(method=method, accuracy=accuracy)
            chosen = model
            break
    info["seconds"] = round(time.perf_counter() - graph_start, 1)
    info["calibration_items"] = len(calib) if info["method"] == "static" else 0
    return info, chosen


def _attempt(trial: _Trial, name: str, policy: GraphPolicy, entry, calib: list[dict], held: list[dict]):
    """Graph `name` made with `policy.method` (static / weights: NNCF on the FP32 IR; bf16: the FP32 IR with the
    hint), compiled as the runtime will compile it, run on the held-out inputs → (the NNCF model or None, outputs)."""
    runtime = _runtime_entry(entry, policy.method)
    model = None
    if policy.method in ("static", "weights"):
        attempt_policy = static_policy(name, policy) if policy.method == "static" else policy
        onnx = trial.source.file(entry.files["onnx"]) if "onnx" in entry.files else None
        model = quantize_graph(read_ir(trial.core, trial.source, entry.files["openvino"]),
                               attempt_policy, calib, onnx, trial.options.subset_size)
        compiled = trial.core.compile_model(model, "CPU", trial.test_backend.config_for(runtime))
    else:  # bf16: the FP32 IR with the hint
        compiled = trial.core.compile_model(str(trial.source.file(entry.files["openvino"])), "CPU",
                                            trial.test_backend.config_for(runtime))
    request = compiled.create_infer_request()
    outputs = [port.get_any_name() for port in compiled.outputs]
    tested = []
    for item in held:
        request.infer(item)
        tested.append({o: request.get_tensor(o).data.copy() for o in outputs})
    return model, tested


def _method_notes(name: str, policy: GraphPolicy, info: dict, calibration: EmotiVoiceCalibration) -> list[str]:
    notes = []
    if not calibration.held_out.get(name) and info["method"] != "float":
        notes.append(f"note: no held-out inputs for {name}: its accuracy was not checked")
    if info["method"] != policy.method:
        notes.append(f"note: {name} {policy.method} missed the accuracy gate; it is {info['method']} in this bundle")
    return notes


def _write_graphs(folder: Path, source: Bundle, manifest: Manifest, report: EmotiVoiceQuantizationReport,
                  written: dict[str, object]) -> None:
    """Into the bundle being written: each graph's IR and manifest entry for the method it got, and every source
    file not replaced."""
    dropped = set()
    for name, info in report.graphs.items():
        entry, method = manifest.graphs[name], info["method"]
        if method == "float":
            continue
        runtime = _runtime_entry(entry, method)
        entry.precision, entry.runtime_options = runtime.precision, runtime.runtime_options
        parity = entry.accuracy.get("fp32_vs_torch", {})
        if method in ("static", "weights"):
            xml = f"{name}.int8.xml"
            for key, value in runtime.runtime_options.get("openvino", {}).items():
                written[name].set_rt_info(str(value), ["runtime_options", key])
            save_ir(written[name], folder / xml)
            old = entry.files["openvino"]
            dropped.update({old, old[: -len(".xml")] + ".bin"})
            entry.files = dict(entry.files, openvino=xml)  # any ONNX stays FP32
            # the OpenVINO-vs-torch figure was about the FP32 IR; onnxruntime still runs the FP32 ONNX
            parity = {k: v for k, v in parity.items() if k == "onnxruntime"}
        entry.accuracy = {"fp32_vs_torch": parity, f"{entry.precision}_vs_fp32": info["accuracy"]}
    for rel in source.manifest.files:
        if rel not in dropped:
            shutil.copyfile(source.file(rel), folder / rel)
    write_manifest(folder, manifest)


def _record(trial: _Trial, policies: dict[str, GraphPolicy], report: EmotiVoiceQuantizationReport) -> dict:
    """The manifest's `quantization` record: each graph's plan, gate and attempts, calibration, end to end."""
    import nncf
    import openvino as ov

    return {
        "precision": report.precision, "source_bundle_hash": trial.source.bundle_hash,
        "policy": {n: {**policies[n].to_json(), "applied": report.graphs[n]["method"],
                       "gate": [t.to_json() for t in GATE.get(n, ())],
                       "attempts": [{"method": a["method"], "failed": a["failed"]}
                                    for a in report.graphs[n]["attempts"]],
                       "seconds": report.graphs[n]["seconds"]} for n in GRAPHS},
        "calibration": report.calibration,
        "end_to_end_vs_fp32": report.end_to_end,
        "cpu": _cpu_record(trial.native_bf16),
        "tools": {"nncf": nncf.__version__, "openvino": ov.__version__},
        "notes": report.notes,
        "note": "random-weight accuracy is not a proxy for trained checkpoints: re-measure on real models",
        "seconds": round(report.seconds, 1),
    }
