"""The decode step's attention fused into onnxruntime's GroupQueryAttention (`edgevoice_export.fused_attention`):
the rewrite matches the exported step, the runtime's host cache drives it in place exactly like the masked step
(rows of unequal lengths, buffer growth, rows dropped), and graphs of another shape are refused."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("torch", reason="the step graph comes from the export extra")
onnx = pytest.importorskip("onnx")

from edgevoice.backends import OnnxRuntimeSession  # noqa: E402
from edgevoice.gpt_sovits.decode_cache import HostKVCache  # noqa: E402
from edgevoice.gpt_sovits.synthesizer import Synthesizer  # noqa: E402
from edgevoice_export.fused_attention import (FusionError, check_fused_step, fuse_cached_attention,  # noqa: E402
                                              fuse_step_file)
from edgevoice_export.gpt_sovits.quantize import gpt_step_feeds  # noqa: E402


def _shape(synth: Synthesizer) -> tuple[int, int, int]:
    gpt = synth._model["gpt"]
    return gpt["n_layer"], gpt["heads"], gpt["hidden"] // gpt["heads"]


@pytest.fixture(scope="module")
def fused_step(fixture_bundle, tmp_path_factory):
    """(plain step file, fused step file, (layers, heads, head_dim)) of the tiny bundle."""
    synth = Synthesizer.load(fixture_bundle[0], backend="onnxruntime")
    plain = synth.bundle.file(synth.bundle.graph("gpt_step").files["onnx"])
    fused = tmp_path_factory.mktemp("fused") / "gpt_step.fused.onnx"
    fuse_step_file(plain, fused, *_shape(synth))
    return plain, fused, _shape(synth)


def test_fused_step_matches_the_plain_step(fused_step):
    plain, fused, shape = fused_step
    ops = [node.op_type for node in onnx.load(str(fused)).graph.node]
    assert ops.count("GroupQueryAttention") == shape[0]
    assert "Softmax" not in ops and len(ops) < len(onnx.load(str(plain)).graph.node) / 1.5
    # one row, and two rows filled to different lengths (each writes its new key at its own slot)
    calls = (((1,), 1), ((7,), 1), ((3, 12), 1))
    assert check_fused_step(plain, fused, *shape, gpt_step_feeds, calls) < 1e-5


def _query_scales(model) -> list[float]:
    return [attr.f for node in model.graph.node if node.op_type == "GroupQueryAttention"
            for attr in node.attribute if attr.name == "scale"]


def test_the_query_comes_scaled_so_the_attention_runs_with_scale_one(fused_step):
    """onnxruntime's CPU attention reads the cached keys in place only with scale 1 (MLAS' one-row SGEMM kernel
    takes alpha 1 alone), so 1/sqrt(head_dim) is folded into each layer's q projection: weight and bias columns
    of the query scaled, the key and value columns untouched, no node added."""
    plain, fused, (layers, heads, head_dim) = fused_step
    plain_model, fused_model = onnx.load(str(plain)), onnx.load(str(fused))
    assert _query_scales(fused_model) == [1.0] * layers
    assert not [node for node in fused_model.graph.node if node.name.endswith("_query_scale")]
    before = {t.name: onnx.numpy_helper.to_array(t) for t in plain_model.graph.initializer}
    after = {t.name: onnx.numpy_helper.to_array(t) for t in fused_model.graph.initializer}
    width = heads * head_dim
    changed = [name for name in after if name in before and not np.array_equal(after[name], before[name])]
    assert len(changed) >= layers  # each layer's packed projection weight (its bias too, unless all zeros)
    for name in changed:
        np.testing.assert_allclose(after[name][..., :width], before[name][..., :width] / np.sqrt(head_dim),
                                   rtol=1e-6)
        np.testing.assert_array_equal(after[name][..., width:], before[name][..., width:])


def test_a_shared_projection_is_scaled_by_a_node_instead(fused_step, tmp_path):
    """A projection bias another node also reads is left alone: that layer's query is scaled by a `Mul`."""
    plain, _, shape = fused_step
    model = onnx.load(str(plain))
    bias = next(t.name for t in model.graph.initializer if t.name.endswith("layers.0.self_attn.in_proj_bias"))
    model.graph.node.append(onnx.helper.make_node("Identity", [bias], ["bias_also_read_here"]))
    fused = tmp_path / "fused.onnx"
    onnx.save(fuse_cached_attention(model, *shape), str(fused))
    fused_model = onnx.load(str(fused))
    scaling = [node for node in fused_model.graph.node if node.name.endswith("_query_scale")]
    assert [node.op_type for node in scaling] == ["Mul"] and _query_scales(fused_model) == [1.0] * shape[0]
    assert check_fused_step(plain, fused, *shape, gpt_step_feeds, (((4,), 1), ((2, 9), 1))) < 1e-5


def test_host_cache_drives_the_fused_step_in_place(fixture_bundle, gpt_sovits_set, fused_step):
    """`HostKVCache` over the fused step gives the masked step's logits: two rows prefilled to different lengths,
    past a buffer growth (which rebinds), one row dropped."""
    plain, fused, (layers, _, _) = fused_step
    synth = Synthesizer.load(fixture_bundle[0], backend="onnxruntime")
    gpt = np.load(gpt_sovits_set / "fixtures" / "gpt_en_tiny.npz")
    out, prompt_len = synth._prefill_run(gpt["phoneme_ids"], gpt["bert_feature"], gpt["prompt_semantic"])
    other, other_len = synth._prefill_run(gpt["phoneme_ids"][..., :-3], gpt["bert_feature"][..., :-3],
                                          gpt["prompt_semantic"][..., :-2])
    import onnxruntime as ort

    session = OnnxRuntimeSession(ort.InferenceSession(str(fused), providers=["CPUExecutionProvider"]), "gpt_step")
    prefills, lens = [out, other], [prompt_len, other_len]
    in_place = HostKVCache.of_rows(session, prefills, layers, lens)
    masked = HostKVCache.of_rows(synth._session("gpt_step"), prefills, layers, lens)
    assert in_place._in_place and not masked._in_place
    tokens = np.random.default_rng(0).integers(0, 1024, (HostKVCache.GROWTH + 10, 2))
    for index, pair in enumerate(tokens):
        if index == 30:
            in_place.keep_rows(np.array([0]))
            masked.keep_rows(np.array([0]))
        rows = pair[:1] if index >= 30 else pair
        got, want = in_place.step_rows(rows), masked.step_rows(rows)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    assert in_place._cache.shape[3] > prompt_len + HostKVCache.GROWTH  # it grew


def test_a_fused_step_needs_buffers_bound(fused_step):
    from edgevoice.errors import BundleError

    class Unbindable:
        input_names = ["token", "position", "seqlens_k", "total_sequence_length"]

        def run(self, feeds):
            raise AssertionError("never run")

    prefill = {"present_key.0": np.zeros((1, 2, 3, 4), np.float32), "logits": np.zeros((1, 5), np.float32)}
    with pytest.raises(BundleError, match="binds"):
        HostKVCache(Unbindable(), prefill, 1, 3)


def test_other_graphs_are_refused(fixture_bundle, fused_step):
    plain, _, shape = fused_step
    synth = Synthesizer.load(fixture_bundle[0], backend="onnxruntime")
    prefill = onnx.load(str(synth.bundle.file(synth.bundle.graph("gpt_prefill").files["onnx"])))
    with pytest.raises(FusionError, match="not a host-cache step"):
        fuse_cached_attention(prefill, *shape)
    # an attention that also reads something else (here a new graph input added to layer 0's scores)
    model = onnx.load(str(plain))
    softmax = next(node for node in model.graph.node if node.op_type == "Softmax")
    model.graph.input.append(onnx.helper.make_tensor_value_info("extra", onnx.TensorProto.FLOAT, None))
    model.graph.node.append(onnx.helper.make_node("Add", [softmax.input[0], "extra"], ["shifted"]))
    softmax.input[0] = "shifted"
    with pytest.raises(FusionError, match="'extra'"):
        fuse_cached_attention(model, *shape)


def test_a_step_without_a_cache_interface_is_refused(fixture_bundle, tmp_path):
    import json

    from edgevoice.errors import BundleError

    copy = tmp_path / "no-cache-inputs"
    shutil.copytree(fixture_bundle[0], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    step = manifest["graphs"]["gpt_step"]
    step["inputs"] = [t for t in step["inputs"] if t["name"] != "past_mask"] + [
        {"name": "seqlens_k", "dtype": "int32", "shape": ["batch"]}]  # half of the in-place interface
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="neither past_mask nor seqlens_k"):
        Synthesizer.load(copy, verify=False)
