"""The export-time rewrite of ConvTranspose1d into a strided-phase Conv1d (export/conv_rewrite.py): the same map in
PyTorch, through ONNX / OpenVINO at two lengths, and the vocoders we ship carry no transposed convolution."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgevoice.bundle import Bundle, TensorSpec  # noqa: E402
from edgevoice_export.conv_rewrite import PhaseConvTranspose1d, rewrite_conv_transpose  # noqa: E402
from edgevoice_export.graph_export import export_graph  # noqa: E402
from edgevoice_export.graphs import GraphSpec  # noqa: E402

# (kernel, stride, padding): HiFi-GAN's (k, u, (k - u) // 2) at GPT-SoVITS / EmotiVoice rates, kernels that are not a
# multiple of the stride, no padding, and stride 1.
CASES = [(16, 10, 3), (16, 8, 4), (8, 2, 3), (2, 2, 0), (4, 2, 1), (11, 4, 0), (11, 4, 5), (7, 3, 2), (3, 1, 1)]


@pytest.mark.parametrize("kernel,stride,padding", CASES)
def test_same_output_as_the_transposed_conv(kernel, stride, padding):
    torch.manual_seed(kernel * 100 + stride)
    source = torch.nn.ConvTranspose1d(5, 3, kernel, stride, padding)
    rewritten = PhaseConvTranspose1d(source)
    for frames in (1, 4, 37):
        if (frames - 1) * stride + kernel <= 2 * padding:
            continue  # no output at all
        x = torch.randn(2, 5, frames)
        expected = source(x)
        got = rewritten(x)
        assert got.shape == expected.shape
        assert (got - expected).abs().max() <= 1e-6 * expected.abs().max()


def test_zero_input_gives_the_bias_everywhere():
    """The padding masks rely on this: zeros past the real frames stay bias-only, as in the transposed conv."""
    source = torch.nn.ConvTranspose1d(4, 2, 16, 8, 4)
    out = PhaseConvTranspose1d(source)(torch.zeros(1, 4, 6))
    assert torch.allclose(out, source.bias.detach().view(1, 2, 1).expand_as(out))


def test_refuses_what_it_cannot_express():
    for source in (torch.nn.ConvTranspose1d(4, 4, 4, 2, groups=2), torch.nn.ConvTranspose1d(4, 4, 4, 2, dilation=2),
                   torch.nn.ConvTranspose1d(4, 4, 4, 2, output_padding=1)):
        with pytest.raises(ValueError, match="only ConvTranspose1d"):
            PhaseConvTranspose1d(source)


def test_rewrites_nested_modules_and_counts_them():
    inner = torch.nn.ModuleList([torch.nn.ConvTranspose1d(4, 2, 8, 4, 2), torch.nn.Conv1d(2, 2, 3)])
    model = torch.nn.Sequential(torch.nn.ConvTranspose1d(4, 4, 4, 2, 1), inner)
    x = torch.randn(1, 4, 9)
    expected = model[1][0](model[0](x))
    assert rewrite_conv_transpose(model) == 2
    assert not any(isinstance(m, torch.nn.ConvTranspose1d) for m in model.modules())
    assert torch.allclose(model[1][0](model[0](x)), expected, atol=1e-6)


def test_exported_graph_matches_pytorch_at_two_lengths(tmp_path):
    """Dynamic time axis: the cut is a constant offset from the end, so one graph serves every length."""
    torch.manual_seed(0)
    ups = torch.nn.Sequential(torch.nn.ConvTranspose1d(8, 4, 16, 8, 4), torch.nn.LeakyReLU(0.1),
                              torch.nn.ConvTranspose1d(4, 2, 8, 2, 3))
    x_short, x_long = torch.randn(1, 8, 5), torch.randn(1, 8, 23)
    expected = [ups(x_short).detach(), ups(x_long).detach()]
    rewrite_conv_transpose(ups)
    spec = GraphSpec("ups", ups.eval(), [TensorSpec("x", "float32", [1, 8, "frames"])],
                     [TensorSpec("y", "float32", [1, 2, "samples"])], [(x_short,), (x_long,)])
    _, parity = export_graph(spec, tmp_path)
    assert {r.backend for r in parity} == {"onnxruntime", "openvino"}
    assert max(r.max_rel for r in parity) < 1e-5
    import openvino as ov

    compiled = ov.Core().compile_model(str(tmp_path / "ups.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    for x, reference in zip((x_short, x_long), expected):
        got = compiled({"x": x.numpy()})[compiled.outputs[0]]
        assert got.shape == tuple(reference.shape)
        assert np.abs(got - reference.numpy()).max() <= 1e-5 * np.abs(reference.numpy()).max()
    assert "ConvolutionBackpropData" not in {op.get_type_name() for op in compiled.get_runtime_model().get_ops()}


@pytest.mark.parametrize("bundle_fixture,graph", [("fixture_bundle", "sovits_vocoder"),
                                                   ("emotivoice_bundle", "hifigan")])
def test_shipped_vocoders_have_no_transposed_convolution(bundle_fixture, graph, request):
    bundle = Bundle.load(request.getfixturevalue(bundle_fixture)[0])
    xml = bundle.file(bundle.graph(graph).files["openvino"]).read_text()
    ops = {line.split('type="')[1].split('"')[0] for line in xml.splitlines() if "<layer " in line}
    assert "Convolution" in ops
    assert not ops & {"ConvolutionBackpropData", "GroupConvolutionBackpropData"}
