"""GraphSpec → ONNX (dynamo exporter, opset 23) → OpenVINO IR, and the parity check of both against PyTorch."""

from __future__ import annotations

import inspect
import logging
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.export import Dim

from .graphs import GraphSpec

OPSET = 23
EXTERNAL_DATA_BYTES = 1 << 30
_DERIVED = re.compile(r"^(\d+)\*(\w+)$")


def dynamic_shapes(spec: GraphSpec) -> tuple:
    """Per-input {axis: Dim}; axes with the same name share one Dim, `k*name` axes are derived from it."""
    dims: dict[str, Dim] = {}

    def dim(label: str):
        match = _DERIVED.match(label)
        if match:
            return int(match.group(1)) * dim(match.group(2))
        if label not in dims:
            dims[label] = Dim(label.replace(".", "_"), min=1, max=1 << 20)
        return dims[label]

    shapes = [{axis: dim(size) for axis, size in enumerate(t.shape) if isinstance(size, str)} for t in spec.inputs]
    # torch.export binds `*args` of forward() as one tuple, so their shapes are grouped the same way.
    params = list(inspect.signature(spec.module.forward).parameters.values())
    for index, param in enumerate(params):
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            return (*shapes[:index], tuple(shapes[index:]))
    return tuple(shapes)


def export_onnx(spec: GraphSpec, path: Path) -> None:
    spec.module.eval()
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            spec.module, spec.examples[0], dynamo=True, opset_version=OPSET,
            input_names=[t.name for t in spec.inputs], output_names=[t.name for t in spec.outputs],
            dynamic_shapes=dynamic_shapes(spec), optimize=True, verbose=False,
        )
    # protobuf caps one file at 2 GB: bigger graphs (MetaVoice's 1.2 B-parameter stage 1) keep their weights
    # beside the graph in `<name>.onnx.data`, which onnxruntime reads from the same folder
    weight_bytes = sum(p.numel() * p.element_size() for p in spec.module.parameters())
    weight_bytes += sum(b.numel() * b.element_size() for b in spec.module.buffers())
    program.save(str(path), external_data=weight_bytes > EXTERNAL_DATA_BYTES)


def convert_to_openvino(onnx_path: Path, runtime_options: dict):
    """ONNX → OpenVINO model carrying its compile options. Save it with `compress_to_fp16=False` to keep FP32."""
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    for key, value in runtime_options.items():
        model.set_rt_info(str(value), ["runtime_options", key])
    return model


@dataclass
class ParityResult:
    graph: str
    backend: str
    shapes: list[str]
    max_abs: float  # worst absolute error over outputs and examples (integer outputs: ids that differ)
    max_rel: float  # worst error relative to the output's peak magnitude (integer outputs: share that differs)

    def line(self) -> str:
        return (f"{self.graph:14s} {self.backend:12s} {'; '.join(self.shapes):40s} "
                f"max|Δ| {self.max_abs:.2e}  rel {self.max_rel:.2e}")


def torch_outputs(spec: GraphSpec, example) -> list[np.ndarray]:
    reference = spec.checked_against
    reference.eval()
    with torch.no_grad():
        out = reference(*example)
    out = out if isinstance(out, (tuple, list)) else (out,)
    return [o.numpy() for o in out]


def _named_axes(spec: GraphSpec, example) -> dict[str, int]:
    axes = {}
    for tensor_spec, value in zip(spec.inputs, example):
        for label, size in zip(tensor_spec.shape, value.shape):
            if isinstance(label, str) and not _DERIVED.match(label):
                axes[label] = size
    return axes


def compare(spec: GraphSpec, backend: str, run) -> ParityResult:
    """Run every example through `run(feeds) -> list[np.ndarray]` and compare with PyTorch."""
    worst_abs = worst_rel = 0.0
    shapes = []
    for example in spec.examples:
        feeds = {t.name: x.numpy() for t, x in zip(spec.inputs, example)}
        expected = torch_outputs(spec, example)
        got = run(feeds)
        for ref, out in zip(expected, got):
            if ref.shape != out.shape:
                raise AssertionError(f"{spec.name} on {backend}: output shape {out.shape} != torch {ref.shape}")
            if ref.dtype.kind in "iu":
                differ = float(np.count_nonzero(ref != out))
                worst_abs, worst_rel = max(worst_abs, differ), max(worst_rel, differ / max(ref.size, 1))
                continue
            if not (np.isfinite(ref).all() and np.isfinite(out).all()):
                # NaN compares as no difference at all (max() keeps the old worst): a checkpoint with a NaN weight
                # passed with "rel 0.0"; non-finite output anywhere fails the check instead
                worst_abs = worst_rel = math.inf
                continue
            diff = float(np.abs(ref.astype(np.float64) - out).max()) if ref.size else 0.0
            scale = float(np.abs(ref).max()) or 1.0
            worst_abs, worst_rel = max(worst_abs, diff), max(worst_rel, diff / scale)
        shapes.append(",".join(f"{label}={size}" for label, size in _named_axes(spec, example).items()))
    return ParityResult(spec.name, backend, shapes, worst_abs, worst_rel)
