"""The vocoder without masks (`sovits_vocoder_vnni`): run at each window's exact length, on CPUs with VNNI only.

INT8 bundles quantised on a CPU with 8-bit dot products may carry the vocoder as onnxruntime's 8-bit operators with
its length masks dropped (`edgevoice_export.gpt_sovits.vocoder_engine`). Here the runtime path is checked with an
FP32 copy of the tiny vocoder (on any CPU, the CPU's flags faked): the mask-free graph at the exact length gives the
masked graph's samples, and it is used only where the CPU has VNNI and the backend runs on the CPU.
"""

import shutil

import numpy as np
import pytest

import edgevoice
from edgevoice.backends import OnnxRuntimeBackend
from edgevoice.bundle import Bundle, GraphEntry, write_manifest
from edgevoice.cpu import CpuInfo, precision_here
from edgevoice.gpt_sovits import synthesizer as synthesizer_module
from edgevoice.gpt_sovits.synthesizer import EXACT_VOCODER, Synthesizer

onnx = pytest.importorskip("onnx", reason="dropping the masks needs the export extra (onnx)")
from edgevoice_export.onnx_masks import drop_input_masks  # noqa: E402

VNNI = CpuInfo("test CPU", frozenset({"avx2", "avx512f", "avx512_vnni"}))
AVX2 = CpuInfo("test CPU", frozenset({"avx2"}))


def _snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference ** 2) / max(np.sum((reference - other) ** 2), 1e-30)))


@pytest.fixture(scope="module")
def exact_bundle(fixture_bundle, tmp_path_factory):
    """The tiny FP32 bundle plus its vocoder with the masks dropped, as an onnxruntime graph."""
    out = tmp_path_factory.mktemp("exact") / "tiny-exact"
    shutil.copytree(fixture_bundle[0], out)
    bundle = Bundle.load(out)
    vocoder = bundle.manifest.graphs["sovits_vocoder"]
    model = onnx.load(str(bundle.file(vocoder.files["onnx"])))
    assert drop_input_masks(model, "valid_frames") > 10  # one per convolution input at least
    assert [i.name for i in model.graph.input] == ["z", "ge"]
    onnx.save(model, str(out / f"{EXACT_VOCODER}.onnx"))
    manifest = bundle.manifest
    inputs = [t for t in vocoder.inputs if t.name != "valid_frames"]
    manifest.graphs[EXACT_VOCODER] = GraphEntry(EXACT_VOCODER, {"onnx": f"{EXACT_VOCODER}.onnx"}, "fp32", inputs,
                                                list(vocoder.outputs), engine="onnxruntime")
    record = {"taken": True, "graph": EXACT_VOCODER, "replaces": "sovits_vocoder", "reason": "a test"}
    manifest.extra["quantization"] = {"vocoder_engine": record}
    write_manifest(out, manifest)
    return out


def _load(bundle, cpu: CpuInfo, monkeypatch, backend="openvino") -> Synthesizer:
    monkeypatch.setattr(synthesizer_module, "detect", lambda: cpu)
    return edgevoice.load(bundle, backend=backend, threads=2)


@pytest.mark.parametrize("frames", [37, 330, 700])  # 700: two windows with the vocoder's reach as context
def test_the_mask_free_vocoder_gives_the_masked_vocoders_samples(exact_bundle, monkeypatch, frames):
    exact, masked = _load(exact_bundle, VNNI, monkeypatch), _load(exact_bundle, AVX2, monkeypatch)
    assert (exact.vocoder_graph, masked.vocoder_graph) == (EXACT_VOCODER, "sovits_vocoder")
    rng = np.random.default_rng(frames)
    z = (0.7 * rng.standard_normal((1, 192, frames))).astype(np.float32)
    ge = (0.3 * rng.standard_normal((1, 512, 1))).astype(np.float32)
    calls = []
    run = exact._run

    def recorded(name, **feeds):
        calls.append((name, feeds["z"].shape[-1]))
        return run(name, **feeds)

    monkeypatch.setattr(exact, "_run", recorded)
    audio = exact._vocode(z, ge)
    assert all(name == EXACT_VOCODER for name, _ in calls)
    assert sum(size for _, size in calls) < frames + 2 * 13 * len(calls)  # exact lengths: nothing padded to buckets
    reference = masked._vocode(z, ge)
    assert audio.shape == reference.shape == (frames * exact._model["sovits"]["hop_length"],)
    assert _snr_db(reference, audio) >= 90  # float rounding only


def test_the_mask_free_vocoder_is_not_used_without_vnni_or_on_a_gpu(exact_bundle, monkeypatch):
    assert _load(exact_bundle, AVX2, monkeypatch).vocoder_graph == "sovits_vocoder"
    on_gpu = _load(exact_bundle, VNNI, monkeypatch, backend=OnnxRuntimeBackend(device="cuda"))
    assert on_gpu.vocoder_graph == "sovits_vocoder"  # its QLinear operators would fall back to the CPU there
    assert _load(exact_bundle, VNNI, monkeypatch, backend="onnxruntime").vocoder_graph == EXACT_VOCODER
    manifest = Bundle.load(exact_bundle).manifest
    assert "not run on this CPU" in precision_here(manifest, EXACT_VOCODER, AVX2).why
    assert "not run on this CPU" not in precision_here(manifest, EXACT_VOCODER, VNNI).why
    assert f"{EXACT_VOCODER} runs instead" in precision_here(manifest, "sovits_vocoder", VNNI).why
    assert "runs instead" not in precision_here(manifest, "sovits_vocoder", AVX2).why


def _graph(mask_consumer: str):
    """tanh(x · mask(n)) → y, or `mask_consumer` instead of the multiplication."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Cast", ["n"], ["m"], to=TensorProto.FLOAT),
             helper.make_node(mask_consumer, ["x", "m"], ["t"]), helper.make_node("Tanh", ["t"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
                                           helper.make_tensor_value_info("n", TensorProto.INT64, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    return helper.make_model(graph)


def test_drop_input_masks_only_drops_masks():
    model = _graph("Mul")
    assert drop_input_masks(model, "n") == 1
    assert [i.name for i in model.graph.input] == ["x"]
    assert [(n.op_type, list(n.input)) for n in model.graph.node] == [("Tanh", ["x"])]
    with pytest.raises(ValueError, match="depends on 'n'"):
        drop_input_masks(_graph("Add"), "n")
