"""The vocoder on onnxruntime's 8-bit operators, where the CPU has 8-bit dot products (VNNI).

Why (measured, full-size v2 random weights, AMD EPYC Zen 4 with AVX-512 VNNI/BF16, 2 threads, one sitting; the
first rows at 512 frames = 10.24 s of audio on random `z`, `python benchmarks/vocoder_engines.py`; the variants
on `z` recorded from synthesis, 280 frames; benchmarks/RESULTS.md, session 11, has every variant tried):

| vocoder | s per call | RSS added by load + first call | audio vs FP32 |
|---|---|---|---|
| OpenVINO static INT8 (`sovits_vocoder`: MIXED, last stage + conv_pre/post float, masked) | 0.95 | 103 + 136 MiB | 49.5 dB |
| onnxruntime QDQ INT8, masks dropped, exact length, every stage on 8 bits | 0.64 | 95 + 22 MiB | 50.8 dB |
| the same, its last two stages in float (what `quantize` took on these weights) | 1.08 | 94 + 37 MiB | 97.8 dB |
| variants at 280 frames (OpenVINO padded to 512: 1.09 s): all 8-bit / last stage float / last two float | 0.34 / 0.50 / 0.62 | | log-mel L1 2.95 / 0.54 / 0.014 (OpenVINO 0.13); SNR 48.7 / 71.3 / 98.5 dB |

On an Intel Xeon with AMX (2026-12-07, same script, 500 frames): FP32 1.66 s, OpenVINO static INT8 4.08 s (its AMX
INT8 convolutions, ~6x slower than its own AVX-512 VNNI kernel there, and +3.6 GiB on the first call), onnxruntime
8-bit 1.01 s (0.80 s with its float tail on OpenVINO), the FP32 IR in bf16 0.47 s (log-mel L1 1.0: not a default,
`--method sovits_vocoder=bf16`); `quantize`'s own held-out timing: onnxruntime 1.02 s vs OpenVINO 6.07 s.

onnxruntime's convolutions run near the INT8 peak (516 ms of a 1.36 s profile of the masked graph); the rest of
that profile was dequantising for every mask multiplication and layout transposes around them. Without the masks
each LeakyReLU and residual sum stays on 8 bits (`QLinearLeakyRelu` is a table lookup), the graph runs at each
window's exact length (`drop_input_masks`; the runtime never pads it, so no frames are computed for padding) and
its arena stays at the largest call's size. Its catch: `QLinearConv` writes 8-bit outputs, so each residual sum
takes 8-bit noise, which is white; random weights make a near-DC output whose other mel bands lie ~60 dB below,
under that noise floor, so with every stage on 8 bits the log-mel L1 against FP32 is 20x OpenVINO's at the same
SNR. The last stages (the widest band) therefore go back to float, output side first, until the held-out audio is
as accurate as OpenVINO's INT8 vocoder on both measures (`ACCURACY_SLACK`, `SNR_SLACK_DB`). s8 weights saturate
without VNNI (`OnnxRuntimeStatic`: u8 weights measured 2.6x slower, 7-bit ones 12 dB worse), so this graph is only
made on, and only run on (`edgevoice.gpt_sovits.synthesizer`), CPUs with 8-bit dot products; the bundle keeps the
OpenVINO vocoder for every other CPU. `quantize` times both on the held-out recorded vocoder calls (OpenVINO at its
padded shapes, as the runtime runs it) and keeps this graph where it is no slower.
"""

from __future__ import annotations

import re
from pathlib import Path

import onnx

from edgevoice.backends import OpenVINOBackend
from edgevoice.bundle import Bundle, GraphEntry, Manifest, write_manifest
from edgevoice.cpu import CpuInfo
from edgevoice.errors import BundleError
from edgevoice.gpt_sovits.split_vocoder import VOCODER_HEAD
from edgevoice.gpt_sovits.synthesizer import EXACT_VOCODER
from edgevoice_calibration import split_items
from edgevoice_calibration.gpt_sovits import CalibrationSet

from ..onnx_layout import LayoutError, channels_last_graph, same_outputs
from ..onnx_masks import drop_input_masks
from ..quant_accuracy import AUDIBLE_LOG_MEL_L1
from .accuracy import graph_errors
from ..quantize import (OnnxRuntimeStatic, QuantizeOptions, best_seconds, onnx_module_paths_of,
                        quantize_static_onnxruntime, run_all)
from .choices import choices
from .vocoder_tail import TailOptions, split_float_tail

VOCODER = "sovits_vocoder"
VOCODER_RECIPE = OnnxRuntimeStatic(op_types=("Conv", "LeakyRelu", "Add"))
# No slower than the OpenVINO INT8 vocoder on the held-out calls: it also needs ~400 MiB less memory at its largest
# window (table above), so a tie goes to it.
ONNXRUNTIME_VOCODER_MARGIN = 1.0
# As accurate as the OpenVINO INT8 vocoder it replaces: worst held-out log-mel L1 within 10 %, SNR within 1 dB.
ACCURACY_SLACK = 1.1
SNR_SLACK_DB = 1.0
# The noise 8-bit tensors add is white, so it shows first in the bands the output has least of: the last
# upsampling stages (the widest band) go back to float first, until the gate holds (at most this many).
MAX_FLOAT_STAGES = 2
# The channels-last rewrite only moves bytes (`onnx_layout`): its output must equal the source graph's (0.0 measured)
LAYOUT_TOLERANCE = 1e-6


def exact_feeds(items: list[dict]) -> list[dict]:
    """Recorded `sovits_vocoder` feeds (z padded, `valid_frames`) as the exact-length graph takes them."""
    return [{"z": item["z"][:, :, : int(item["valid_frames"][0])], "ge": item["ge"]} for item in items]


def _real_audio(outputs: list[dict], items: list[dict], hop: int) -> list[dict]:
    return [{"audio": out["audio"].reshape(-1)[: int(item["valid_frames"][0]) * hop]}
            for out, item in zip(outputs, items)]


def float_tails(model, most: int) -> list[tuple[str, ...]]:
    """Node names to keep in float, for 0, 1, ... `most` of the vocoder's last upsampling stages: from the stage's
    `ups.i` layer on, every node (its resblocks, the glue between them, conv_post)."""
    paths = onnx_module_paths_of(model)
    stages = len({p for p in paths.values() if re.fullmatch(r"sovits\.dec\.ups\.\d+", p)})
    tails = [()]
    for first in range(stages - 1, max(stages - 1 - most, -1), -1):
        start = {n.name for n in model.graph.node if paths.get(n.name) == f"sovits.dec.ups.{first}"}
        tensors, after = set(), []
        for node in model.graph.node:  # topological order
            if node.name in start or tensors.intersection(node.input):
                after.append(node.name)
                tensors.update(node.output)
        tails.append(tuple(after))
    return tails


def _accurate(errors: dict, baseline: dict) -> bool:
    """No less accurate than the OpenVINO INT8 vocoder (`baseline`: its worst held-out log-mel L1 and SNR)."""
    audio = errors["audio"]
    return (audio["log_mel_l1"]["worst"] <= ACCURACY_SLACK * baseline["log_mel_l1"]
            and audio["snr_db"]["worst"] >= baseline["snr_db"] - SNR_SLACK_DB)


def _float_ladder(model, folder: Path, manifest: Manifest, calib: list[dict], held: list[dict], reference: list[dict],
                  baseline: dict, threads: int):
    """Quantise `model` into the bundle being written with 0, 1, ... of its last stages in float until the held-out
    audio is `_accurate`; `calib` and `held` are exact-length feeds (`exact_feeds`). Returns (the attempts, the last
    one's session and errors)."""
    target = manifest.graphs[EXACT_VOCODER].files["onnx"]
    backend = OpenVINOBackend(threads=threads)
    attempts = []
    for float_stages, float_nodes in enumerate(float_tails(model, MAX_FLOAT_STAGES)):
        ops = quantize_static_onnxruntime(model, folder / target, calib, VOCODER_RECIPE, float_nodes)
        write_manifest(folder, manifest)
        session = backend.session(Bundle.load(folder), EXACT_VOCODER)
        errors = graph_errors(EXACT_VOCODER, reference, run_all(session, held))
        attempts.append({"float_stages": float_stages, "quantised_ops": ops, "accurate": _accurate(errors, baseline),
                         "worst_log_mel_l1": errors["audio"]["log_mel_l1"]["worst"],
                         "worst_snr_db": round(errors["audio"]["snr_db"]["worst"], 2)})
        if attempts[-1]["accurate"]:
            break
    return attempts, session, errors


def _reason(seconds: dict, last: dict, baseline: dict, forced: bool) -> str:
    return ("chosen by the caller; " if forced else "") + (
        f"held-out vocoder calls on this CPU: onnxruntime {seconds['onnxruntime']:.2f} s vs OpenVINO "
        f"{seconds['openvino']:.2f} s with its last {last['float_stages']} stage(s) in float (worst log-mel L1 vs "
        f"FP32 {last['worst_log_mel_l1']:.4f} vs {baseline['log_mel_l1']:.4f}, SNR {last['worst_snr_db']:.1f} vs "
        f"{baseline['snr_db']:.1f} dB); taken where as accurate and no slower")


def choose_vocoder_engine(source: Bundle, folder: Path, manifest: Manifest, calibration: CalibrationSet,
                          options: QuantizeOptions, cpu: CpuInfo, fp32_backend: OpenVINOBackend) -> dict:
    """Add `EXACT_VOCODER` (onnxruntime static INT8, mask-free) to the bundle being written in `folder` where this CPU
    has 8-bit dot products and it is as accurate as the quantised `sovits_vocoder` and no slower on the held-out
    recorded calls; returns the record (written into the manifest's quantization section)."""
    if choices(options).vocoder_engine == "openvino":
        return {"taken": False, "reason": "chosen by the caller"}
    if not cpu.int8_dot:
        if choices(options).vocoder_engine == "onnxruntime":
            raise BundleError("--vocoder-engine onnxruntime needs a CPU with 8-bit dot products (VNNI): without "
                              "them its s8 weights saturate")
        return {"taken": False, "reason": "no 8-bit dot products (VNNI) on this CPU: onnxruntime's s8 weights would "
                                          "saturate and u8 ones measured 2.6x slower"}
    calib, held = split_items(calibration.items.get(VOCODER, []))
    if not held:
        return {"taken": False, "reason": "no recorded vocoder calls to measure on"}
    model = onnx.load(str(source.file(source.graph(VOCODER).files["onnx"])))
    masks = drop_input_masks(model, "valid_frames")
    hop = manifest.model["sovits"]["hop_length"]
    reference = _real_audio(run_all(fp32_backend.session(source, VOCODER), held), held, hop)
    openvino = OpenVINOBackend(threads=options.threads).session(Bundle.load(folder), VOCODER)
    audio = graph_errors(VOCODER, reference, _real_audio(run_all(openvino, held), held, hop))["audio"]
    baseline = {"log_mel_l1": audio["log_mel_l1"]["worst"], "snr_db": round(audio["snr_db"]["worst"], 2)}
    vocoder = manifest.graphs[VOCODER]
    target = f"{EXACT_VOCODER}.int8.onnx"
    manifest.graphs[EXACT_VOCODER] = GraphEntry(
        EXACT_VOCODER, {"onnx": target}, "int8", [t for t in vocoder.inputs if t.name != "valid_frames"],
        list(vocoder.outputs), engine="onnxruntime")
    exact_held = exact_feeds(held)
    attempts, session, errors = _float_ladder(model, folder, manifest, exact_feeds(calib), exact_held, reference,
                                              baseline, options.threads)
    seconds = best_seconds({"openvino": (openvino, held), "onnxruntime": (session, exact_held)})
    forced = choices(options).vocoder_engine == "onnxruntime"
    fast = seconds["onnxruntime"] <= ONNXRUNTIME_VOCODER_MARGIN * seconds["openvino"]
    record = {"taken": forced or (attempts[-1]["accurate"] and fast), "graph": EXACT_VOCODER, "replaces": VOCODER,
              "masks_dropped": masks, "quantization": VOCODER_RECIPE.to_json(),
              "float_stages": attempts[-1]["float_stages"], "attempts": attempts, "threads": options.threads,
              "calls": len(held), "seconds_on_held_out": seconds, "openvino_worst": baseline,
              "reason": _reason(seconds, attempts[-1], baseline, forced)}
    if record["taken"]:
        manifest.graphs[EXACT_VOCODER].accuracy = {"int8_vs_fp32": errors}
        if record["float_stages"] and choices(options).vocoder_tail == "whole":
            record["float_tail"] = {"taken": False, "reason": "kept inside (quantize --vocoder-tail auto|split tries "
                                                              "them on OpenVINO: faster, ~100 MiB more memory)"}
        elif record["float_stages"]:
            float_nodes = float_tails(model, MAX_FLOAT_STAGES)[record["float_stages"]]

            def bf16_gate(split) -> tuple[bool, float]:  # a speed-up may not take the audio past the audible level
                audio = graph_errors(EXACT_VOCODER, reference, run_all(split, exact_held))["audio"]
                worst = audio["log_mel_l1"]["worst"]
                return _accurate({"audio": audio}, baseline) and worst <= AUDIBLE_LOG_MEL_L1, worst

            tail = TailOptions(options.threads, beside=choices(options).vocoder_tail == "auto",
                               bf16_gate=bf16_gate if cpu.native_bf16 else None)
            record["float_tail"] = split_float_tail(source, folder, manifest, float_nodes, exact_held, session, tail)
        record["layout"] = channels_last_files(folder, manifest, _extremes(exact_held), options.threads)
    else:
        del manifest.graphs[EXACT_VOCODER]
        (folder / target).unlink()
    write_manifest(folder, manifest)
    return record


def _extremes(feeds: list[dict]) -> list[dict]:
    """The shortest and the longest of the recorded calls: the layout check runs at two lengths."""
    by_length = sorted(feeds, key=lambda feed: feed["z"].shape[-1])
    return [by_length[0], by_length[-1]] if len(by_length) > 1 else by_length


def channels_last_files(folder: Path, manifest: Manifest, feeds: list[dict], threads: int) -> dict:
    """Rewrite the 8-bit vocoder graphs the bundle ships (the one graph or the split's head, and a head beside it)
    with their element-wise operators channels-last (`onnx_layout`), each kept only where its output on `feeds`
    equals the graph it replaces; returns the record per graph."""
    record = {}
    for name in (EXACT_VOCODER, VOCODER_HEAD):
        if name not in manifest.graphs:
            continue
        path = folder / manifest.graphs[name].files["onnx"]
        model = onnx.load(str(path))
        try:
            rewritten, counts = channels_last_graph(model)
        except LayoutError as exc:
            record[name] = {"taken": False, "reason": str(exc)}
            continue
        difference = same_outputs(model, rewritten, feeds, threads)
        taken = difference <= LAYOUT_TOLERANCE
        if taken:
            onnx.save(rewritten, str(path))
        record[name] = {**counts, "difference": difference, "taken": taken,
                        "reason": f"element-wise 8-bit operators channels-last: {counts['transposes_before']} → "
                                  f"{counts['transposes_after']} transposes, output difference {difference:.1e} "
                                  f"({'taken' if taken else 'over ' + str(LAYOUT_TOLERANCE) + ': kept the source'})"}
    return record
