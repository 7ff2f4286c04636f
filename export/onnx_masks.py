"""Mask-free copies of exported ONNX graphs (shared; knows no family).

Why: a graph that runs padded to a few fixed lengths (so that OpenVINO keeps memory for a few shapes only) multiplies
its activations by a length mask before each layer. onnxruntime needs no fixed shapes (its arena is bounded by the
largest call), and there the masks cost more than their multiplications: each one sits between a quantised layer's
output and the next layer's input, so a static-INT8 graph has to leave 8 bits for every mask (dequantise, multiply,
quantise again) instead of chaining 8-bit operators. Run at the exact length, the masks are all ones and can go.
"""

from __future__ import annotations

import onnx


def drop_input_masks(model: onnx.ModelProto, mask_input: str) -> int:
    """Remove from `model` (in place) every multiplication by a tensor computed from the graph input `mask_input`,
    then the nodes and the input left unused. Only valid where the graph is run with `mask_input` meaning "no
    masking" (the full length). Returns the number of multiplications removed; raises ValueError where the input
    also feeds anything else than a mask."""
    graph = model.graph
    derived = {mask_input}  # tensors computed from the mask input (nodes are topologically sorted)
    bypass: dict[str, str] = {}  # the output of a masking Mul -> the tensor it masks
    for node in graph.node:
        inputs = [name for name in node.input if name]
        masked = [name for name in inputs if name not in derived]
        if not any(name in derived for name in inputs):
            continue
        if node.op_type == "Mul" and len(masked) == 1:
            bypass[node.output[0]] = masked[0]
        else:
            derived.update(node.output)
    for node in graph.node:
        for i, name in enumerate(node.input):
            while name in bypass:
                name = bypass[name]
            node.input[i] = name
    if any(output.name in derived or output.name in bypass for output in graph.output):
        raise ValueError(f"a graph output depends on {mask_input!r} through more than masks")
    needed = {output.name for output in graph.output}
    alive = []
    for node in reversed(graph.node):
        if any(name in needed for name in node.output):
            alive.append(node)
            needed.update(node.input)
    if mask_input in needed:
        user = next(n for n in alive if derived & set(n.input))
        raise ValueError(f"{mask_input!r} feeds a {user.op_type} node, not only masks")
    del graph.node[:]
    graph.node.extend(reversed(alive))
    inputs = [value for value in graph.input if value.name in needed]
    del graph.input[:]
    graph.input.extend(inputs)
    initializers = [tensor for tensor in graph.initializer if tensor.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    return len(bypass)
