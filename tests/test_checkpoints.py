"""Restricted loading of upstream checkpoint files, version detection, and clear refusals."""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from edgevoice_export.checkpoints import CheckpointError, load_hf_weights, read_torch_archive
from edgevoice_export.gpt_sovits.checkpoints import UnsupportedVersionError, load_gpt_checkpoint, load_sovits_checkpoint


def test_fixture_gpt_checkpoint(gpt_sovits_set):
    ckpt = load_gpt_checkpoint(gpt_sovits_set / "models" / "s1_v2_tiny.ckpt")
    assert ckpt.version == "v2"
    assert ckpt.config["model"]["n_layer"] == 2 and ckpt.config["model"]["phoneme_vocab_size"] == 732
    assert len(ckpt.weights) == 31 and not any(k.startswith("model.") for k in ckpt.weights)
    assert ckpt.weights["ar_text_embedding.word_embeddings.weight"].dtype == np.float16
    assert ckpt.weights["h.layers.1.self_attn.in_proj_weight"].shape == (1536, 512)


def test_fixture_sovits_checkpoint_with_hparams_config(gpt_sovits_set):
    ckpt = load_sovits_checkpoint(gpt_sovits_set / "models" / "s2_v2_tiny.pth")
    assert ckpt.version == "v2"
    assert isinstance(ckpt.config["model"], dict)  # utils.HParams became a plain dict
    assert ckpt.config["model"]["upsample_initial_channel"] == 64
    assert not any("enc_q" in k for k in ckpt.weights)
    assert ckpt.weights["enc_p.text_embedding.weight"].shape == (732, 192)


def test_fixture_hf_folders(gpt_sovits_set):
    weights, config = load_hf_weights(gpt_sovits_set / "models" / "chinese-hubert-base")
    assert config["model_type"] == "hubert"
    assert weights["encoder.pos_conv_embed.conv.parametrizations.weight.original1"].shape == (768, 48, 128)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo owned",))


def _torch_like_zip(payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


def test_refuses_pickles_that_call_arbitrary_globals(tmp_path):
    path = tmp_path / "evil.ckpt"
    path.write_bytes(_torch_like_zip(pickle.dumps({"weight": _Exploit()}, protocol=2)))
    with pytest.raises(CheckpointError, match=r"refusing to load.*system"):
        load_gpt_checkpoint(path)


@pytest.mark.parametrize("loader, content, message", [
    (load_sovits_checkpoint, b"hello, I am a text file", "not a GPT-SoVITS SoVITS checkpoint"),
    (load_gpt_checkpoint, b"hello, I am a text file", "not a PyTorch checkpoint"),
    (load_sovits_checkpoint, b"", "file too short"),
    (load_gpt_checkpoint, b"PK\x03\x04 broken zip", "not a PyTorch checkpoint"),
])
def test_non_checkpoint_files_get_one_line_errors(tmp_path, loader, content, message):
    path = tmp_path / "model.bin"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as error:
        loader(path)
    assert "\n" not in str(error.value)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="file not found"):
        load_gpt_checkpoint(tmp_path / "nope.ckpt")


def test_dict_without_weights_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "x.ckpt"
    path.write_bytes(_torch_like_zip(pickle.dumps({"something": 1}, protocol=2)))
    with pytest.raises(CheckpointError, match="not a GPT-SoVITS GPT"):
        load_gpt_checkpoint(path)


@pytest.mark.parametrize("header, version", [(b"04", "v4"), (b"03", "v3"), (b"02", "v3")])
def test_version_headers_are_detected_and_refused(gpt_sovits_set, tmp_path, header, version):
    data = (gpt_sovits_set / "models" / "s2_v2_tiny.pth").read_bytes()
    path = tmp_path / "marked.pth"
    path.write_bytes(header + data[2:])
    with pytest.raises(UnsupportedVersionError, match=rf"GPT-SoVITS {version} SoVITS checkpoints are not supported"):
        load_sovits_checkpoint(path)


@pytest.mark.parametrize("header, version", [(b"05", "v2Pro"), (b"06", "v2ProPlus")])
def test_pro_headers_are_read_and_their_weights_checked(gpt_sovits_set, tmp_path, header, version):
    pytest.importorskip("torch")
    from edgevoice_export.gpt_sovits.models.sovits import SoVITS

    data = (gpt_sovits_set / "models" / "s2_v2_tiny.pth").read_bytes()
    path = tmp_path / "marked.pth"
    path.write_bytes(header + data[2:])
    loaded = load_sovits_checkpoint(path)
    assert loaded.version == version
    # a v2 weight set under a Pro marker lacks the speaker branch: a clear error, not a half-built model
    with pytest.raises(CheckpointError, match="missing"):
        SoVITS.from_checkpoint(loaded)


def test_v2_header_is_read_as_v2(gpt_sovits_set, tmp_path):
    data = (gpt_sovits_set / "models" / "s2_v2_tiny.pth").read_bytes()
    path = tmp_path / "marked.pth"
    path.write_bytes(b"01" + data[2:])
    assert load_sovits_checkpoint(path).version == "v2"


def test_unknown_header_is_rejected(gpt_sovits_set, tmp_path):
    data = (gpt_sovits_set / "models" / "s2_v2_tiny.pth").read_bytes()
    path = tmp_path / "marked.pth"
    path.write_bytes(b"99" + data[2:])
    with pytest.raises(CheckpointError):
        load_sovits_checkpoint(path)


def test_tensor_storage_offsets_and_strides(tmp_path):
    torch = pytest.importorskip("torch")
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    view = base[1:, ::2]  # non-contiguous view sharing the storage
    path = tmp_path / "t.pt"
    torch.save({"a": base, "b": view, "h": base.half()}, path)
    loaded = read_torch_archive(path)
    np.testing.assert_array_equal(loaded["b"], view.numpy())
    np.testing.assert_array_equal(loaded["a"], base.numpy())
    assert loaded["h"].dtype == np.float16


def test_safetensors_folder(tmp_path):
    safetensors = pytest.importorskip("safetensors.numpy")
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "hubert"}')
    weights = {"a.weight": np.arange(6, dtype=np.float16).reshape(2, 3), "b": np.ones(4, np.float32)}
    safetensors.save_file(weights, str(folder / "model.safetensors"))
    loaded, config = load_hf_weights(folder)
    assert config["model_type"] == "hubert"
    np.testing.assert_array_equal(loaded["a.weight"], weights["a.weight"])
    assert loaded["a.weight"].dtype == np.float16


def test_v1_gpt_is_detected_by_its_phone_rows(tmp_path):
    torch = pytest.importorskip("torch")
    config = {"model": {"phoneme_vocab_size": 512, "vocab_size": 1025}, "data": {"max_sec": 54}}
    weights = {"model.ar_text_embedding.word_embeddings.weight": torch.zeros(512, 8, dtype=torch.float16)}
    path = tmp_path / "v1.ckpt"
    torch.save({"weight": weights, "config": config, "info": "GPT-e1"}, path)
    assert load_gpt_checkpoint(path).version == "v1"


def test_v1_header_is_read_as_v1_and_checked_against_the_weights(gpt_sovits_set, tmp_path):
    pytest.importorskip("torch")
    from edgevoice_export.gpt_sovits.random_model import write_sovits

    write_sovits(tmp_path / "v1.pth", "tiny", 0, version="v1")
    data = (tmp_path / "v1.pth").read_bytes()
    (tmp_path / "marked.pth").write_bytes(b"00" + data[2:])
    loaded = load_sovits_checkpoint(tmp_path / "marked.pth")
    assert loaded.version == "v1" and loaded.weights["enc_p.text_embedding.weight"].shape[0] == 322
    assert load_sovits_checkpoint(tmp_path / "v1.pth").version == "v1"  # no marker: told by the weights


GPT_CONFIGS = [({"head": 0}, "head = 0 is not a whole number"), ({"n_layer": "2"}, "n_layer = '2'"),
               ({"embedding_dim": 10 ** 7, "hidden_dim": 10 ** 7}, "embedding_dim = 10000000"),
               ({"n_layer": 1000}, "missing"), ({"vocab_size": 3}, "cannot build a model"),
               ({"phoneme_vocab_size": 733}, "other shapes"), ({"head": 7}, "head 7 does not divide")]


@pytest.mark.parametrize("change, message", GPT_CONFIGS)
def test_a_gpt_config_is_checked_against_its_weights_before_the_model_is_built(gpt_sovits_set, change, message):
    """A crafted config (a probe's: head 0, a string count, 10^7-wide layers) used to raise deep inside torch or
    ask it for 40 GB; now sizes, then every shape (built on torch's meta device) are checked first, in one line."""
    from edgevoice_export.gpt_sovits.models.gpt import Text2SemanticDecoder

    checkpoint = load_gpt_checkpoint(gpt_sovits_set / "models" / "s1_v2_tiny.ckpt")
    checkpoint.config["model"].update(change)
    with pytest.raises(CheckpointError, match=message) as error:
        Text2SemanticDecoder.from_checkpoint(checkpoint)
    assert "\n" not in str(error.value) and "s1_v2_tiny.ckpt" in str(error.value)


@pytest.mark.parametrize("section, change, message", [
    ("model", {"inter_channels": 10 ** 12}, "inter_channels = 1000000000000"),
    ("model", {"n_layers": 5000}, "n_layers = 5000"), ("model", {"hidden_channels": 100}, "other shapes"),
    ("model", {"upsample_rates": [10, "8", 2, 2, 2]}, "upsample_rates"), ("data", {"filter_length": 0}, "filter_length"),
    ("data", {"win_length": 99999}, "not one STFT's sizes"),
    ("data", {"sampling_rate": 1}, "1 Hz is no audio rate")])
def test_a_sovits_config_is_checked_against_its_weights_before_the_model_is_built(gpt_sovits_set, section, change,
                                                                                  message):
    from edgevoice_export.gpt_sovits.models.sovits import SoVITS

    checkpoint = load_sovits_checkpoint(gpt_sovits_set / "models" / "s2_v2_tiny.pth")
    checkpoint.config[section].update(change)
    with pytest.raises(CheckpointError, match=message) as error:
        SoVITS.from_checkpoint(checkpoint)
    assert "\n" not in str(error.value)


def test_a_v2_sovits_under_a_pro_marker_is_named_not_a_key_error(gpt_sovits_set, tmp_path):
    """A probe's: a v2 SoVITS re-marked "05" (v2Pro), given --sv, raised KeyError: 'sv_emb.weight'."""
    pytest.importorskip("torch")
    from edgevoice_export.gpt_sovits.exporter import ModelSet
    from edgevoice_export.gpt_sovits.random_model import write_sv

    models = gpt_sovits_set / "models"
    data = (models / "s2_v2_tiny.pth").read_bytes()
    (tmp_path / "marked.pth").write_bytes(b"05" + data[2:])
    write_sv(tmp_path / "sv.ckpt", "tiny", 0)
    with pytest.raises(CheckpointError, match="marked GPT-SoVITS v2Pro but it has no speaker projection"):
        ModelSet.load(models / "s1_v2_tiny.ckpt", tmp_path / "marked.pth", models / "chinese-hubert-base", None,
                      tmp_path / "sv.ckpt")
