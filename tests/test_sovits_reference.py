"""PyTorch SoVITS re-implementation (`edgevoice_export.gpt_sovits.models.sovits`) against upstream's fixtures.

Tolerances follow the fixture README §6.2: about 10× the distance of a float64 replay of upstream. The
tiny vocoder's output `o` is nearly constant (§6.3), so it is compared with an absolute tolerance far below
its sensitivity to upstream-level mistakes (~2e-5), and every intermediate is compared separately.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgevoice_export.gpt_sovits.checkpoints import load_sovits_checkpoint  # noqa: E402
from edgevoice_export.gpt_sovits.models.sovits import SoVITS, SoVITSConfigError  # noqa: E402
from edgevoice_export.gpt_sovits.models.sovits_layers import MultiHeadAttention  # noqa: E402

# fp64 distances (README §6.2): ge 9e-8, m_p 1.8e-6, z 1.8e-6, o 1.1e-9
NS0_ATOL = {"ge": 1e-6, "quantized_upsampled": 0.0, "enc_p_x": 3e-5, "m_p": 2e-5, "logs_p": 2e-5,
            "z_p": 2e-5, "z": 2e-5, "dec_in": 2e-5, "o": 1e-8}
# with noise, exp(logs_p) (up to ~10) scales logs_p's rounding: z_p/z reach ~9 in magnitude
NS05_ATOL = {"z_p": 1e-4, "z": 1e-4, "o": 1e-8}
LANGS = ["en", "zh"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def checkpoint(gpt_sovits_set):
    return load_sovits_checkpoint(gpt_sovits_set / "models" / "s2_v2_tiny.pth")


@pytest.fixture(scope="module")
def model(checkpoint):
    return SoVITS.from_checkpoint(checkpoint)


def _fixture(root, name):
    return np.load(root / "fixtures" / f"{name}.npz")


def _max_diff(actual, expected) -> float:
    return float(np.abs(np.asarray(actual, dtype=np.float64) - expected).max())


# -- structure -----------------------------------------------------------------------------------------------


def test_state_dict_matches_checkpoint_layout(checkpoint):
    fresh = SoVITS(checkpoint.config)  # random init, built from the config alone
    state = fresh.state_dict()
    assert list(state) == list(checkpoint.weights)  # same keys, same order as upstream's saver
    for key, value in state.items():
        assert tuple(value.shape) == checkpoint.weights[key].shape, key
    assert not any("enc_q" in key for key in state)
    assert float(state["quantizer.vq.layers.0._codebook.inited"][0]) == 1.0


def test_random_model_reloads_its_own_weights(checkpoint):
    fresh = SoVITS(checkpoint.config)
    weights = {k: v.numpy() for k, v in fresh.state_dict().items()}
    clone = SoVITS(checkpoint.config)
    clone.load_weights(weights)
    for key, value in clone.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), weights[key])


def test_load_is_strict(checkpoint):
    weights = checkpoint.float32()
    missing = dict(weights)
    del missing["flow.flows.2.post.bias"]
    with pytest.raises(SoVITSConfigError, match="missing"):
        SoVITS(checkpoint.config).load_weights(missing)
    extra = dict(weights, **{"enc_q.proj.weight": np.zeros((1,), np.float32)})
    with pytest.raises(SoVITSConfigError, match="unexpected"):
        SoVITS(checkpoint.config).load_weights(extra)
    wrong = dict(weights, **{"dec.conv_post.weight": np.zeros((1, 3, 7), np.float32)})
    with pytest.raises(SoVITSConfigError, match="shapes"):
        SoVITS(checkpoint.config).load_weights(wrong)


def test_sizes_come_from_config(checkpoint):
    config = copy.deepcopy(checkpoint.config)
    config["model"].update(n_layers=4, filter_channels=96, upsample_initial_channel=128, inter_channels=160,
                           upsample_kernel_sizes=[20, 16, 8, 2, 2])
    state = SoVITS(config).state_dict()
    assert "enc_p.encoder_text.attn_layers.3.conv_q.weight" in state
    assert "enc_p.encoder_ssl.attn_layers.1.conv_q.weight" in state
    assert tuple(state["enc_p.encoder2.ffn_layers.0.conv_1.weight"].shape) == (96, 192, 3)
    assert tuple(state["dec.ups.0.weight_v"].shape) == (128, 64, 20)
    assert tuple(state["dec.conv_pre.weight"].shape) == (128, 160, 7)
    assert tuple(state["flow.flows.0.pre.weight"].shape) == (192, 80, 1)
    assert tuple(state["enc_p.proj.weight"].shape) == (320, 192, 1)
    # v2 adds `ge` onto MRTE's 512-wide features, so any other width cannot run (upstream fails at decode).
    config["model"]["gin_channels"] = 256
    with pytest.raises(SoVITSConfigError, match="gin_channels 256"):
        SoVITS(config)


def test_fold_weight_norm_keeps_outputs(model):
    folded = copy.deepcopy(model).fold_weight_norm()
    keys = list(folded.state_dict())
    assert not any(k.endswith(("weight_g", "weight_v")) for k in keys)
    assert "dec.ups.0.weight" in keys and "flow.flows.0.enc.cond_layer.weight" in keys
    g = torch.Generator().manual_seed(1)
    codes, text = torch.randint(0, 1024, (1, 1, 12), generator=g), torch.randint(0, 732, (1, 9), generator=g)
    ge, noise = torch.randn(1, 512, 1, generator=g), 0.5 * torch.randn(1, 192, 24, generator=g)
    with torch.no_grad():
        before, after = model.decode(codes, text, ge, noise), folded.decode(codes, text, ge, noise)
    assert before.shape == (1, 1, 24 * model.hop_length)
    np.testing.assert_allclose(after.numpy(), before.numpy(), rtol=0, atol=1e-9)


def _dense_relative_attention(layer, x):
    """Closed form of the spec (§4.3), with explicit loops over positions."""
    heads, d, window = layer.n_heads, layer.k_channels, layer.window_size
    q = layer.conv_q(x)[0].reshape(heads, d, -1) / math.sqrt(d)
    k = layer.conv_k(x)[0].reshape(heads, d, -1)
    v = layer.conv_v(x)[0].reshape(heads, d, -1)
    rk, rv = layer.emb_rel_k[0], layer.emb_rel_v[0]
    length = x.shape[2]
    out = torch.zeros(heads, d, length, dtype=x.dtype)
    for h in range(heads):
        for i in range(length):
            scores = torch.stack([q[h, :, i] @ k[h, :, j] + (q[h, :, i] @ rk[j - i + window]
                                  if abs(j - i) <= window else 0.0) for j in range(length)])
            p = torch.softmax(scores, dim=0)
            for j in range(length):
                rel = rv[j - i + window] if abs(j - i) <= window else 0.0
                out[h, :, i] += p[j] * (v[h, :, j] + rel)
    return layer.conv_o(out.reshape(1, heads * d, length))


@pytest.mark.parametrize("length", [1, 3, 5, 9, 13])
def test_relative_attention_matches_closed_form(length):
    torch.manual_seed(length)
    layer = MultiHeadAttention(8, 8, n_heads=2, window_size=4).double()
    x = torch.randn(1, 8, length, dtype=torch.float64)
    with torch.no_grad():
        np.testing.assert_allclose(layer(x, x).numpy(), _dense_relative_attention(layer, x).numpy(), atol=1e-12)


# -- upstream fixtures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_extract_latent(gpt_sovits_set, model, lang):
    data = _fixture(gpt_sovits_set, f"hubert_latent_{lang}_tiny")
    ssl = torch.from_numpy(data["hubert_last_hidden"])
    with torch.no_grad():
        projected = model.ssl_proj(ssl).numpy()
        codes = model.extract_latent(ssl).numpy()
    assert _max_diff(projected, data["ssl_proj"]) <= 5e-5  # measured 4.3e-6 (values up to 2.4)
    assert codes.dtype == np.int64 and codes.shape == data["codes"].shape == (1, 1, 139)
    np.testing.assert_array_equal(codes, data["codes"])
    np.testing.assert_array_equal(codes[0, 0], data["prompt_semantic"])


def _run_decode(model, data, noise):
    with torch.no_grad():
        ge = model.reference_embedding(torch.from_numpy(data["refer_spec"]))
        return model.decode_intermediates(torch.from_numpy(data["codes"]), torch.from_numpy(data["text"]), ge,
                                          noise)


@pytest.mark.parametrize("lang", LANGS)
def test_decode_noise_scale_0(gpt_sovits_set, model, lang):
    data = _fixture(gpt_sovits_set, f"sovits_ns0_{lang}_tiny")
    result = _run_decode(model, data, torch.zeros(1, 192, 2 * data["codes"].shape[-1]))
    errors = {name: _max_diff(result[name], data[name]) for name in NS0_ATOL}
    for name, atol in NS0_ATOL.items():
        assert result[name].shape == data[name].shape, name
        assert errors[name] <= atol, f"{name}: max |diff| {errors[name]:.3g} > {atol:g} (all: {errors})"


@pytest.mark.parametrize("lang", LANGS)
def test_decode_noise_scale_05(gpt_sovits_set, model, lang):
    data = _fixture(gpt_sovits_set, f"sovits_ns0_{lang}_tiny")
    noisy = _fixture(gpt_sovits_set, f"sovits_ns05_{lang}_tiny")
    result = _run_decode(model, data, torch.from_numpy(noisy["noise"]) * 0.5)
    errors = {name: _max_diff(result[name], noisy[name]) for name in NS05_ATOL}
    for name, atol in NS05_ATOL.items():
        assert errors[name] <= atol, f"{name}: max |diff| {errors[name]:.3g} > {atol:g} (all: {errors})"
    # the noise must actually have moved the prior sample
    assert _max_diff(result["z_p"], data["z_p"]) > 0.1


def _linear_resize(x: np.ndarray, size: int) -> np.ndarray:
    """PyTorch's 1-D linear resize with align_corners=False, written out: source = (i + ½)·in/out − ½ (the
    scale and source index in float32, as PyTorch computes them), clamped at 0, neighbours clamped at the end."""
    n = x.shape[-1]
    scale = np.float32(n) / np.float32(size)
    src = np.maximum((np.arange(size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5), 0)
    src = src.astype(np.float64)
    left = np.minimum(np.floor(src).astype(int), n - 1)
    right = np.minimum(left + 1, n - 1)
    weight = src - left
    return x[..., left] * (1 - weight) + x[..., right] * weight


@pytest.mark.parametrize("speed", [0.7, 1.6])
def test_speed_stretches_the_text_encoder_output(gpt_sovits_set, model, speed):
    """Upstream's speed_factor: encoder2's output is resized to int(2T/speed)+1 frames before `proj`; the
    noise's length carries the frame count, and speed 1 (2T frames) stays the fixture's exact path."""
    from edgevoice.gpt_sovits.options import stretched_frames

    data = _fixture(gpt_sovits_set, "sovits_ns0_en_tiny")
    tokens = data["codes"].shape[-1]
    frames = stretched_frames(tokens, speed)
    assert frames == int(2 * tokens / speed) + 1
    plain = _run_decode(model, data, torch.zeros(1, 192, 2 * tokens))
    stretched = _run_decode(model, data, torch.zeros(1, 192, frames))
    expected = _linear_resize(plain["enc_p_x"].numpy().astype(np.float64), frames)
    assert stretched["enc_p_x"].shape[-1] == frames
    # float32 rounding only: at ~500 frames one ulp of the float32 source index is 3e-5 frames, times the
    # features' slope (|x| ≤ 4); align_corners=True or nearest would be off by > 0.1
    assert _max_diff(stretched["enc_p_x"], expected) <= 5e-5
    assert stretched["o"].shape[-1] == frames * model.hop_length


# -- export --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_onnx_export_dynamic_lengths(model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    folded = copy.deepcopy(model).fold_weight_norm()
    g = torch.Generator().manual_seed(0)

    def inputs(tokens, phones):
        return (torch.randint(0, 1024, (1, 1, tokens), generator=g), torch.randint(0, 732, (1, phones), generator=g),
                torch.randn(1, folded.gin_channels, 1, generator=g),
                0.5 * torch.randn(1, folded.inter_channels, 2 * tokens, generator=g))

    tokens = torch.export.Dim("tokens", min=1, max=4096)
    phones = torch.export.Dim("phones", min=1, max=2048)
    names = ["codes", "text", "ge", "noise"]
    program = torch.onnx.export(
        folded, inputs(50, 30), dynamo=True, opset_version=23, input_names=names, output_names=["audio"],
        dynamic_shapes={"codes": {2: tokens}, "text": {1: phones}, "ge": None, "noise": {2: 2 * tokens}},
        verbose=False)
    path = tmp_path / "sovits_decode.onnx"
    program.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n_tokens, n_phones in [(40, 17), (75, 90)]:
        feed = inputs(n_tokens, n_phones)
        with torch.no_grad():
            expected = folded.decode(*feed).numpy()
        (audio,) = session.run(None, {name: value.numpy() for name, value in zip(names, feed)})
        assert audio.shape == (1, 1, 2 * folded.hop_length * n_tokens)
        assert _max_diff(audio, expected) <= 2e-8  # measured 1.6e-9; |audio| ≈ 2.2e-3 for this set
