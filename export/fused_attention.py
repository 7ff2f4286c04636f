"""A host-cache decode step's attention as onnxruntime's `GroupQueryAttention`, the cache written in place (shared;
knows no family, only the step graphs' naming).

Why: an exported decode step (GPT-SoVITS' `gpt_step`, MetaVoice's `stage1_step`) reads each layer's whole cache
buffer `past_key.i` / `past_value.i` [B, H, C, Dh], masks the spare slots with `past_mask` [B, C], and returns
only the new rows (`new_key.i` / `new_value.i`) for the host to file into the buffers. That attention is ~20
small nodes per layer (split, reshapes, transposes, two matmuls, a concat, slices, a softmax); on a 2-core CPU each
costs microseconds of dispatch, which a bandwidth-bound step cannot hide. onnxruntime's contrib op computes the
same attention in one node per layer and, when its `present_*` outputs are bound to the `past_*` buffers, writes
each row's new key and value itself at that row's own length (`seqlens_k`): no mask, no host copy. The rewritten
steps are CPU graphs (8-bit `MatMulNBits`); the cache stays f32 or (`cache_dtype`) half precision.

The rewrite finds the region the attention occupies (every node reached from where a layer's packed q ‖ k ‖ v
projection is cut — a `Split`, or the `Slice`s of an unbind — from its cache buffers or the mask, stopping at the
next constant-weight matmul), checks that it reads nothing else but tensors made from constants and shapes (such as
the causal mask among a prefill's new tokens, which the fused node applies itself) and writes nothing else, and
puts one node per layer in its place; a graph of any other shape is refused (`FusionError`), and
the caller checks the result against the plain step numerically (`check_fused_step`).
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgevoice.bundle import TensorSpec
from edgevoice.kv_cache import IN_PLACE_INPUT_NAMES, in_place_feeds

# what the rewritten step reads instead of `past_mask`: each row's filled slots (= the slot its new key goes to)
# and the longest row's length after this step
IN_PLACE_INPUTS = (TensorSpec(IN_PLACE_INPUT_NAMES[0], "int32", ["batch"]),
                   TensorSpec(IN_PLACE_INPUT_NAMES[1], "int32", []))
# the step's inputs other than the caches for one call: (each row's filled slots, new tokens per row, rng) → feeds
StepFeeds = Callable[[tuple[int, ...], int, np.random.Generator], dict[str, np.ndarray]]
_MATMULS = {"MatMul", "MatMulNBits", "Gemm"}
_SHAPE_ONLY = {"Transpose", "Reshape", "Unsqueeze", "Squeeze", "Identity"}
_SLICING = {"Split", "Slice", "Gather"}
_MS_DOMAIN = "com.microsoft"
# the cache precisions onnxruntime's CPU kernel takes (measured on MetaVoice-1B's INT8 step, 2 rows, Zen 4: half
# precision as fast as f32 at 64–1500 positions — its kernel converts as it reads — for half the memory)
_CACHE_TYPES = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}


GQA_HEAD_MULTIPLE = 8  # onnxruntime 1.32's CPU kernel refuses other head sizes when the session is made


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

    def packed_projection(self, tensor: str) -> str:
        """The packed q ‖ k ‖ v tensor the new key `tensor` is cut from (through shape-only and slicing nodes:
        a `Split`, or `Slice`s of a view, as exporters write an unbind)."""
        node, cut = self.made_by.get(tensor), False
        while node is not None and node.op_type in _SHAPE_ONLY | _SLICING:
            cut = cut or node.op_type in _SLICING
            tensor = node.input[0]
            node = self.made_by.get(tensor)
        if node is None or not cut:
            raise FusionError(f"{tensor} is not cut from a packed projection")
        return tensor

    def data_free(self) -> set[str]:
        """Tensors that depend on no tensor's values, only on constants and shapes (e.g. a causal mask made from
        the number of new tokens): the fused attention makes what they describe itself."""
        free = set(self.constants)
        for node in self.nodes:
            if node.op_type == "Shape" or (node.input and all(t in free or not t for t in node.input)):
                free.update(node.output)
        return free

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


def fuse_cached_attention(model: onnx.ModelProto, layers: int, heads: int, head_dim: int,
                          cache_dtype: str = "float32") -> onnx.ModelProto:
    """`model` (a host-cache step: inputs `past_mask`, `past_key.i`, `past_value.i`; outputs `new_key.i`,
    `new_value.i`) with each layer's attention as one `GroupQueryAttention` node: inputs `seqlens_k`,
    `total_sequence_length` instead of the mask, outputs `present_key.i` / `present_value.i` (the buffers, with
    the new rows written) instead of the new rows. `cache_dtype` "float16" keeps the buffers in half precision
    (the attention then runs in it, its input and output cast). `model` is changed in place. Raises FusionError
    where the graph is not that structure."""
    if cache_dtype not in _CACHE_TYPES:
        raise ValueError(f"cache_dtype is one of {', '.join(_CACHE_TYPES)}, not {cache_dtype!r}")
    if head_dim % GQA_HEAD_MULTIPLE:  # a valid model (upstream asks only n_embd % n_head == 0): the caller falls back
        raise FusionError(f"onnxruntime's GroupQueryAttention takes heads of a multiple of {GQA_HEAD_MULTIPLE} values, "
                          f"not {head_dim}")
    graph = _Graph(model.graph)
    inputs = {value.name: value for value in model.graph.input}
    names = [_cache_names(i) for i in range(layers)]
    missing = [n[key] for n in names for key in ("past_key", "past_value") if n[key] not in inputs]
    missing += [n[key] for n in names for key in ("new_key", "new_value") if n[key] not in graph.outputs]
    if "past_mask" not in inputs or missing:
        raise FusionError(f"not a host-cache step graph (missing {', '.join((missing or ['past_mask'])[:3])})")
    packed = [graph.packed_projection(n["new_key"]) for n in names]
    if len(set(packed)) != layers:
        raise FusionError("two layers share one packed projection")
    readers = [node for n in names for key in ("past_key", "past_value") for node in graph.read_by[n[key]]]
    seeds = [node for tensor in packed for node in graph.read_by[tensor]]
    region = graph.region(seeds + readers + graph.read_by["past_mask"])
    attention_out = _check_region(graph, region, names, packed)
    # each layer's node goes where its packed projection is first read (its inputs all exist there)
    first_reader = {id(graph.read_by[tensor][0]): layer for layer, tensor in enumerate(packed)}
    fused = []
    for node in graph.nodes:  # topological order
        if id(node) in first_reader:
            layer = first_reader[id(node)]
            query_scaling = _prescale_query(model.graph, graph, packed[layer], layer, heads * head_dim,
                                            1.0 / math.sqrt(head_dim))
            fused += query_scaling
            query = query_scaling[-1].output[0] if query_scaling else packed[layer]
            fused += _attention_node(layer, query, attention_out[layer], names[layer], heads, cache_dtype)
        elif id(node) not in region:
            fused.append(node)
    return _with_interface(model, _live(fused, {value.name for value in model.graph.output}), cache_dtype)


def _prescale_query(onnx_graph: onnx.GraphProto, graph: _Graph, packed: str, layer: int, width: int,
                    factor: float) -> list:
    """Scale the query (the first `width` columns of the packed projection) by `factor` = 1/sqrt(head_dim), so the
    fused node runs with `scale` 1. Why: onnxruntime's CPU attention multiplies q·kᵀ through MLAS' SGEMM, which
    only takes its one-row kernel (reading the cached keys in place) when alpha is 1; any other alpha packs every
    head's keys into a transposed panel on every step. Folded into the projection's own weight and bias where the
    packed tensor is `MatMul(x, W) [+ b]` with constants no other node reads (no node added); else one `Mul`
    node, returned for the caller to place. Measured (full-size GPT-SoVITS v2 8-bit step, every buffer bound, AMX
    Xeon, 2 threads, the two steps alternating in one process, medians; RESULTS.md session 22): one row 3.9 → 3.4 /
    7.3 → 7.2 / 12.7 → 11.5 ms at 50 / 400 / 1000 positions, and 8.6 → 8.2 / 13.4 → 13.3 at 400 / 1000 in a
    slower sitting; 8 rows 13.2 → 13.4 / 34.5 → 33.2 / 70.8 → 63.1: 1-13 % faster in 7 of 8 pairs. The attention
    nodes alone, without the step's weights around them (`benchmarks/attention_cache.py --scales 1 0`), ran the
    same either way, so what it saves is probably the packing's traffic through the caches the weights pass
    through, not arithmetic."""
    weights = _projection_constants(onnx_graph, graph, packed, 3 * width)
    if weights is not None:
        for tensor in weights:
            values = numpy_helper.to_array(tensor).copy()
            values[..., :width] *= np.asarray(factor, values.dtype)
            tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
        return []
    scales = np.ones(3 * width, np.float32)
    scales[:width] = factor
    name = f"cached_attention_{layer}_query_scale"
    onnx_graph.initializer.append(numpy_helper.from_array(scales, name))
    return [helper.make_node("Mul", [packed, name], [f"{packed}/scaled_query"], name=name)]


def _projection_constants(onnx_graph: onnx.GraphProto, graph: _Graph, packed: str, columns: int) -> list | None:
    """The weight (and bias) initializers `packed` = `MatMul(x, W) [+ b]` is made from, each [..., `columns`] and
    read by that node alone; None where the projection is any other shape."""
    initializers = {t.name: t for t in onnx_graph.initializer}
    found, node = [], graph.made_by.get(packed)
    if node is not None and node.op_type == "Add":
        bias = [t for t in node.input if t in initializers]
        others = [t for t in node.input if t not in initializers]
        if len(bias) != 1 or len(others) != 1:
            return None
        found.append(initializers[bias[0]])
        node = graph.made_by.get(others[0])
    if node is None or node.op_type != "MatMul" or node.input[1] not in initializers:
        return None
    found.append(initializers[node.input[1]])
    for tensor in found:
        if tensor.dims[-1] != columns or len(graph.read_by[tensor.name]) != 1 or tensor.data_type != TensorProto.FLOAT:
            return None
    return found


def _attention_node(layer: int, packed: str, out: str, names: dict, heads: int, cache_dtype: str) -> list:
    """One layer's `GroupQueryAttention` (with casts around it for a half-precision cache); its query comes
    scaled (`_prescale_query`)."""
    half = cache_dtype == "float16"
    query, attended = (f"{packed}/half", f"{out}/half") if half else (packed, out)
    node = helper.make_node(
        "GroupQueryAttention",
        [query, "", "", names["past_key"], names["past_value"], "seqlens_k", "total_sequence_length"],
        [attended, f"present_key.{layer}", f"present_value.{layer}"],
        name=f"cached_attention_{layer}", domain=_MS_DOMAIN, num_heads=heads, kv_num_heads=heads, scale=1.0)
    if not half:
        return [node]
    return [helper.make_node("Cast", [packed], [query], to=TensorProto.FLOAT16, name=f"cached_attention_{layer}_in"),
            node,
            helper.make_node("Cast", [attended], [out], to=TensorProto.FLOAT, name=f"cached_attention_{layer}_out")]


def _live(nodes: list, outputs: set[str]) -> list:
    """`nodes` without those nothing reads any more (what made the masks the fused attention replaces)."""
    needed, kept = set(outputs), []
    for node in reversed(nodes):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(node.input)
    return kept[::-1]


def _check_region(graph: _Graph, region: set[int], names: list[dict], packed: list[str]) -> list[str]:
    """The attention output of each layer; refuses a region that reads or writes anything else."""
    allowed_in = {n[key] for n in names for key in ("past_key", "past_value")} | {"past_mask", ""}
    allowed_in |= set(packed) | graph.data_free()
    made_inside = {out for node in graph.nodes if id(node) in region for out in node.output}
    for node in graph.nodes:
        if id(node) in region:
            stray = [t for t in node.input if t not in made_inside and t not in allowed_in]
            if stray:
                raise FusionError(f"the attention reads {stray[0]!r}, which is neither a cache nor made from "
                                  "constants and shapes")
    leaving = {t for t in made_inside
               if t in graph.outputs or any(id(r) not in region for r in graph.read_by.get(t, []))}
    cache_outputs = {n[key] for n in names for key in ("new_key", "new_value")}
    if (leaving & graph.outputs) != cache_outputs:
        raise FusionError("the attention writes graph outputs other than the new keys and values")
    per_layer = []
    for layer, tensor in enumerate(packed):
        own = graph.region(graph.read_by[tensor]) & region
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


def _with_interface(model: onnx.ModelProto, nodes: list, cache_dtype: str) -> onnx.ModelProto:
    """`model` (changed in place: a step's weights may be gigabytes, not copied) with `nodes`, the in-place
    interface (`IN_PLACE_INPUTS`, `present_*`) and the contrib opset."""
    graph = model.graph
    dtype = {"int32": TensorProto.INT32}
    buffers = {v.name: v for v in graph.input}
    inputs = [v for v in graph.input if v.name != "past_mask"]
    for value in inputs:
        if value.name.startswith(("past_key.", "past_value.")):
            value.type.tensor_type.elem_type = _CACHE_TYPES[cache_dtype]
    inputs += [helper.make_tensor_value_info(t.name, dtype[t.dtype], t.shape) for t in IN_PLACE_INPUTS]
    outputs = []
    for value in graph.output:
        if value.name.startswith(("new_key.", "new_value.")):
            kind, layer = value.name[len("new_"):].split(".")
            value = copy.deepcopy(buffers[f"past_{kind}.{layer}"])
            value.name = f"present_{kind}.{layer}"
        outputs.append(copy.deepcopy(value))
    inputs = [copy.deepcopy(v) for v in inputs]
    used = {t for node in nodes for t in node.input}
    unused = [i for i, t in enumerate(graph.initializer) if t.name not in used]
    for index in reversed(unused):
        del graph.initializer[index]
    nodes = [copy.deepcopy(node) for node in nodes]
    for field, values in (("node", nodes), ("input", inputs), ("output", outputs)):
        del getattr(graph, field)[:]
        getattr(graph, field).extend(values)
    del graph.value_info[:]
    opsets = [o for o in model.opset_import if o.domain != _MS_DOMAIN] + [helper.make_opsetid(_MS_DOMAIN, 1)]
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    return model


def fuse_step_file(source: Path, target: Path, layers: int, heads: int, head_dim: int,
                   cache_dtype: str = "float32") -> None:
    """`fuse_cached_attention` from one ONNX file to another; weights over protobuf's 2 GB limit go to
    `target` + ".data" (where onnxruntime looks for them)."""
    fused = fuse_cached_attention(onnx.load(str(source)), layers, heads, head_dim, cache_dtype)
    # ByteSize() itself fails past 2 GB: count the weights' bytes instead
    large = sum(len(t.raw_data) for t in fused.graph.initializer) >= 2**31 - 2**26
    onnx.save_model(fused, str(target), save_as_external_data=large, all_tensors_to_one_file=True,
                    location=Path(target).name + ".data")


def check_fused_step(plain: Path, fused: Path, layers: int, heads: int, head_dim: int, step_feeds: StepFeeds,
                     calls: tuple[tuple[tuple[int, ...], int], ...], threads: int = 1) -> float:
    """Largest difference between the two graphs' logits and new cache rows, relative to the logits' scale, over
    `calls`: (each row's filled slots, new tokens per row), random caches, each graph fed its own way.
    `step_feeds(filled, new, rng)` gives the step's other inputs (tokens, positions, ...) for one call."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    plain_run = ort.InferenceSession(str(plain), options, providers=["CPUExecutionProvider"])
    fused_run = ort.InferenceSession(str(fused), options, providers=["CPUExecutionProvider"])
    cache_type = {"tensor(float)": np.float32, "tensor(float16)": np.float16}[
        next(i.type for i in fused_run.get_inputs() if i.name == "past_key.0")]
    rng = np.random.default_rng(0)
    worst = 0.0
    for rows, new in calls:
        capacity = max(rows) + new + 8
        shape = (len(rows), heads, capacity, head_dim)
        buffers = {f"past_{kind}.{i}": np.zeros(shape, np.float32) for kind in ("key", "value") for i in range(layers)}
        for buffer in buffers.values():
            for row, filled in enumerate(rows):
                buffer[row, :, :filled] = rng.standard_normal((heads, filled, head_dim))
        mask = np.full((len(rows), capacity), -np.inf, np.float32)
        for row, filled in enumerate(rows):
            mask[row, :filled] = 0.0
        feeds = step_feeds(rows, new, rng)
        reference = dict(zip([o.name for o in plain_run.get_outputs()],
                             plain_run.run(None, {**feeds, **buffers, "past_mask": mask})))
        written = {name: buffer.astype(cache_type) for name, buffer in buffers.items()}
        _run_in_place(fused_run, {**feeds, **in_place_feeds(np.array(rows), new)}, written)
        out = written.pop("logits")
        scale = float(np.abs(reference["logits"]).max()) or 1.0
        worst = max(worst, float(np.abs(out - reference["logits"]).max()) / scale)
        for name, buffer in written.items():
            kind, layer = name[len("past_"):].split(".")
            new_rows = np.stack([buffer[row, :, filled:filled + new] for row, filled in enumerate(rows)]).astype(
                np.float32)
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
        binding.bind_output(present, "cpu", 0, buffer.dtype, list(buffer.shape), buffer.ctypes.data)
    session.run_with_iobinding(binding)
    buffers["logits"] = binding.get_outputs()[0].numpy()


def in_place_specs(inputs: list[TensorSpec], outputs: list[TensorSpec], cache_dtype: str = "float32"
                   ) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """A bundle entry's input and output specs for the fused step, from the plain step's."""
    inputs = [TensorSpec(t.name, cache_dtype, list(t.shape)) if t.name.startswith(("past_key.", "past_value."))
              else t for t in inputs]
    buffers = {t.name: t for t in inputs}
    fused_inputs = [t for t in inputs if t.name != "past_mask"] + list(IN_PLACE_INPUTS)
    fused_outputs = []
    for spec in outputs:
        if spec.name.startswith(("new_key.", "new_value.")):
            past = buffers["past_" + spec.name[len("new_"):]]
            spec = TensorSpec("present_" + spec.name[len("new_"):], past.dtype, list(past.shape))
        fused_outputs.append(spec)
    return fused_inputs, fused_outputs
