"""`edgevoice_export.onnx_layout`: an 8-bit graph of 1-d convolutions with its element-wise operators channels-last
gives the same bytes with fewer transposes; graphs it does not know are refused, not half-rewritten."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the layout rewrite needs the export extra (onnx)")
pytest.importorskip("onnxruntime.quantization", reason="the layout rewrite needs onnxruntime's quantiser")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgevoice_export.onnx_layout import LayoutError, channels_last_graph, same_outputs  # noqa: E402
from edgevoice_export.quantize import OnnxRuntimeStatic, quantize_static_onnxruntime  # noqa: E402

CHANNELS = 8


def _residual_convs() -> onnx.ModelProto:
    """x → [LeakyReLU → conv → LeakyReLU → conv → + x] twice → conv: HiFi-GAN's residual blocks, in small."""
    rng = np.random.default_rng(0)
    weights, nodes, x = [], [], "x"
    for block in range(2):
        h = x
        for step in range(2):
            w = f"w{block}{step}"
            kernel = (0.3 * rng.standard_normal((CHANNELS, CHANNELS, 3))).astype(np.float32)
            weights.append(numpy_helper.from_array(kernel, w))
            nodes += [helper.make_node("LeakyRelu", [h], [f"{w}_act"], alpha=0.1),
                      helper.make_node("Conv", [f"{w}_act", w], [f"{w}_out"], pads=[1, 1], dilations=[1])]
            h = f"{w}_out"
        nodes.append(helper.make_node("Add", [h, x], [f"sum{block}"]))
        x = f"sum{block}"
    weights.append(numpy_helper.from_array((0.3 * rng.standard_normal((1, CHANNELS, 3))).astype(np.float32), "wpost"))
    nodes.append(helper.make_node("Conv", [x, "wpost"], ["audio"], pads=[1, 1]))
    graph = helper.make_graph(nodes, "residual", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                              [1, CHANNELS, "frames"])],
                              [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, 1, "frames"])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _feeds(*lengths):
    rng = np.random.default_rng(1)
    return [{"x": rng.standard_normal((1, CHANNELS, n)).astype(np.float32)} for n in lengths]


@pytest.fixture(scope="module")
def quantised(tmp_path_factory):
    target = tmp_path_factory.mktemp("layout") / "q.onnx"
    quantize_static_onnxruntime(_residual_convs(), target, _feeds(40, 60, 80), OnnxRuntimeStatic())
    return onnx.load(str(target))


def _transposes(model) -> int:
    return sum(n.op_type == "Transpose" for n in model.graph.node)


def test_the_rewrite_keeps_the_bytes_and_drops_transposes(quantised):
    rewritten, counts = channels_last_graph(quantised)
    assert counts["transposes_after"] == _transposes(rewritten) < counts["transposes_before"]
    ops = {(n.domain, n.op_type) for n in rewritten.graph.node}
    assert ("com.microsoft", "QLinearConv") in ops and ("com.microsoft", "QLinearAdd") in ops
    assert same_outputs(quantised, rewritten, _feeds(17, 123), threads=1) == 0.0  # two lengths, exact


def test_the_check_sees_a_changed_graph(quantised):
    rewritten, _ = channels_last_graph(quantised)
    scale = next(t for t in rewritten.graph.initializer if t.name.endswith("_scale") and t.data_type == 1
                 and len(t.dims) == 0)
    scale.CopyFrom(numpy_helper.from_array(2 * numpy_helper.to_array(scale), scale.name))
    assert same_outputs(quantised, rewritten, _feeds(31), threads=1) > 1e-3


def test_a_graph_whose_output_is_a_transposed_copy_is_refused():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 4])
    graph = helper.make_graph([helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 1])], "t", [x], [y])
    with pytest.raises(LayoutError, match="transposed copy"):
        channels_last_graph(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
