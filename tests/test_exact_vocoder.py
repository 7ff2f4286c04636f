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
from edgevoice.gpt_sovits.synthesizer import EXACT_VOCODER, EXACT_VOCODER_WINDOW_FRAMES, Synthesizer

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


# ---------------------------------------------------------------- the float tail split off (split_vocoder)

def _split_copy(exact_bundle, out, beside: bool):
    """`exact_bundle` with its vocoder cut before the last two upsampling stages: the head on onnxruntime (float
    here) in place of the one graph or (`beside`) next to it, the tail from the masked FP32 vocoder in fixed
    windows, as `quantize` writes them. Returns the cut."""
    from edgevoice_export.gpt_sovits.vocoder_engine import float_tails
    from edgevoice_export.gpt_sovits.vocoder_tail import cut_float_tail, install_split

    shutil.copytree(exact_bundle, out)
    bundle = Bundle.load(out)
    whole = onnx.load(str(bundle.file(bundle.manifest.graphs[EXACT_VOCODER].files["onnx"])))
    first = float_tails(whole, 2)[2][0]
    rng = np.random.default_rng(3)
    probe = {"z": rng.standard_normal((1, 192, 40)).astype(np.float32),
             "ge": rng.standard_normal((1, 512, 1)).astype(np.float32)}
    manifest = bundle.manifest
    cut = cut_float_tail(bundle, whole, first, probe, manifest.model["sovits"]["vocoder_context_frames"], threads=1)
    install_split(out, manifest, cut, beside)
    if not beside:
        (out / f"{EXACT_VOCODER}.onnx").unlink()
    head = "sovits_vocoder_vnni_head" if beside else EXACT_VOCODER
    manifest.extra["quantization"]["vocoder_engine"]["float_tail"] = {
        "taken": True, "graph": "sovits_vocoder_tail", "part_of": EXACT_VOCODER, "head": head, "beside": beside,
        "reason": "a test split"}
    write_manifest(out, manifest)
    return cut


@pytest.fixture(scope="module")
def split_bundle(exact_bundle, tmp_path_factory):
    """The split alone (`quantize --vocoder-tail split`): (bundle, cut)."""
    out = tmp_path_factory.mktemp("split") / "tiny-split"
    return out, _split_copy(exact_bundle, out, beside=False)


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
@pytest.mark.parametrize("frames", [37, 330, 700])  # 37: one padded tail window; 700: two head windows
def test_the_split_vocoder_gives_the_one_graphs_samples(split_bundle, exact_bundle, monkeypatch, frames, backend):
    from edgevoice.gpt_sovits.split_vocoder import SplitVocoder

    split, whole = _load(split_bundle[0], VNNI, monkeypatch, backend), _load(exact_bundle, VNNI, monkeypatch, backend)
    assert isinstance(split._session(EXACT_VOCODER), SplitVocoder)
    windows = Bundle.load(split_bundle[0]).manifest.model["sovits"]["vocoder_tail_windows"]
    tail = split._session(EXACT_VOCODER)._tail
    shapes = []
    run = tail.run

    def recorded(feeds):
        shapes.append(feeds["hidden"].shape[-1])
        return run(feeds)

    monkeypatch.setattr(tail, "run", recorded)
    rng = np.random.default_rng(frames)
    z = (0.7 * rng.standard_normal((1, 192, frames))).astype(np.float32)
    ge = (0.3 * rng.standard_normal((1, 512, 1))).astype(np.float32)
    audio, reference = split._vocode(z, ge), whole._vocode(z, ge)
    assert audio.shape == reference.shape == (frames * split._model["sovits"]["hop_length"],)
    assert _snr_db(reference, audio) >= 90  # float rounding only, the padded last window included
    lengths = [shape // split_bundle[1]["per_frame"] for shape in shapes]
    assert set(lengths) <= set(windows)  # a few input shapes only: OpenVINO keeps memory per shape
    context = split._vocoder_context
    heads = len(synthesizer_module.vocoder_windows(frames, context, EXACT_VOCODER_WINDOW_FRAMES + 2 * context))
    assert sum(length < windows[-1] for length in lengths) <= heads  # a shorter one ends each head window at most


def test_the_tails_reach_is_measured_not_guessed(split_bundle, fixture_bundle):
    """The tail needs fewer frames of context than the whole vocoder; the same measurement on the whole masked
    vocoder stays within the bound the exporter works out from its kernels and strides (which rounds up)."""
    from edgevoice_export.hifigan import measured_reach_frames

    bundle = Bundle.load(fixture_bundle[0])
    analytic = bundle.manifest.model["sovits"]["vocoder_context_frames"]
    assert 1 <= split_bundle[1]["context"] < analytic
    session = OnnxRuntimeBackend(threads=1).session(bundle, "sovits_vocoder")
    ge = np.random.default_rng(0).standard_normal((1, 512, 1)).astype(np.float32)

    def whole(z):
        return session.run({"z": z, "ge": ge, "valid_frames": np.array([z.shape[-1]], np.int64)})["audio"]

    measured = measured_reach_frames(whole, 192, 1, analytic + 4)
    assert split_bundle[1]["context"] < measured <= analytic
    with pytest.raises(ValueError, match="reaches further"):
        measured_reach_frames(whole, 192, 1, measured - 1)


def test_a_split_bundle_without_the_tails_context_or_windows_is_refused(split_bundle, tmp_path, monkeypatch):
    from edgevoice.errors import BundleError

    out = tmp_path / "no-context"
    shutil.copytree(split_bundle[0], out)
    manifest = Bundle.load(out).manifest
    for key, value in (("vocoder_tail_context_frames", None), ("vocoder_tail_windows", [34, 18])):
        good = manifest.model["sovits"][key]
        manifest.model["sovits"][key] = value
        write_manifest(out, manifest)
        with pytest.raises(BundleError, match="vocoder_tail_context_frames"):
            _load(out, VNNI, monkeypatch)
        manifest.model["sovits"][key] = good
    assert _load(out, AVX2, monkeypatch).vocoder_graph == "sovits_vocoder"  # only the VNNI path needs it


def test_a_head_without_hidden_is_a_bundle_error(split_bundle, exact_bundle, tmp_path, monkeypatch):
    """A split bundle whose head file is the whole vocoder (it returns audio, not `hidden`): a one-line
    BundleError when the vocoder opens, not a KeyError in the middle of a synthesis."""
    from edgevoice.errors import BundleError

    out = tmp_path / "wrong-head"
    shutil.copytree(split_bundle[0], out)
    manifest = Bundle.load(out).manifest
    head = manifest.graphs[EXACT_VOCODER].files["onnx"]
    shutil.copy(exact_bundle / f"{EXACT_VOCODER}.onnx", out / head)
    write_manifest(out, manifest)  # hashes the swapped file: only its interface is wrong
    with pytest.raises(BundleError, match="no 'hidden' output"):
        _load(out, VNNI, monkeypatch)._session(EXACT_VOCODER)


def test_info_says_what_the_tail_is_and_where_it_runs(split_bundle):
    from edgevoice.gpt_sovits.split_vocoder import VOCODER_TAIL

    manifest = Bundle.load(split_bundle[0]).manifest
    here = precision_here(manifest, VOCODER_TAIL, VNNI)
    assert here.why.startswith("a test split (the float part of sovits_vocoder_vnni)")
    assert "not run on this CPU" in precision_here(manifest, VOCODER_TAIL, AVX2).why


def test_a_bf16_tail_that_fails_the_gate_is_not_kept(split_bundle, tmp_path):
    """`quantize` tries the tail in bf16 on CPUs with native bf16 behind the ladder's accuracy gate; one failing it
    leaves the tail f32 (on a CPU without native bf16 the bf16 hint runs as f32, so only the record is checked)."""
    from edgevoice_export.gpt_sovits.vocoder_tail import _split_session, _try_bf16
    from edgevoice.gpt_sovits.split_vocoder import VOCODER_TAIL

    out = tmp_path / "bf16"
    shutil.copytree(split_bundle[0], out)
    manifest = Bundle.load(out).manifest
    rng = np.random.default_rng(5)
    calls = [{"z": rng.standard_normal((1, 192, n)).astype(np.float32),
              "ge": rng.standard_normal((1, 512, 1)).astype(np.float32)} for n in (20, 90)]
    gated = []
    record = _try_bf16(out, manifest, _split_session(out, 1), (calls[:1], calls[1:]),
                       lambda split: gated.append(split) or (False, 1.5), threads=1)
    assert len(gated) == 1 and not record["taken"] and record["worst_log_mel_l1"] == 1.5
    assert "fails its gate" in record["reason"] and set(record["seconds"]) == {"held_out", "long_window"}
    assert Bundle.load(out).manifest.graphs[VOCODER_TAIL].runtime_options == {}


def test_the_split_beside_the_one_graph_runs_where_openvino_is_loaded(exact_bundle, tmp_path, monkeypatch):
    """`quantize --vocoder-tail auto` ships head + tail beside the one graph: a process whose backend has loaded no
    OpenVINO graph runs the one graph (no ~100 MiB of OpenVINO for the tail), one that has (a voice made: HuBERT)
    runs the split, with the same samples to float rounding; onnxruntime alone never splits."""
    from edgevoice.gpt_sovits.split_vocoder import VOCODER_HEAD, VOCODER_TAIL, SplitVocoder

    out = tmp_path / "tiny-beside"
    _split_copy(exact_bundle, out, beside=True)
    graphs = Bundle.load(out).manifest.graphs
    assert {EXACT_VOCODER, VOCODER_HEAD, VOCODER_TAIL} <= set(graphs)
    assert [t.name for t in graphs[EXACT_VOCODER].outputs] == ["audio"]
    assert [t.name for t in graphs[VOCODER_HEAD].outputs] == ["hidden"]
    fresh = _load(out, VNNI, monkeypatch)
    assert not fresh.backend.openvino_loaded and not isinstance(fresh._session(EXACT_VOCODER), SplitVocoder)
    loaded = _load(out, VNNI, monkeypatch)
    loaded._session("ref_encoder")  # an OpenVINO graph, as making a voice opens
    assert loaded.backend.openvino_loaded and isinstance(loaded._session(EXACT_VOCODER), SplitVocoder)
    rng = np.random.default_rng(9)
    z = (0.7 * rng.standard_normal((1, 192, 90))).astype(np.float32)
    ge = (0.3 * rng.standard_normal((1, 512, 1))).astype(np.float32)
    assert _snr_db(fresh._vocode(z, ge), loaded._vocode(z, ge)) >= 90
    ort = _load(out, VNNI, monkeypatch, "onnxruntime")
    ort._session("ref_encoder")
    assert not isinstance(ort._session(EXACT_VOCODER), SplitVocoder)
    manifest = Bundle.load(out).manifest
    assert "when its float tail runs on OpenVINO" in precision_here(manifest, VOCODER_HEAD, VNNI).why
    assert "not run on this CPU" in precision_here(manifest, VOCODER_HEAD, AVX2).why
    assert "else the one graph" in precision_here(manifest, VOCODER_TAIL, VNNI).why
