"""A host-cache decode step's attention as onnxruntime's `GroupQueryAttention`, the cache written in place (shared;
knows no family, only the step graphs' naming).

Why: an exported one-token step (GPT-SoVITS' `gpt_step`) reads each layer's whole cache buffer `past_key.i` /
`past_value.i` [B, H, C, Dh], masks the spare slots with `past_mask` [B, C], and returns only the new rows
(`new_key.i` / `new_value.i`) for the host to file into the buffers. That attention is ~20 small nodes per layer
(split, reshapes, transposes, two matmuls, a concat, slices, a softmax); on a 2-core CPU each costs microseconds of
dispatch, which a bandwidth-bound step cannot hide. onnxruntime's contrib op computes the same attention in one
node per layer and, when its `present_*` outputs are bound to the `past_*` buffers, writes each row's new key and
value itself at that row's own length (`seqlens_k`): no mask, no host copy. It runs in f32 on onnxruntime's CPU
provider only (its CUDA kernel takes half precision), so only CPU-only step graphs are rewritten.

The rewrite finds the region the attention occupies (every node reached from a layer's packed-projection `Split`,
its cache buffers or the mask, stopping at the next constant-weight matmul), checks that it reads and writes
nothing else, and puts one node per layer in its place; a graph of any other shape is refused (`FusionError`), and
the caller checks the result against the plain step numerically (`check_fused_step`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgevoice.bundle import TensorSpec

# what the rewritten step reads instead of `past_mask`: each row's filled slots (= the slot its new key goes to)
# and the longest row's length after this step
IN_PLACE_INPUTS = (TensorSpec("seqlens_k", "int32", ["batch"]), TensorSpec("total_sequence_length", "int32", []))
_MATMULS = {"MatMul", "MatMulNBits", "Gemm"}
_MS_DOMAIN = "com.microsoft"


class FusionError(ValueError):
    """The step graph is not the structure this rewrite knows; the plain step stays."""


def _cache_names(layer: int) -> dict[str, str]:
    return {"past_key": f"past_key.{layer}", "past_value": f"past_value.{layer}",
            "new_key": f"new_key.{layer}", "new_value": f"new_value.{layer}"}


class _Graph:
    """Who makes and who reads each tensor of an ONNX graph."""

    def __init__(self, graph: onnx.GraphProto):
        self.nodes = list(graph.node)
        self.made_by = {out: node for node in self.nodes for out in node.output}
        self.read_by: dict[str, list] = defaultdict(list)
        for node in self.nodes:
            for tensor in node.input:
                self.read_by[tensor].append(node)
        self.constants = {t.name for t in graph.initializer} | {
            out for node in self.nodes if node.op_type == "Constant" for out in node.output}
        self.outputs = {value.name for value in graph.output}

    def is_weight_matmul(self, node) -> bool:
        return node.op_type in _MATMULS and len(node.input) > 1 and node.input[1] in self.constants

    def projection_split(self, tensor: str):
        """The 3-way `Split` the new key `tensor` comes from, through shape-only nodes."""
        node = self.made_by.get(tensor)
        while node is not None and node.op_type in {"Transpose", "Reshape", "Unsqueeze", "Squeeze", "Identity"}:
            node = self.made_by.get(node.input[0])
        if node is None or node.op_type != "Split" or len(node.output) != 3:
            raise FusionError(f"{tensor} does not come from a three-way split of a packed projection")
        return node

    def region(self, seeds: list) -> set[int]:
        """Every node reached forward from `seeds`, stopping before constant-weight matmuls (ids)."""
        found, todo = set(), list(seeds)
        while todo:
            node = todo.pop()
            if id(node) in found or self.is_weight_matmul(node):
                continue
            found.add(id(node))
            for out in node.output:
                todo.extend(self.read_by.get(out, []))
        return found


def fuse_cached_attention(model: onnx.ModelProto, layers: int, heads: int, head_dim: int) -> onnx.ModelProto:
    """`model` (a host-cache step: inputs `past_mask`, `past_key.i`, `past_value.i`; outputs `new_key.i`,
    `new_value.i`) with each layer's attention as one `GroupQueryAttention` node: inputs `seqlens_k`,
    `total_sequence_length` instead of the mask, outputs `present_key.i` / `present_value.i` (the buffers, with
    the new rows written) instead of the new rows. Raises FusionError where the graph is not that structure."""
    graph = _Graph(model.graph)
    inputs = {value.name: value for value in model.graph.input}
    names = [_cache_names(i) for i in range(layers)]
    missing = [n[key] for n in names for key in ("past_key", "past_value") if n[key] not in inputs]
    missing += [n[key] for n in names for key in ("new_key", "new_value") if n[key] not in graph.outputs]
    if "past_mask" not in inputs or missing:
        raise FusionError(f"not a host-cache step graph (missing {', '.join((missing or ['past_mask'])[:3])})")
    splits = [graph.projection_split(n["new_key"]) for n in names]
    if len({id(s) for s in splits}) != layers:
        raise FusionError("two layers share one projection split")
    readers = [node for n in names for key in ("past_key", "past_value") for node in graph.read_by[n[key]]]
    region = graph.region(splits + readers + graph.read_by["past_mask"])
    attention_out = _check_region(graph, region, names, splits)
    layer_of = {id(split): layer for layer, split in enumerate(splits)}
    fused = []
    for node in graph.nodes:  # topological order: each layer's node where its split was
        if id(node) in layer_of:
            layer = layer_of[id(node)]
            fused.append(helper.make_node(
                "GroupQueryAttention",
                [node.input[0], "", "", names[layer]["past_key"], names[layer]["past_value"], "seqlens_k",
                 "total_sequence_length"],
                [attention_out[layer], f"present_key.{layer}", f"present_value.{layer}"],
                name=f"cached_attention_{layer}", domain=_MS_DOMAIN, num_heads=heads, kv_num_heads=heads,
                scale=1.0 / math.sqrt(head_dim)))
        elif id(node) not in region:
            fused.append(node)
    return _with_interface(model, fused)


def _check_region(graph: _Graph, region: set[int], names: list[dict], splits: list) -> list[str]:
    """The attention output of each layer; refuses a region that reads or writes anything else."""
    allowed_in = {n[key] for n in names for key in ("past_key", "past_value")} | {"past_mask", ""}
    allowed_in |= {s.input[0] for s in splits} | graph.constants
    made_inside = {out for node in graph.nodes if id(node) in region for out in node.output}
    for node in graph.nodes:
        if id(node) in region:
            stray = [t for t in node.input if t not in made_inside and t not in allowed_in]
            if stray:
                raise FusionError(f"the attention reads {stray[0]!r}, which is neither a cache nor a constant")
    leaving = {t for t in made_inside
               if t in graph.outputs or any(id(r) not in region for r in graph.read_by.get(t, []))}
    cache_outputs = {n[key] for n in names for key in ("new_key", "new_value")}
    if (leaving & graph.outputs) != cache_outputs:
        raise FusionError("the attention writes graph outputs other than the new keys and values")
    per_layer = []
    for layer, split in enumerate(splits):
        own = graph.region([split]) & region
        out = [t for t in leaving - cache_outputs
               if id(graph.made_by[t]) in own and _reads_cache(graph, t, names[layer], region)]
        per_layer.append(out)
    if any(len(out) != 1 for out in per_layer) or len({o[0] for o in per_layer}) != len(per_layer):
        raise FusionError("cannot tell each layer's attention output apart")
    if len(leaving - cache_outputs) != len(per_layer):
        raise FusionError("the attention region has more outputs than one per layer")
    return [out[0] for out in per_layer]


def _reads_cache(graph: _Graph, tensor: str, names: dict, region: set[int]) -> bool:
    """Whether `tensor` depends, inside the region, on this layer's key and value buffers."""
    seen, todo, reached = set(), [tensor], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if current in (names["past_key"], names["past_value"]):
            reached.add(current)
        node = graph.made_by.get(current)
        if node is not None and id(node) in region:
            todo.extend(node.input)
    return len(reached) == 2


def _with_interface(model: onnx.ModelProto, nodes: list) -> onnx.ModelProto:
    """`model`'s graph with `nodes`, the in-place interface (`IN_PLACE_INPUTS`, `present_*`) and contrib opset."""
    graph = model.graph
    dtype = {"int32": TensorProto.INT32}
    inputs = [v for v in graph.input if v.name != "past_mask"]
    inputs += [helper.make_tensor_value_info(t.name, dtype[t.dtype], t.shape) for t in IN_PLACE_INPUTS]
    buffers = {v.name: v for v in graph.input}
    outputs = []
    for value in graph.output:
        if value.name.startswith(("new_key.", "new_value.")):
            kind, layer = value.name[len("new_"):].split(".")
            present = onnx.ValueInfoProto()
            present.CopyFrom(buffers[f"past_{kind}.{layer}"])
            present.name = f"present_{kind}.{layer}"
            outputs.append(present)
        else:
            outputs.append(value)
    used = {t for node in nodes for t in node.input}
    initialisers = [t for t in graph.initializer if t.name in used]
    fused = helper.make_graph(nodes, graph.name, inputs, outputs, initialisers)
    opsets = [o for o in model.opset_import if o.domain != _MS_DOMAIN] + [helper.make_opsetid(_MS_DOMAIN, 1)]
    return helper.make_model(fused, opset_imports=opsets, ir_version=model.ir_version)


def fuse_step_file(source: Path, target: Path, layers: int, heads: int, head_dim: int) -> None:
    """`fuse_cached_attention` from one ONNX file to another (weights kept inside: a step graph is small)."""
    onnx.save_model(fuse_cached_attention(onnx.load(str(source)), layers, heads, head_dim), str(target))


def check_fused_step(plain: Path, fused: Path, layers: int, heads: int, head_dim: int, threads: int = 1,
                     lengths: tuple[tuple[int, ...], ...] = ((5,), (3, 19))) -> float:
    """Largest difference between the two graphs' logits and new cache rows, relative to the logits' scale, for
    random caches filled to `lengths` (one tuple per call, one length per row, rows of unequal lengths included),
    fed to each graph its own way."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    plain_run = ort.InferenceSession(str(plain), options, providers=["CPUExecutionProvider"])
    fused_run = ort.InferenceSession(str(fused), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for rows in lengths:
        capacity = max(rows) + 8
        shape = (len(rows), heads, capacity, head_dim)
        buffers = {f"past_{kind}.{i}": np.zeros(shape, np.float32) for kind in ("key", "value") for i in range(layers)}
        for buffer in buffers.values():
            for row, filled in enumerate(rows):
                buffer[row, :, :filled] = rng.standard_normal((heads, filled, head_dim))
        mask = np.full((len(rows), capacity), -np.inf, np.float32)
        for row, filled in enumerate(rows):
            mask[row, :filled] = 0.0
        feeds = {"token": rng.integers(0, 100, (len(rows), 1)).astype(np.int64),
                 "position": np.array(rows, np.int64)}
        reference = dict(zip([o.name for o in plain_run.get_outputs()],
                             plain_run.run(None, {**feeds, **buffers, "past_mask": mask})))
        written = {name: buffer.copy() for name, buffer in buffers.items()}
        _run_in_place(fused_run, {**feeds, "seqlens_k": np.array(rows, np.int32),
                                  "total_sequence_length": np.array(max(rows) + 1, np.int32)}, written)
        out = written.pop("logits")
        scale = float(np.abs(reference["logits"]).max()) or 1.0
        worst = max(worst, float(np.abs(out - reference["logits"]).max()) / scale)
        for name, buffer in written.items():
            kind, layer = name[len("past_"):].split(".")
            new_rows = np.stack([buffer[row, :, filled] for row, filled in enumerate(rows)])[:, :, None]
            worst = max(worst, float(np.abs(new_rows - reference[f"new_{kind}.{layer}"]).max()) / scale)
    return worst


def _run_in_place(session, feeds: dict, buffers: dict) -> None:
    """Run the fused step with `present_*` bound to the `past_*` buffers; adds `logits` to `buffers`."""
    binding = session.io_binding()
    for name, value in {**feeds, **buffers}.items():
        binding.bind_cpu_input(name, value)
    binding.bind_output("logits")  # first: the outputs come back in binding order
    for name, buffer in buffers.items():
        present = "present_" + name[len("past_"):]
        binding.bind_output(present, "cpu", 0, np.float32, list(buffer.shape), buffer.ctypes.data)
    session.run_with_iobinding(binding)
    buffers["logits"] = binding.get_outputs()[0].numpy()


def in_place_specs(inputs: list[TensorSpec], outputs: list[TensorSpec]) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """A bundle entry's input and output specs for the fused step, from the plain step's."""
    buffers = {t.name: t for t in inputs}
    fused_inputs = [t for t in inputs if t.name != "past_mask"] + list(IN_PLACE_INPUTS)
    fused_outputs = []
    for spec in outputs:
        if spec.name.startswith(("new_key.", "new_value.")):
            past = buffers["past_" + spec.name[len("new_"):]]
            spec = TensorSpec("present_" + spec.name[len("new_"):], past.dtype, list(past.shape))
        fused_outputs.append(spec)
    return fused_inputs, fused_outputs
