"""onnxruntime stand-ins for OpenVINO INT8 graphs, where the CPU has 8-bit dot products (VNNI): the prefill as
dynamic INT8, SoVITS's encoder and flow as static QDQ INT8. With them (and the 8-bit vocoder, `vocoder_engine.py`)
English synthesis with a saved voice loads no OpenVINO graph but the vocoder's float tail where `quantize` split it
off (`vocoder_tail.py`).

Why (measured, full-size v2 random weights, AMD EPYC Zen 4 with AVX-512 VNNI/BF16, 2 threads; benchmarks/RESULTS.md,
session 12):

| graph | ms per call | memory | rel-L2 vs FP32 |
|---|---|---|---|
| `gpt_prefill` OpenVINO static INT8, 280 positions | 103-150 | 375 MiB process RSS with it run once (78 mapped weights + 61 at compile + 113 at the first call) | logits 0.048, layer-0 cache 0.104 |
| `gpt_prefill_vnni` onnxruntime dynamic INT8 | 117-166 | 230 MiB | logits 0.017, cache 0.010 |
| `sovits_latent` OpenVINO static INT8 (MIXED), 256 tokens | 90-98 | its activations stay in the compiled graph | z 0.126-0.136 |
| `sovits_latent_vnni` onnxruntime QDQ INT8 (Conv, MatMul) | 78-85 | freed after each call (arena shrinkage) | z 0.035 |

OpenVINO keeps the mapped IR weights, a repacked copy and per-shape buffers in each compiled graph (dropping the
infer request frees none of it); onnxruntime pre-packs its 8-bit weights once, frees the originals, and hands its
arena back after each call (`edgevoice.backends.OnnxRuntimeSession`). The prefill's `DynamicQuantizeMatMul` runs
near the INT8 GEMM peak (61 of 124 ms in a profile at 280 positions); quantising activations per call, from their
real range, makes it several times more accurate than a range calibrated in advance. Each is taken where it is as
accurate as the OpenVINO graph it stands in for (`ACCURACY_SLACK`) and at most `ONNXRUNTIME_MARGIN` slower on the
held-out recorded calls: they run once per sentence, and the memory is the point. Like the 8-bit vocoder they need
u8·s8 dot products (VNNI), so they are only made on, and only run on (`edgevoice.gpt_sovits.synthesizer`), such
CPUs; the bundle keeps the OpenVINO graphs for every other CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from edgevoice.backends import OpenVINOBackend
from edgevoice.bundle import Bundle, GraphEntry, Manifest, write_manifest
from edgevoice.cpu import CpuInfo
from edgevoice.errors import BundleError
from edgevoice.gpt_sovits.synthesizer import VNNI_STAND_INS
from edgevoice_calibration import split_items
from edgevoice_calibration.gpt_sovits import CalibrationSet

from .accuracy import graph_errors
from .choices import choices
from ..quantize import (OnnxRuntimeDynamic, OnnxRuntimeStatic, QuantizeOptions, best_seconds,
                        quantize_dynamic_onnxruntime, quantize_static_onnxruntime, run_all)

# At most this much slower than the OpenVINO graph on the held-out calls: they run once per sentence (the prefill
# ~0.1 of the 2.8 s that 10 s of speech takes), and each holds tens to ~150 MiB less (table above). Was 1.25 until an
# AMX Xeon (session 21, benchmarks/RESULTS.md): OpenVINO's AMX INT8 prefill was 1.49-1.58x faster on the held-out
# calls in three `quantize` runs, so it was kept and loaded OpenVINO, yet end to end the stand-in was as fast (run.py:
# 0.295 vs 0.292 s/s cold voice, 0.276 vs 0.282 ready) with peak RSS 506 vs 669 MB and cold start 1.66 vs 2.68 s.
ONNXRUNTIME_MARGIN = 1.75
# As accurate as the OpenVINO INT8 graph it stands in for: worst held-out rel-L2 of each compared output within 10 %.
ACCURACY_SLACK = 1.1


@dataclass(frozen=True)
class StandIn:
    """How one OpenVINO graph's onnxruntime stand-in is made and judged."""

    replaces: str
    option: str  # the GptSovitsChoices field that asks for it ("auto", "openvino", "onnxruntime")
    recipe: OnnxRuntimeDynamic | OnnxRuntimeStatic
    compared: tuple[str, ...]  # outputs (as `graph_errors` pools them) whose worst rel-L2 is gated

    @property
    def graph(self) -> str:
        return VNNI_STAND_INS[self.replaces]

    @property
    def flag(self) -> str:
        return "--" + self.option.replace("_", "-")

    def make(self, source: Path, target: Path, calibration: list[dict]) -> int:
        """Write the stand-in's ONNX; returns how many operators run on 8 bits."""
        if isinstance(self.recipe, OnnxRuntimeDynamic):
            return quantize_dynamic_onnxruntime(source, target, self.recipe)
        return quantize_static_onnxruntime(onnx.load(str(source)), target, calibration, self.recipe)


PREFILL = StandIn("gpt_prefill", "prefill_engine", OnnxRuntimeDynamic(), ("logits", "caches"))
LATENT = StandIn("sovits_latent", "latent_engine", OnnxRuntimeStatic(op_types=("Conv", "MatMul")), ("z",))
STAND_INS = (PREFILL, LATENT)


def _not_made(spec: StandIn, options: QuantizeOptions, cpu: CpuInfo) -> str | None:
    """Why no stand-in is made here, or None; raises where the caller asked for one this CPU can't run."""
    if getattr(choices(options), spec.option) == "openvino":
        return "chosen by the caller"
    if cpu.int8_dot:
        return None
    if getattr(choices(options), spec.option) == "onnxruntime":
        raise BundleError(f"{spec.flag} onnxruntime needs a CPU with 8-bit dot products (VNNI): without them its s8 "
                          "weights saturate")
    return "no 8-bit dot products (VNNI) on this CPU: onnxruntime's s8 weights would saturate"


def choose_stand_in(spec: StandIn, source: Bundle, folder: Path, manifest: Manifest, calibration: CalibrationSet,
                    options: QuantizeOptions, cpu: CpuInfo, fp32_backend: OpenVINOBackend) -> dict:
    """Add `spec.graph` to the bundle being written in `folder` where this CPU has 8-bit dot products and it is as
    accurate as the quantised `spec.replaces` and at most `ONNXRUNTIME_MARGIN` slower on the held-out recorded
    calls; returns the record (written into the manifest's quantization section)."""
    why_not = _not_made(spec, options, cpu)
    if why_not:
        return {"taken": False, "reason": why_not}
    calib, held = split_items(calibration.items.get(spec.replaces, []))
    if not held:
        return {"taken": False, "reason": f"no recorded {spec.replaces} calls to measure on"}
    replaced = manifest.graphs[spec.replaces]
    target = f"{spec.graph}.int8.onnx"
    ops = spec.make(source.file(source.graph(spec.replaces).files["onnx"]), folder / target, calib)
    manifest.graphs[spec.graph] = GraphEntry(spec.graph, {"onnx": target}, "int8", list(replaced.inputs),
                                             list(replaced.outputs), engine="onnxruntime")
    write_manifest(folder, manifest)
    test = Bundle.load(folder)
    backend = OpenVINOBackend(threads=options.threads)
    sessions = {"openvino": backend.session(test, spec.replaces), "onnxruntime": backend.session(test, spec.graph)}
    reference = run_all(fp32_backend.session(source, spec.replaces), held)
    errors = {engine: graph_errors(spec.replaces, reference, run_all(session, held))
              for engine, session in sessions.items()}
    worst = {engine: {key: e[key]["rel_l2"]["worst"] for key in spec.compared} for engine, e in errors.items()}
    seconds = best_seconds({engine: (session, held) for engine, session in sessions.items()})
    accurate = all(worst["onnxruntime"][k] <= ACCURACY_SLACK * worst["openvino"][k] for k in spec.compared)
    fast = seconds["onnxruntime"] <= ONNXRUNTIME_MARGIN * seconds["openvino"]
    forced = getattr(choices(options), spec.option) == "onnxruntime"
    record = {"taken": forced or (accurate and fast), "graph": spec.graph, "replaces": spec.replaces,
              "quantization": spec.recipe.to_json(), "quantised_ops": ops, "threads": options.threads,
              "calls": len(held), "seconds_on_held_out": seconds, "worst_rel_l2": worst,
              "reason": _reason(spec, seconds, worst, forced)}
    if record["taken"]:
        manifest.graphs[spec.graph].accuracy = {"int8_vs_fp32": errors["onnxruntime"]}
    else:
        del manifest.graphs[spec.graph]
        (folder / target).unlink()
    write_manifest(folder, manifest)
    return record


def _reason(spec: StandIn, seconds: dict, worst: dict, forced: bool) -> str:
    errors = ", ".join(f"{key} {worst['onnxruntime'][key]:.4f} vs {worst['openvino'][key]:.4f}" for key in spec.compared)
    return ("chosen by the caller; " if forced else "") + (
        f"held-out {spec.replaces} calls on this CPU: onnxruntime {seconds['onnxruntime']:.2f} s vs OpenVINO "
        f"{seconds['openvino']:.2f} s, worst rel-L2 vs FP32 {errors}; taken where as accurate and at most "
        f"{100 * (ONNXRUNTIME_MARGIN - 1):.0f} % slower (it holds less memory)")
