"""Shared export machinery: GraphSpecs → ONNX and/or OpenVINO IR in a bundle folder, each file checked against
PyTorch on every example before its manifest entry is made. Knows no model family."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgevoice.bundle import Bundle, GraphEntry, Manifest, TensorSpec, sha256_file, write_manifest
from edgevoice.errors import EdgevoiceError

from .graphs import GraphSpec


def save_ir(model, path: Path) -> None:
    """Write an OpenVINO IR (`.xml` + `.bin`); a failed write (a full disk, a folder gone) is a one-line error."""
    import openvino as ov

    try:
        ov.save_model(model, str(path), compress_to_fp16=False)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1]
        if "iostream error" in reason:  # how OpenVINO reports a write that failed midway, e.g. on a full disk
            reason = "a write failed midway: is the disk full?"
        raise EdgevoiceError(f"cannot write {path.name} in {path.parent} ({reason})") from None
from .onnx_export import ParityResult, compare, convert_to_openvino, export_onnx

FORMATS = ("openvino", "onnx")
# An FP32 graph that disagrees with PyTorch by more than this (relative to the output's peak) is a bug.
FP32_PARITY_LIMIT = 1e-3
# A graph whose outputs are all ids (HuBERT's codes: the nearest codebook entry of each frame) may differ from
# PyTorch in at most this share of them: another engine's float rounding can flip a near-tie between two entries
# (none measured on full-size random weights), but a wrong graph differs almost everywhere.
ID_PARITY_LIMIT = 0.01


@dataclass(frozen=True)
class ExportOptions:
    """Where and how a bundle is written; every family's exporter takes these."""

    out: Path
    formats: tuple[str, ...] = FORMATS  # "openvino" (IR) and/or "onnx" (onnxruntime CPU/CUDA); one alone halves it
    overwrite: bool = False
    threads: int = 2
    progress: bool = True


@dataclass
class ExportReport:
    bundle: Path
    seconds: float
    parity: list[ParityResult] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [r.line() for r in self.parity]


def input_paths(files) -> list[Path]:
    """The paths a family's files dataclass (`GptSovitsFiles`, …) names: what `--overwrite` must never remove."""
    values = (getattr(files, item.name) for item in dataclasses.fields(files))
    return [Path(v) for v in values if isinstance(v, (str, Path)) and v]


def write_checked_manifest(folder: Path, manifest: Manifest) -> None:
    """`write_manifest`, then the bundle opened as the runtime opens it (its family's synthesizer; no graph is
    compiled): every check the runtime makes of a manifest runs before the bundle is renamed into place, so an export
    never leaves a bundle the runtime would refuse (a one-line BundleError names the fact instead)."""
    from edgevoice.families import family_module

    write_manifest(folder, manifest)
    family_module(manifest.family).Synthesizer(Bundle.load(folder, verify=False), backend="openvino", threads=1)


def folder_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(path.name.encode() + sha256_file(path).encode())
    return digest.hexdigest()


def _compile(model_or_path, threads: int):
    import openvino as ov

    return ov.Core().compile_model(model_or_path, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                          "KV_CACHE_PRECISION": "f32",
                                                          "INFERENCE_NUM_THREADS": threads})


def _openvino_session_runner(xml: Path, threads: int):
    compiled = _compile(str(xml), threads)
    request = compiled.create_infer_request()

    def run(feeds):
        request.infer(feeds)
        return [request.get_tensor(port).data.copy() for port in compiled.outputs]

    return run


def _openvino_stateful_runner(xml: Path, spec: GraphSpec, variables: dict[str, str], threads: int):
    """Runs a stateful IR like its explicit original: the cache inputs seed the state, the state after the call
    is returned in place of the cache outputs (so `compare` checks the in-place append too)."""
    from edgevoice.backends import OpenVINOSession

    from .stateful import BEAM_INPUT, fused_attention_count

    compiled = _compile(str(xml), threads)
    if fused_attention_count(compiled) == 0:
        raise RuntimeError(f"{spec.name}: OpenVINO did not fuse the stateful attention (check the IR pattern)")
    session = OpenVINOSession(compiled)
    seed_input = {variable: past for past, present in spec.stateful.items()
                  for variable, out in variables.items() if out == present}

    def run(feeds):
        session.set_states({variable: feeds[past] for variable, past in seed_input.items()})
        plain = {k: v for k, v in feeds.items() if k not in spec.stateful}
        rows = feeds[next(iter(spec.stateful))].shape[0]
        outputs = session.run({**plain, BEAM_INPUT: np.arange(rows, dtype=np.int32)})
        outputs.update({variables[name]: value for name, value in session.states().items()})
        return [outputs[t.name] for t in spec.outputs]

    return run


def _onnxruntime_runner(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(None, feeds)


def beam_size(spec: GraphSpec) -> int | str:
    """Rows of a stateful graph's caches (their first axis: a number, or the name of a dynamic batch)."""
    first_cache = next(t for t in spec.inputs if t.name in spec.stateful)
    return first_cache.shape[0]


def _stateful_entry_specs(spec: GraphSpec) -> tuple[list[TensorSpec], list[TensorSpec]]:
    from .stateful import BEAM_INPUT

    inputs = [t for t in spec.inputs if t.name not in spec.stateful] + [TensorSpec(BEAM_INPUT, "int32",
                                                                                   [beam_size(spec)])]
    outputs = [t for t in spec.outputs if t.name not in spec.stateful.values()]
    return inputs, outputs


class ParityCheckError(EdgevoiceError):
    """An exported graph disagrees with the PyTorch reference: the bundle is not written."""


def export_graph(spec: GraphSpec, folder: Path,
                 threads: int = ExportOptions.threads) -> tuple[GraphEntry, list[ParityResult]]:
    """Export one graph to ONNX and/or IR inside `folder`, check each against PyTorch, return its manifest entry.
    A graph with `stateful` caches ships only as a stateful IR (its ONNX is an intermediate)."""
    onnx_path, xml_path = folder / f"{spec.name}.onnx", folder / f"{spec.name}.xml"
    export_onnx(spec, onnx_path)
    options = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}
    results, files = [], {}
    inputs, outputs, variables = spec.inputs, spec.outputs, {}
    if "onnx" in spec.formats:
        results.append(compare(spec, "onnxruntime", _onnxruntime_runner(onnx_path, threads)))
        files["onnx"] = onnx_path.name
    if "openvino" in spec.formats:
        model = convert_to_openvino(onnx_path, options)
        if spec.stateful:
            from .stateful import make_stateful

            variables = make_stateful(model, spec.stateful)
            inputs, outputs = _stateful_entry_specs(spec)
        save_ir(model, xml_path)
        del model  # the check compiles the saved IR; a 5 GB graph must not be held twice meanwhile
        runner = (_openvino_stateful_runner(xml_path, spec, variables, threads) if spec.stateful
                  else _openvino_session_runner(xml_path, threads))
        results.append(compare(spec, "openvino", runner))
        files["openvino"] = xml_path.name
    if "onnx" not in spec.formats:
        onnx_path.unlink()
        onnx_path.with_name(onnx_path.name + ".data").unlink(missing_ok=True)
    float_outputs = any(t.dtype.startswith("float") for t in spec.outputs)
    limit, of_what = ((FP32_PARITY_LIMIT, "relative to the output's peak") if float_outputs
                      else (ID_PARITY_LIMIT, "share of the ids that differ"))
    for result in results:
        if result.max_rel > limit:
            hint = " — NaN or infinite values: a checkpoint weight that is not finite?" if math.isinf(result.max_rel) \
                else ""
            raise ParityCheckError(f"parity check failed, nothing written: {result.line()} (limit {limit:g}, "
                                   f"{of_what}){hint}")
    entry = GraphEntry(spec.name, files, "fp32", inputs, outputs, {"openvino": options},
                       {"fp32_vs_torch": {r.backend: {"max_abs": r.max_abs, "max_rel": r.max_rel,
                                                       "shapes": r.shapes} for r in results}},
                       states=variables)
    return entry, results


def check_formats(formats: tuple[str, ...]) -> None:
    unknown = set(formats) - set(FORMATS)
    if unknown or not formats:
        raise EdgevoiceError(f"unknown bundle formats {sorted(unknown) or '(none)'}: choose from {', '.join(FORMATS)}")


def export_graphs(specs: list[GraphSpec], folder: Path, formats: tuple[str, ...] = FORMATS,
                  threads: int = ExportOptions.threads, progress: bool = True
                  ) -> tuple[dict[str, GraphEntry], list[ParityResult]]:
    """Export every spec into `folder` (only the files of the wanted `formats`), with a progress bar."""
    check_formats(formats)
    wanted = [replace(s, formats=tuple(f for f in s.formats if f in formats)) for s in specs]
    wanted = [s for s in wanted if s.formats]  # e.g. the decode graph of a runtime that is not shipped
    graphs, parity = {}, []
    bar = tqdm(wanted, desc="exporting", unit="graph", disable=not progress)
    for spec in bar:
        bar.set_postfix_str(spec.name)
        graphs[spec.name], results = export_graph(spec, folder, threads)
        parity.extend(results)
    return graphs, parity
