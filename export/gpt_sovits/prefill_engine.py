"""The prefill on onnxruntime's dynamic INT8 matmuls, where the CPU has 8-bit dot products (VNNI).

Why (measured, full-size v2 random weights, AMD EPYC Zen 4 with AVX-512 VNNI/BF16, 2 threads, one sitting; 280
positions; benchmarks/RESULTS.md, session 12):

| prefill | ms per call | process RSS with it loaded and run once | logits / layer-0 cache rel-L2 vs FP32 |
|---|---|---|---|
| OpenVINO static INT8 (`gpt_prefill`) | 103-150 | 375 MiB (78 MiB of mapped weights + 61 at compile + 113 at the first call) | 0.048 / 0.104 |
| onnxruntime dynamic INT8 (`gpt_prefill_vnni`) | 117-166 | 230 MiB | 0.017 / 0.010 |

OpenVINO's INT8 prefill keeps the mapped IR weights, a repacked copy and per-shape buffers in the compiled model
(dropping the infer request frees none of it); onnxruntime pre-packs its 8-bit weights once and frees the
originals. Its `DynamicQuantizeMatMul` runs near the INT8 GEMM peak (61 of 124 ms in a profile at 280 positions;
its fused attention is most of the rest), and quantising the activations per call, from their real range, makes
it several times more accurate than a static range calibrated in advance. A prefill is one call per sentence
(~4 % of a 10 s sentence's synthesis), so `quantize` takes it where it is as accurate as the OpenVINO graph and at
most `ONNXRUNTIME_PREFILL_MARGIN` slower on the held-out recorded calls. Like the 8-bit vocoder it needs u8·s8 dot
products (VNNI), so it is only made on, and only run on (`edgevoice.gpt_sovits.synthesizer`), such CPUs; the bundle
keeps the OpenVINO prefill for every other CPU.
"""

from __future__ import annotations

import time
from pathlib import Path

from edgevoice.backends import OpenVINOBackend
from edgevoice.bundle import Bundle, GraphEntry, Manifest, write_manifest
from edgevoice.cpu import CpuInfo
from edgevoice.errors import BundleError
from edgevoice.gpt_sovits.synthesizer import PREFILL_VNNI
from edgevoice_calibration.collect import CalibrationSet

from ..quant_accuracy import graph_errors
from ..quantize import OnnxRuntimeDynamic, QuantizeOptions, quantize_dynamic_onnxruntime, run_all, split_items

PREFILL = "gpt_prefill"
PREFILL_RECIPE = OnnxRuntimeDynamic()
# At most this much slower than the OpenVINO INT8 prefill on the held-out calls: it holds ~150 MiB less (table
# above) for a few ms per sentence.
ONNXRUNTIME_PREFILL_MARGIN = 1.25
# As accurate as the OpenVINO INT8 prefill it stands in for: worst held-out logits and caches rel-L2 within 10 %.
ACCURACY_SLACK = 1.1


def _worst(errors: dict) -> dict:
    return {key: errors[key]["rel_l2"]["worst"] for key in ("logits", "caches")}


def _seconds(session, items: list[dict]) -> float:
    start = time.perf_counter()
    run_all(session, items)
    return time.perf_counter() - start


def _not_made(options: QuantizeOptions, cpu: CpuInfo) -> str | None:
    """Why no onnxruntime prefill is made here, or None; raises where the caller asked for one this CPU can't run."""
    if options.prefill_engine == "openvino":
        return "chosen by the caller"
    if cpu.int8_dot:
        return None
    if options.prefill_engine == "onnxruntime":
        raise BundleError("--prefill-engine onnxruntime needs a CPU with 8-bit dot products (VNNI): without them its "
                          "s8 weights saturate")
    return "no 8-bit dot products (VNNI) on this CPU: onnxruntime's s8 weights would saturate"


def choose_prefill_engine(source: Bundle, folder: Path, manifest: Manifest, calibration: CalibrationSet,
                          options: QuantizeOptions, cpu: CpuInfo, fp32_backend: OpenVINOBackend) -> dict:
    """Add `PREFILL_VNNI` (onnxruntime dynamic INT8) to the bundle being written in `folder` where this CPU has 8-bit
    dot products and it is as accurate as the quantised `gpt_prefill` and at most `ONNXRUNTIME_PREFILL_MARGIN`
    slower on the held-out recorded calls; returns the record (written into the manifest's quantization section)."""
    why_not = _not_made(options, cpu)
    if why_not:
        return {"taken": False, "reason": why_not}
    _, held = split_items(calibration.items.get(PREFILL, []))
    if not held:
        return {"taken": False, "reason": "no recorded prefill calls to measure on"}
    prefill = manifest.graphs[PREFILL]
    target = f"{PREFILL_VNNI}.int8.onnx"
    matmuls = quantize_dynamic_onnxruntime(source.file(source.graph(PREFILL).files["onnx"]), folder / target,
                                           PREFILL_RECIPE)
    manifest.graphs[PREFILL_VNNI] = GraphEntry(PREFILL_VNNI, {"onnx": target}, "int8", list(prefill.inputs),
                                               list(prefill.outputs), engine="onnxruntime")
    write_manifest(folder, manifest)
    test = Bundle.load(folder)
    backend = OpenVINOBackend(threads=options.threads)
    sessions = {"openvino": backend.session(test, PREFILL), "onnxruntime": backend.session(test, PREFILL_VNNI)}
    reference = run_all(fp32_backend.session(source, PREFILL), held)
    errors = {engine: graph_errors(PREFILL, reference, run_all(session, held)) for engine, session in sessions.items()}
    worst = {engine: _worst(e) for engine, e in errors.items()}
    rounds = [{engine: _seconds(session, held) for engine, session in sessions.items()}
              for _ in range(2)]  # interleaved; the better of each: box noise only slows a run down
    seconds = {engine: round(min(r[engine] for r in rounds), 3) for engine in sessions}
    accurate = all(worst["onnxruntime"][k] <= ACCURACY_SLACK * worst["openvino"][k] for k in worst["openvino"])
    fast = seconds["onnxruntime"] <= ONNXRUNTIME_PREFILL_MARGIN * seconds["openvino"]
    forced = options.prefill_engine == "onnxruntime"
    record = {"taken": forced or (accurate and fast), "graph": PREFILL_VNNI, "replaces": PREFILL,
              "quantization": PREFILL_RECIPE.to_json(), "matmuls": matmuls, "threads": options.threads,
              "calls": len(held), "seconds_on_held_out": seconds, "worst_rel_l2": worst,
              "reason": _reason(seconds, worst, forced)}
    if record["taken"]:
        manifest.graphs[PREFILL_VNNI].accuracy = {"int8_vs_fp32": errors["onnxruntime"]}
    else:
        del manifest.graphs[PREFILL_VNNI]
        (folder / target).unlink()
    write_manifest(folder, manifest)
    return record


def _reason(seconds: dict, worst: dict, forced: bool) -> str:
    ort, ov = worst["onnxruntime"], worst["openvino"]
    return ("chosen by the caller; " if forced else "") + (
        f"held-out prefill calls on this CPU: onnxruntime {seconds['onnxruntime']:.2f} s vs OpenVINO "
        f"{seconds['openvino']:.2f} s, worst rel-L2 vs FP32 logits {ort['logits']:.4f} vs {ov['logits']:.4f}, caches "
        f"{ort['caches']:.4f} vs {ov['caches']:.4f}; taken where as accurate and at most "
        f"{100 * (ONNXRUNTIME_PREFILL_MARGIN - 1):.0f} % slower (it holds ~150 MiB less)")
