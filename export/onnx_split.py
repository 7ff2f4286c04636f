"""Cut an exported ONNX graph in two at one tensor (shared; knows no family).

Why: one engine is not the fastest for every part of a graph. A head can stay on one engine's 8-bit operators while
a float tail runs on another engine whose float kernels are faster for it; the two halves are the same operators
as the whole, so they compute the same numbers.
"""

from __future__ import annotations

import onnx
from onnx import helper


def subgraph(model: onnx.ModelProto, outputs: dict[str, str], inputs: dict[str, onnx.ValueInfoProto],
             name: str) -> onnx.ModelProto:
    """The part of `model` that computes `outputs` ({tensor: name it gets}) from `inputs` ({tensor: its new graph
    input, named as it will be}) and whatever graph inputs and initialisers it reaches. Raises ValueError where an
    output cannot be computed (a tensor no node makes, that is no input either)."""
    graph = model.graph
    made_by = {out: node for node in graph.node for out in node.output}
    constants = {tensor.name for tensor in graph.initializer}
    graph_inputs = {value.name: value for value in graph.input}
    needed, kept, seen = list(outputs), set(), set()
    while needed:
        tensor = needed.pop()
        if tensor in seen or tensor in inputs or tensor in constants or tensor in graph_inputs or not tensor:
            continue
        seen.add(tensor)
        if tensor not in made_by:
            raise ValueError(f"no node makes {tensor!r}")
        node = made_by[tensor]
        kept.add(id(node))
        needed.extend(node.input)
    rename = {old: value.name for old, value in inputs.items()} | outputs
    nodes = []
    for node in graph.node:  # topological order kept
        if id(node) in kept:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.input[:] = [rename.get(i, i) for i in node.input]
            copy.output[:] = [rename.get(o, o) for o in node.output]
            nodes.append(copy)
    used = {i for node in nodes for i in node.input}
    new_inputs = [value for value in inputs.values() if value.name in used]
    new_inputs += [value for tensor, value in graph_inputs.items() if tensor in used and tensor not in inputs]
    new_outputs = [helper.make_tensor_value_info(new, onnx.TensorProto.FLOAT, None) for new in outputs.values()]
    for value in graph.output:  # a graph output kept under its own name keeps its type and shape
        if outputs.get(value.name) == value.name:
            new_outputs[list(outputs).index(value.name)] = value
    initialisers = [tensor for tensor in graph.initializer if tensor.name in used]
    return helper.make_model(helper.make_graph(nodes, name, new_inputs, new_outputs, initialisers),
                             opset_imports=model.opset_import, ir_version=model.ir_version)
