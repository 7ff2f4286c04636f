"""MetaVoice-1B precision variants: weight-only INT8 or INT4 for stage 1 (NNCF `compress_weights`), behind an
accuracy gate on teacher-forced guided logits.

Stage 1 is the whole cost of a CPU run (150 steps per second of audio, each reading every weight once: decoding is
memory-bound), so its weight bytes are what to cut: FP32 4.97 GB → INT8 1.25 GB → INT4 (group-wise) ≈ 0.7 GB per
step. Weight-only compression needs no calibration data. The other graphs stay FP32: stage 2 runs once per sentence,
the speaker encoder once per voice, and EnCodec is a small convolutional decoder (its figures are in
benchmarks/results/metavoice_speed.md). Random-weight accuracy is no proxy for trained checkpoints: re-measure.
Which engine decodes the variant (OpenVINO's stateful graph compressed here, or onnxruntime's step on block weights
of the same width with its attention fused) is measured on the CPU at hand: `step_engine`.
"""

from __future__ import annotations

import copy
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgevoice.backends import OpenVINOBackend
from edgevoice.bundle import Bundle, Manifest, atomic_folder, ir_weights, write_manifest
from edgevoice.errors import BundleError, EdgevoiceError
from edgevoice.metavoice.options import FAMILY
from edgevoice.metavoice.synthesizer import Synthesizer

from ..graph_export import save_ir
from ..quantize import GraphPolicy, QuantizeOptions, cpu_has_int8_dot, read_ir
from .step_engine import STEP, choose_stage1_engine

PRECISIONS = ("int8", "int4")
GRAPH = "stage1"
INT4_GROUP = 128  # NNCF's default group size for INT4 weights; smaller input widths use one group per row
# The modes, measured (`python benchmarks/metavoice_weight_modes.py`, full-size random weights, OpenVINO stateful
# stage 1 with its u8 cache, AMX Xeon, 2 threads, session 22; benchmarks/results/metavoice_weight_modes.md): INT8_ASYM
# top-1 0.896, worst rel-L2 0.0786, 72.8 / 88.4 ms per step at 64 / 600 positions; INT8_SYM 0.885 / 0.0785, 73.0 /
# 89.2 — the same, so ASYM stays. INT4_ASYM groups of 128: 0.219 / 0.734, 44.6 / 61.4 ms, 651 MB; of 64: 0.245 /
# 0.657, 50.5 / 62.6 ms, 675 MB; INT4_SYM groups of 128: 0.234 / 0.719, 47.3 / 60.8 ms, 646 MB. Groups of 64 buy a
# little accuracy on random weights (where every 4-bit mode is far off) for a slower short-context step, so 128.


@dataclass(frozen=True)
class Gate:
    """Teacher-forced guided logits of the variant against FP32, over the gate sentences."""

    min_top1: float  # share of steps whose most likely token is unchanged
    max_rel_l2: float  # worst ‖Δlogits‖ / ‖logits‖ over steps

    def failures(self, accuracy: dict) -> list[str]:
        failed, accuracy = [], accuracy["logits"]
        if accuracy["top1_agreement"] < self.min_top1:
            failed.append(f"top-1 agreement {accuracy['top1_agreement']:.3f} < {self.min_top1}")
        if accuracy["rel_l2"]["worst"] > self.max_rel_l2:
            failed.append(f"worst logits rel-L2 {accuracy['rel_l2']['worst']:.4f} > {self.max_rel_l2}")
        return failed


# Measured on random weights (teacher-forced guided logits against FP32, 4 sentences × 48 steps): INT8 top-1 0.95,
# rel-L2 worst 0.016 on the 2-layer fixture model, 0.87–0.90 / 0.08 on the full 24-layer one (0.069 with OpenVINO's
# dynamic activation quantization off: most of the error is the weights'); INT4 0.87 / 0.13 tiny, 0.22 / 0.73 full.
# A random model's logits are nearly flat, so small weight errors reorder them and grow through 24 layers; trained
# models have clear winners. So the gates catch a broken variant (NaN, zeros, a wrong scale give rel-L2 ≥ 1), not
# the quality of INT4 on real weights, which must be measured on the released checkpoints before INT4 is trusted.
GATES = {"int8": Gate(min_top1=0.80, max_rel_l2=0.15), "int4": Gate(min_top1=0.10, max_rel_l2=0.95)}
POLICIES = {
    "int8": GraphPolicy("weights", "decode is memory-bound: INT8_ASYM weights read 4x fewer bytes per step than "
                                   "FP32, data-free, logits within the gate"),
    "int4": GraphPolicy("int4", "INT4_ASYM group-wise weights (embeddings and head INT8, NNCF's default) read ~7x "
                                "fewer bytes than FP32; looser gate, for machines short of memory"),
}
# The KV cache of the variants is u8 (OpenVINO's CPU default for LLMs; FP32 bundles keep f32 for parity): measured on
# the full-size INT8 stage 1 (2 threads, Zen 4, cache filled by prefill), a step at 600 / 1500 cached positions takes
# 78 / 121 ms with u8 against 260 / 356 ms with f32, whose attention kernel walks the cache far below bandwidth.
# Its error is inside the logits gate (the gate runs with it).
VARIANT_OPTIONS = {"KV_CACHE_PRECISION": "u8"}
GATE_SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
)
FORCED_TOKENS = 48


@dataclass
class MetaVoiceQuantizationReport:
    bundle: Path
    precision: str
    seconds: float
    accuracy: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        a = self.accuracy["logits"]
        return self.notes + [
            f"stage1 {self.precision}: weights {self.sizes['fp32_mb']:.1f} MB → {self.sizes['variant_mb']:.1f} MB; "
            f"teacher-forced guided logits over {self.accuracy['items']} steps: top-1 {a['top1_agreement']:.3f}, "
            f"top-5 {a['top5_overlap']:.3f}, rel-L2 mean {a['rel_l2']['mean']:.4f} worst {a['rel_l2']['worst']:.4f}",
            "other graphs: FP32 (unchanged)"]


def gate_speaker(dim: int) -> np.ndarray:
    """A fixed speaker embedding for the gate: non-negative and unit length, like the encoder's."""
    vector = np.abs(np.random.default_rng(5).standard_normal(dim)).astype(np.float32)
    return vector / np.linalg.norm(vector)


def logits_accuracy(reference: Synthesizer, test: Synthesizer, progress: bool = False) -> dict:
    """Guided logits of `test` against `reference` with the same forced tokens (the reference's greedy choices)."""
    speaker = gate_speaker(int(reference.model["speaker"]["embedding"]))
    options = reference.default_options.with_overrides(greedy=True)
    agree, overlap, rel = [], [], []
    for sentence in tqdm(GATE_SENTENCES, desc="accuracy gate", unit="sentence", disable=not progress):
        ids = reference.text_tokens(sentence)
        room = int(reference.model["stage1"]["block_size"]) - ids.size - 1
        forced = reference.generate_first_stage(ids, speaker, options, None, max(1, min(FORCED_TOKENS, room)))
        _, _, expected = reference.first_stage_logits(ids, speaker, forced[:-1])
        _, _, got = test.first_stage_logits(ids, speaker, forced[:-1])
        agree += list(expected.argmax(-1) == got.argmax(-1))
        top5 = zip(np.argsort(-expected, axis=-1)[:, :5], np.argsort(-got, axis=-1)[:, :5])
        overlap += [len(set(a) & set(b)) / 5 for a, b in top5]
        rel += list(np.linalg.norm(got - expected, axis=-1) / np.maximum(np.linalg.norm(expected, axis=-1), 1e-12))
    return {"items": len(agree), "logits": {
        "top1_agreement": float(np.mean(agree)), "top5_overlap": float(np.mean(overlap)),
        "rel_l2": {"mean": float(np.mean(rel)), "worst": float(np.max(rel))}}}


def compress_stage1(model, precision: str, width: int):
    import nncf

    if precision == "int8":
        return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    group = INT4_GROUP if width % INT4_GROUP == 0 else -1
    # the MLP's output matrix reads the SwiGLU width, which need not be a multiple of the group where n_embd is (a
    # multiple_of of 100 or 64 makes 400 or 704): such a matrix takes the largest power-of-two group that divides
    # its width (at least 32), else NNCF's 8-bit backup; the accuracy gate judges the result as any other
    adjust = nncf.AdvancedCompressionParameters(group_size_fallback_mode=nncf.GroupSizeFallbackMode.ADJUST)
    return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT4_ASYM, group_size=group, ratio=1.0,
                                 advanced_parameters=adjust)


def _check_source(bundle: Bundle, precision: str) -> None:
    manifest = bundle.manifest
    if manifest.family != FAMILY:
        raise BundleError(f"{bundle.path}: a {manifest.family!r} bundle, not MetaVoice")
    if precision not in PRECISIONS:
        raise EdgevoiceError(f"MetaVoice variants are {' or '.join(PRECISIONS)}, not {precision!r}")
    entry = manifest.graphs.get(GRAPH)
    if entry is None or "openvino" not in entry.files:
        raise BundleError(f"{bundle.path}: no OpenVINO stage-1 graph to compress (export with --format openvino)")
    if entry.precision != "fp32":
        raise BundleError(f"{bundle.path}: stage 1 is already {entry.precision}; quantise the FP32 bundle")


def quantize_metavoice(source_bundle: str | Path | Bundle, out: str | Path,
                       options: QuantizeOptions = QuantizeOptions()) -> MetaVoiceQuantizationReport:
    """Write the INT8 or INT4 (`options.precision`) variant of an FP32 MetaVoice bundle to `out`; nothing is
    written when the variant misses its accuracy gate."""
    import nncf
    import openvino as ov

    start = time.perf_counter()
    source = source_bundle if isinstance(source_bundle, Bundle) else Bundle.load(source_bundle)
    precision = options.precision
    _check_source(source, precision)
    if options.family is not None:
        raise EdgevoiceError(f"MetaVoice takes no family choices in QuantizeOptions (given "
                             f"{type(options.family).__name__})")
    if Path(out).resolve() == source.path.resolve():
        raise BundleError(f"{out}: the output must not be the source bundle")
    nncf.set_log_level(logging.WARNING)
    manifest: Manifest = copy.deepcopy(source.manifest)
    entry = manifest.graphs[GRAPH]
    xml = f"{GRAPH}.{precision}.xml"
    old_xml = entry.files["openvino"]
    dropped = {old_xml, ir_weights(old_xml)}
    report = MetaVoiceQuantizationReport(Path(out), precision, 0.0)
    with atomic_folder(out, overwrite=options.overwrite, keep=[source.path]) as folder:
        model = compress_stage1(read_ir(ov.Core(), source, old_xml), precision,
                                int(manifest.model["stage1"]["n_embd"]))
        save_ir(model, folder / xml)
        del model
        entry.files = dict(entry.files, openvino=xml)
        entry.precision = precision
        entry.runtime_options = {**entry.runtime_options,
                                 "openvino": {**entry.runtime_options.get("openvino", {}), **VARIANT_OPTIONS}}
        for rel in source.manifest.files:
            if rel not in dropped:
                shutil.copyfile(source.file(rel), folder / rel)
        write_manifest(folder, manifest)
        report.sizes = {"fp32_mb": source.file(ir_weights(old_xml)).stat().st_size / 1e6,
                        "variant_mb": (folder / xml.replace(".xml", ".bin")).stat().st_size / 1e6}
        engine = choose_stage1_engine(source, folder, manifest, options)
        report.sizes["variant_mb"] = engine.get("weights_mb") or report.sizes["variant_mb"]
        report.notes.append(f"stage 1 decodes on {engine['engine']} ({engine['reason']})")
        reference = Synthesizer(source, backend=OpenVINOBackend(threads=options.threads, precision="f32"))
        test = Synthesizer(Bundle.load(folder), backend=OpenVINOBackend(threads=options.threads))
        report.accuracy = logits_accuracy(reference, test, options.progress)
        failed = GATES[precision].failures(report.accuracy)
        if failed:
            raise EdgevoiceError(f"the {precision} stage 1 misses its accuracy gate ({'; '.join(failed)}); nothing "
                                 "was written")
        report.seconds = time.perf_counter() - start
        decoder = manifest.graphs[GRAPH if engine["engine"] == "openvino" else STEP]  # the stage-1 graph kept
        decoder.accuracy = {"fp32_vs_torch": {}, f"{precision}_vs_fp32": report.accuracy}
        manifest.extra["quantization"] = {
            "precision": precision, "source_bundle_hash": source.bundle_hash,
            "policy": {GRAPH: {**POLICIES[precision].to_json(), "gate": GATES[precision].__dict__}},
            "sizes": report.sizes, "cpu": {"int8_dot": cpu_has_int8_dot()}, "decode_engine": engine,
            "tools": {"nncf": nncf.__version__, "openvino": ov.__version__},
            "note": "random-weight accuracy is not a proxy for trained checkpoints: re-measure on real models",
            "seconds": round(report.seconds, 1),
        }
        write_manifest(folder, manifest)
    return report
