"""Our EnCodec 24 kHz decoder against the `encodec` package's own outputs (fixtures made with encodec 0.1.1), its
loader's refusals, and the exported `encodec_decode` graph at several lengths."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import shared_dir

torch = pytest.importorskip("torch", reason="the EnCodec re-implementation needs the export extra (torch)")

from edgevoice.errors import EdgevoiceError  # noqa: E402
from edgevoice_export.checkpoints import CheckpointError, read_torch_archive  # noqa: E402
from edgevoice_export.metavoice.encodec import (ENCODEC_24KHZ, EncodecDecoder, encodec_config,  # noqa: E402
                                                encodec_graph, read_encodec_config, reflect_pad_left)

WAV_TOLERANCE = 1e-6  # the fixture README's float32 tolerance for the waveform (values ~0.02; absolute)


def _files():
    models = shared_dir() / "fixtures" / "metavoice" / "models"
    if not (models / "encodec_24khz_reduced.pt").is_file():
        pytest.skip("MetaVoice EnCodec fixture not found")
    return models / "encodec_24khz_reduced.pt", models / "encodec_config.json"


@pytest.fixture(scope="module")
def reduced():
    weights_path, config_path = _files()
    return read_torch_archive(weights_path), read_encodec_config(config_path)


@pytest.fixture(scope="module")
def decoder(reduced):
    return EncodecDecoder.from_state_dict(*reduced)


def test_config_defaults_and_fixture_config():
    full = encodec_config(None)
    assert (full.n_q, full.hop_length, full.frame_rate, full.width) == (32, 320, 75, 512)
    _, config_path = _files()
    raw = json.loads(config_path.read_text())
    reduced = read_encodec_config(config_path)
    assert (reduced.n_q, reduced.hop_length, reduced.dimension, reduced.n_filters) == (
        raw["n_q"], raw["hop_length"], raw["kwargs"]["dimension"], raw["kwargs"]["n_filters"])
    full_ref = raw["full_size_reference"]
    assert encodec_config({"target_bandwidths": full_ref["target_bandwidths"]}).n_q == full_ref["n_q"]


@pytest.mark.parametrize("config, words", [
    ({"causal": False}, "causal"),
    ({"kwargs": {"n_filters": 4}, "n_q": 9}, "n_q"),
    ({"n_filter": 4}, "unknown setting 'n_filter'"),
    ({"ratios": [8, 0]}, "ratios"),
    ({"activation_params": {"alpha": "x"}}, "alpha"),
    ([1, 2], "not an object"),
])
def test_bad_configs_are_one_line_errors(config, words):
    with pytest.raises(CheckpointError, match=words) as info:
        encodec_config(config)
    assert "\n" not in str(info.value)


def test_matches_the_encodec_package(decoder):
    fixture = np.load(shared_dir() / "fixtures" / "metavoice" / "fixtures" / "encodec_tiny.npz")
    with torch.no_grad():
        stages = decoder.stages(torch.from_numpy(fixture["codes"])[None])
        wav = decoder(torch.from_numpy(fixture["codes"])[None])
    diffs = {name: float(np.abs(stages[name].numpy() - fixture[name]).max()) for name in ("latent", "after_lstm", "wav")}
    print("max |diff| vs encodec 0.1.1:", diffs)  # measured 0.0 for all three (bit-exact, torch 2.13 CPU)
    assert diffs["latent"] <= 1e-6 and diffs["after_lstm"] <= 1e-5
    assert diffs["wav"] <= WAV_TOLERANCE
    assert wav.shape == (1, fixture["wav"].shape[-1]) and torch.equal(wav, stages["wav"][:, 0])


@pytest.mark.parametrize("length", [1, 2, 3, 6, 7, 8, 20])
@pytest.mark.parametrize("pad", [2, 6])
def test_padding_follows_encodec_pad1d(length, pad):
    """encodec's rule: an input no longer than the padding gets (pad − length + 1) zeros before reflecting, which
    are cut off again."""
    x = torch.randn(1, 3, length)
    extra = pad - length + 1 if length <= pad else 0
    expected = torch.nn.functional.pad(torch.nn.functional.pad(x, (0, extra)), (pad, 0), mode="reflect")
    expected = expected[..., : expected.shape[-1] - extra]
    assert torch.equal(reflect_pad_left(x, pad), expected)


def test_scan_lstm_equals_nn_lstm(decoder):
    slstm = decoder.decoder.model[1]
    x = torch.randn(1, slstm.lstm.input_size, 23)
    with torch.no_grad():
        assert torch.allclose(slstm(x), slstm(x, scan=True), atol=1e-6, rtol=0)


def _one_line_error(weights, config, words):
    with pytest.raises(CheckpointError, match=words) as info:
        EncodecDecoder.from_state_dict(weights, config, source="encodec.th")
    assert "\n" not in str(info.value)


def test_refuses_missing_unexpected_and_misshapen_weights(reduced):
    weights, config = reduced
    key = "decoder.model.3.convtr.convtr.weight_v"
    _one_line_error({k: v for k, v in weights.items() if k != key}, config, f"missing.*{key}")
    _one_line_error({**weights, "decoder.model.99.conv.conv.bias": np.zeros(4, np.float32)}, config,
                    "unexpected.*decoder.model.99")
    lstm = "decoder.model.1.lstm.weight_hh_l1"
    _one_line_error({**weights, lstm: weights[lstm][:, :-1]}, config, f"{lstm} has shape")
    extra_codebook = {**weights, "quantizer.vq.layers.8._codebook.embed": weights[
        "quantizer.vq.layers.0._codebook.embed"]}
    _one_line_error(extra_codebook, config, "9 codebooks.*implies 8")
    _one_line_error(weights, None, "codebooks.*implies 32")  # the released model's config on the reduced file


def test_refuses_bad_codes(decoder):
    with pytest.raises(EdgevoiceError, match="codes"):
        decoder(torch.zeros(1, 9, 5, dtype=torch.int64))  # 9 codebooks, the model has 8


def test_export_matches_pytorch(decoder, tmp_path):
    from edgevoice_export.graph_export import export_graph

    spec = encodec_graph(decoder)
    spec.examples = spec.examples[:2] + spec.examples[-1:]  # 150, 37 and 1 frames: keep the test short
    entry, results = export_graph(spec, tmp_path)  # raises unless every example matches
    assert {r.backend for r in results} == {"onnxruntime", "openvino"}
    for result in results:
        assert result.shapes == ["frames=150", "frames=37", "frames=1"]
        assert result.max_abs < 1e-5, result.line()
    assert entry.outputs[0].shape == [1, "320*frames"]
    assert (tmp_path / "encodec_decode.onnx").is_file() and (tmp_path / "encodec_decode.xml").is_file()


def test_full_size_random_model_round_trips():
    """The released geometry (32 filters, dimension 128, 32 codebooks) through the upstream layout and back."""
    torch.manual_seed(0)
    model = EncodecDecoder(encodec_config(ENCODEC_24KHZ))
    model.codebooks.uniform_(-1, 1)
    loaded = EncodecDecoder.from_state_dict(model.upstream_state_dict(), None)
    codes = torch.randint(0, 1024, (1, 8, 3))
    with torch.no_grad():
        wav, again = model(codes), loaded(codes)
    assert wav.shape == (1, 960) and torch.isfinite(wav).all()
    assert torch.allclose(wav, again, atol=1e-5 * float(wav.abs().max()), rtol=0)


@pytest.mark.parametrize("change", [{}, {"kernel_size": 11, "n_residual_layers": 2},
                                    {"trim_right_ratio": 0.5}])
def test_codes_padded_at_the_end_change_no_real_sample_from_the_recorded_length(change):
    """`pad_exact_from_frames` (the runtime pads codes to a few lengths on OpenVINO): from that many frames, codes
    padded at the end leave every real sample as the unpadded decode's; with fewer, the reflected padding of the
    first convolution reaches the end. A decoder trimmed on the left too gets no fact (its samples read ahead)."""
    from dataclasses import replace

    from edgevoice_export.metavoice.encodec import EncodecConfig, padding_fact

    config = replace(EncodecConfig(n_filters=4, dimension=8), **change)
    torch.manual_seed(0)
    model = EncodecDecoder(config)
    model.codebooks.uniform_(-1, 1)
    fact = padding_fact(config)
    start = fact.get("pad_exact_from_frames")

    def moved(frames):
        codes = torch.randint(0, config.bins, (1, 2, frames), generator=torch.Generator().manual_seed(frames))
        padded = torch.nn.functional.pad(codes, (0, 40))
        with torch.no_grad():
            own, long = model(codes), model(padded)[..., :own_length(codes)]
        return float((own - long).abs().max() / own.abs().max())

    def own_length(codes):
        return codes.shape[-1] * int(np.prod(config.ratios))

    if start is None:
        assert change.get("trim_right_ratio") == 0.5 and moved(30) > 1e-4
        return
    assert start == max(config.kernel_size, config.last_kernel_size, 1 + 2 * 2 ** (config.n_residual_layers - 1))
    assert all(moved(frames) < 1e-6 for frames in (start, start + 1, 30))
    assert moved(start - 1) > 1e-4
