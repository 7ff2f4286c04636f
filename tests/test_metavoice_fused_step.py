"""MetaVoice's stage-1 step with its attention fused (`edgevoice_export.fused_attention`, as `quantize` makes it):
the rewrite matches the exported step through a prefill and single steps, and the runtime's in-place decoder gives
the masked step's teacher-forced logits, with an f32 cache (float rounding) and a half-precision one."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch", reason="the step graph comes from the export extra")
pytest.importorskip("onnx")

from edgevoice.bundle import Bundle, write_manifest  # noqa: E402
from edgevoice.metavoice.synthesizer import InPlaceStage1, Synthesizer  # noqa: E402
from edgevoice_export.fused_attention import check_fused_step, fuse_step_file, in_place_specs  # noqa: E402
from edgevoice_export.metavoice.step_engine import FUSED_STEP_CALLS, stage1_step_feeds  # noqa: E402


def _shape(bundle: Bundle) -> tuple[int, int, int]:
    s1 = bundle.manifest.model["stage1"]
    return s1["n_layer"], s1["n_head"], s1["n_embd"] // s1["n_head"]


@pytest.fixture(scope="module", params=["float32", "float16"])
def fused_bundle(metavoice_bundle, tmp_path_factory, request):
    """The tiny FP32 bundle with its ONNX step fused (cache in `request.param`) and no stateful graph."""
    out = tmp_path_factory.mktemp("fused") / f"metavoice-{request.param}"
    shutil.copytree(metavoice_bundle[0], out)
    bundle = Bundle.load(out)
    manifest = bundle.manifest
    step = manifest.graphs["stage1_step"]
    fuse_step_file(bundle.file(step.files["onnx"]), out / "stage1_step.fused.onnx", *_shape(bundle), request.param)
    (out / step.files["onnx"]).unlink()
    step.files, step.engine = {"onnx": "stage1_step.fused.onnx"}, "onnxruntime"
    step.inputs, step.outputs = in_place_specs(step.inputs, step.outputs, request.param)
    for rel in manifest.graphs.pop("stage1").files.values():
        (out / rel).unlink()
        (out / rel.replace(".xml", ".bin")).unlink(missing_ok=True)
    write_manifest(out, manifest)
    return out, request.param


def test_the_fused_step_matches_the_exported_one(metavoice_bundle, fused_bundle):
    source, (out, dtype) = Bundle.load(metavoice_bundle[0]), fused_bundle
    plain = source.file(source.graph("stage1_step").files["onnx"])
    feeds = stage1_step_feeds(source.manifest.model["speaker"]["embedding"])
    difference = check_fused_step(plain, out / "stage1_step.fused.onnx", *_shape(source), feeds, FUSED_STEP_CALLS)
    assert difference < (1e-5 if dtype == "float32" else 5e-3)


def test_the_in_place_decoder_gives_the_masked_steps_logits(metavoice_bundle, fused_bundle):
    out, dtype = fused_bundle
    masked = Synthesizer.load(metavoice_bundle[0], backend="onnxruntime", threads=1)
    fused = Synthesizer.load(out, backend="openvino", threads=1)  # the step runs on onnxruntime either way
    ids = masked.text_tokens("The birch canoe slid on the smooth planks.")
    speaker = np.abs(np.random.default_rng(3).standard_normal(256)).astype(np.float32)
    speaker /= np.linalg.norm(speaker)
    forced = np.random.default_rng(4).integers(0, 1024, 30)
    expected = masked.first_stage_logits(ids, speaker, forced)
    decoder = fused.stage1_decoder(ids, fused._check_embedding(speaker), forced.size)
    assert isinstance(decoder, InPlaceStage1) and decoder._cache.dtype == np.dtype(dtype)
    got = fused.first_stage_logits(ids, speaker, forced)
    scale = np.abs(expected[2]).max()
    for want, have in zip(expected, got):  # cond, uncond, guided; the prefill row and one per forced token
        assert have.shape == want.shape and np.abs(have - want).max() / scale < (1e-4 if dtype == "float32" else 2e-2)
    assert (got[2].argmax(-1) == expected[2].argmax(-1)).mean() >= (1.0 if dtype == "float32" else 0.9)


def test_the_in_place_decoder_grows_when_fed_more_than_announced(fused_bundle):
    out, _ = fused_bundle
    synth = Synthesizer.load(out, threads=1)
    ids = synth.text_tokens("Hello.")
    speaker = synth._check_embedding(np.full(256, 1 / 16, np.float32))
    short = synth.stage1_decoder(ids, speaker, 1)
    roomy = synth.stage1_decoder(ids, speaker, 40)
    for token in range(1, 30):  # 29 steps into room for 1: the buffers grow (and are bound again)
        a, b = short.step(token), roomy.step(token)
        assert np.array_equal(a, b)
    assert short._cache.shape[3] > ids.size + 1


def test_a_step_with_neither_cache_interface_is_refused(fused_bundle, tmp_path):
    out, _ = fused_bundle
    copy = tmp_path / "broken"
    shutil.copytree(out, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    bundle = Bundle.load(copy)
    step = bundle.manifest.graphs["stage1_step"]
    step.inputs = [t for t in step.inputs if t.name != "seqlens_k"]
    write_manifest(copy, bundle.manifest)
    assert manifest["family"] == "metavoice"
    from edgevoice.errors import BundleError

    with pytest.raises(BundleError, match="neither past_mask nor seqlens_k"):
        Synthesizer.load(copy)
