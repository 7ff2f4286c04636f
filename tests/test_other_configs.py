"""Nothing depends on one model version or one set of sizes: unusual but valid configs export, pass parity and
speak. Two exports: a v1 model with odd sizes everywhere, and a v2ProPlus model with its speaker-verification
branch."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from edgevoice import BundleError, EdgevoiceError, SynthesisOptions, Synthesizer  # noqa: E402
from edgevoice.audio import write_wav  # noqa: E402
from edgevoice_export.checkpoints import CheckpointError  # noqa: E402
from edgevoice_export.gpt_sovits.checkpoints import load_sovits_checkpoint  # noqa: E402
from edgevoice_export.gpt_sovits.exporter import GptSovitsFiles, export_gpt_sovits  # noqa: E402
from edgevoice_export.graph_export import ExportOptions  # noqa: E402
from edgevoice_export.gpt_sovits.random_model import make_test_model, write_gpt, write_sovits  # noqa: E402

ODD_SIZES = {
    "gpt": {"n_layer": 3, "head": 8, "embedding_dim": 256, "hidden_dim": 256},
    "sovits": {"n_layers": 3, "filter_channels": 192, "upsample_initial_channel": 48, "hidden_channels": 160,
               "inter_channels": 128, "upsample_kernel_sizes": [20, 16, 8, 2, 2],
               # HiFi-GAN's other residual block (two convs per block, first two dilations of each entry)
               "resblock": "2", "resblock_kernel_sizes": [3, 5, 7], "resblock_dilation_sizes": [[1, 2], [2, 6], [3, 12]]},
    "hubert": {"num_hidden_layers": 2, "intermediate_size": 512, "num_attention_heads": 6},
    "bert": {"num_hidden_layers": 4, "num_attention_heads": 8, "intermediate_size": 512, "vocab_size": 3000},
}
TEXTS = [("en", "A quiet morning by the lake.", "See you tomorrow at noon."),
         ("zh", "我们一起去公园散步。", "今天天气很好。")]


def _reference_wav(path):
    t = np.arange(5 * 32000) / 32000
    write_wav(path, (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32), 32000)
    return path


def _export(parts, out, **extra):
    files = GptSovitsFiles(parts["gpt"], parts["sovits"], parts["hubert"], bert=parts["bert"], sv=extra.pop("sv", None))
    report = export_gpt_sovits(files, ExportOptions(out, progress=False, **extra))
    for result in report.parity:
        assert result.max_rel < 1e-4, result.line()
    return report, Synthesizer.load(out)


def _speaks(synth, reference):
    for language, transcript, text in TEXTS:
        voice = synth.create_voice(reference, transcript, language)
        chunks = list(synth.stream(text, voice, language, SynthesisOptions(seed=0, max_tokens=20)))
        assert chunks and all(c.audio.size == c.tokens.size * 2 * synth.bundle.manifest.model["sovits"]["hop_length"]
                              + 9600 for c in chunks)
        assert np.isfinite(np.concatenate([c.audio for c in chunks])).all()
    return voice


def test_v1_model_with_odd_sizes_exports_and_speaks_with_the_v1_front_end(tmp_path):
    """Also an OpenVINO-only bundle (`--format openvino`): no ONNX files, no onnxruntime decode graph."""
    parts = make_test_model(tmp_path / "models", "tiny", seed=9, overrides=ODD_SIZES, version="v1")
    _, synth = _export(parts, tmp_path / "bundle", formats=("openvino",))
    manifest = synth.bundle.manifest
    assert not list((tmp_path / "bundle").glob("*.onnx")) and "gpt_step" not in manifest.graphs
    with pytest.raises(BundleError, match="exported with --format openvino only"):
        Synthesizer.load(tmp_path / "bundle", backend="onnxruntime").reference_embedding(np.ones((1025, 20)))
    from edgevoice_calibration.gpt_sovits import CalibrationInputs
    from edgevoice_export.gpt_sovits.quantize import calibrate_and_quantize
    from edgevoice_export.quantize import QuantizeOptions

    with pytest.raises(BundleError, match="which this bundle does not ship"):  # refused before calibrating
        calibrate_and_quantize(tmp_path / "bundle", tmp_path / "int8", CalibrationInputs(),
                               QuantizeOptions(progress=False))
    assert manifest.model["gpt"]["n_layer"] == 3 and manifest.model["sovits"]["inter_channels"] == 128
    weights = load_sovits_checkpoint(parts["sovits"]).weights
    assert "dec.resblocks.0.convs.1.weight_v" in weights and not any(".convs1." in k for k in weights)
    assert manifest.upstream_version == "v1" and len(manifest.symbols) == 322
    # v1's reference encoder reads all 1025 spectrogram bins (v2: the first 704)
    assert manifest.graphs["ref_encoder"].inputs[0].shape[1] == 1025
    phones, _ = synth.phonemize("一会儿见。", "all_zh")
    assert "er5" in phones.phones  # v1 has no erhua merging
    voice = _speaks(synth, _reference_wav(tmp_path / "ref.wav"))
    assert voice.upstream_version == "v1" and voice.prompt_phone_ids.max() < 322


def test_v2proplus_model_exports_its_speaker_branch_and_speaks(tmp_path):
    parts = make_test_model(tmp_path / "models", "tiny", seed=5, version="v2ProPlus")
    assert (tmp_path / "models" / "sovits.pth").read_bytes()[:2] == b"06"  # upstream's v2ProPlus marker
    report, synth = _export(parts, tmp_path / "bundle", sv=parts["sv"])
    assert {r.graph for r in report.parity} >= {"sv_embedding", "ref_encoder"}
    manifest = synth.bundle.manifest
    assert manifest.upstream_version == "v2ProPlus" and len(manifest.symbols) == 732
    assert manifest.sources["sv"]["file"] == "pretrained_eres2netv2w24s4ep4.ckpt"
    assert [t.name for t in manifest.graphs["ref_encoder"].inputs] == ["refer_spec", "sv"]
    reference = _reference_wav(tmp_path / "ref.wav")
    voice = _speaks(synth, reference)
    assert voice.ge.shape == (1, 1024, 1)
    # the speaker embedding really reaches ge: the same spectrogram with another embedding gives another ge
    audio = synth.reference_spectrogram(np.zeros(32000 * 4, np.float32) + 0.01)
    sv = synth.speaker_embedding(np.random.default_rng(0).standard_normal(32000 * 4).astype(np.float32) * 0.1)
    assert np.abs(synth.reference_embedding(audio, sv) - synth.reference_embedding(audio, 2 * sv)).max() > 1e-3
    with pytest.raises(ValueError, match="needs the speaker embedding"):
        synth.reference_embedding(audio)

    with pytest.raises(CheckpointError, match="needs the speaker-verification model: pass --sv"):
        export_gpt_sovits(GptSovitsFiles(parts["gpt"], parts["sovits"], parts["hubert"]),
                          ExportOptions(tmp_path / "no-sv", progress=False))
    assert not (tmp_path / "no-sv").exists()


def test_mixed_versions_and_misplaced_sv_are_refused(gpt_sovits_set, tmp_path):
    write_gpt(tmp_path / "v1.ckpt", "tiny", 1, version="v1")
    models = gpt_sovits_set / "models"
    with pytest.raises(CheckpointError, match="GPT is v1 but SoVITS is v2"):
        export_gpt_sovits(GptSovitsFiles(tmp_path / "v1.ckpt", models / "s2_v2_tiny.pth", models / "chinese-hubert-base"),
                          ExportOptions(tmp_path / "bundle", progress=False))
    with pytest.raises(CheckpointError, match="--sv is only for v2Pro/v2ProPlus"):
        export_gpt_sovits(GptSovitsFiles(models / "s1_v2_tiny.ckpt", models / "s2_v2_tiny.pth",
                                         models / "chinese-hubert-base", sv=tmp_path / "v1.ckpt"),
                          ExportOptions(tmp_path / "bundle", progress=False))
    assert not (tmp_path / "bundle").exists()


def test_unknown_bundle_format_is_refused(gpt_sovits_set, tmp_path):
    models = gpt_sovits_set / "models"
    with pytest.raises(EdgevoiceError, match="unknown bundle formats"):
        export_gpt_sovits(GptSovitsFiles(models / "s1_v2_tiny.ckpt", models / "s2_v2_tiny.pth",
                                         models / "chinese-hubert-base"),
                          ExportOptions(tmp_path / "bundle", progress=False, formats=("tensorrt",)))


def test_invalid_configs_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="gin_channels 256"):
        write_sovits(tmp_path / "s.pth", "tiny", 0, {"gin_channels": 256})
    with pytest.raises(CheckpointError, match="resblock type '3' does not exist"):
        write_sovits(tmp_path / "s.pth", "tiny", 0, {"resblock": "3"})
