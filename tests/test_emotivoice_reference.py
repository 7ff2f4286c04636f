"""EmotiVoice: checkpoint loading and our PyTorch reference, stage by stage against upstream's recorded fixtures
(`shared/fixtures/emotivoice`, made by running upstream itself), plus the random-weight test model writer."""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("yaml")

from edgevoice_export.checkpoints import CheckpointError, read_torch_archive  # noqa: E402
from edgevoice_export.emotivoice.checkpoints import (EmotiVoiceFiles, fold_weight_norm, load_config,  # noqa: E402
                                                     read_am_checkpoint, read_lines)
from edgevoice_export.emotivoice.models import (frame_count, gaussian_upsample, load_am_and_vocoder,  # noqa: E402
                                                load_style_bert)
from edgevoice_export.emotivoice.reference import EmotiVoiceModel  # noqa: E402
from edgevoice_export.emotivoice.random_model import make_test_model, parameter_counts  # noqa: E402

UIDS = ("en1", "en2", "zh1", "zh2", "mix1", "mix2")
AM_STAGES = ("token_embed", "enc_posenc_out", "enc_block0_out", "enc_block1_out", "enc_out", "spk_embed", "proj_out",
             "pitch_pred", "energy_pred", "dur_log", "pitch_embed_out", "energy_embed_out", "lr_in", "lr_out",
             "dec_posenc_out", "dec_block0_out", "dec_block1_out", "dec_out", "mel")
ABS_TOL = 1e-5


def _max_abs(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, f"shape {a.shape} != {b.shape}"
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if a.size else 0.0


@pytest.fixture(scope="module")
def models_root(emotivoice_set):
    return emotivoice_set / "models"


@pytest.fixture(scope="module")
def fixtures(emotivoice_set):
    return emotivoice_set / "fixtures"


@pytest.fixture(scope="module")
def files(models_root) -> EmotiVoiceFiles:
    return EmotiVoiceFiles.from_root(models_root)


@pytest.fixture(scope="module")
def model(files) -> EmotiVoiceModel:
    return EmotiVoiceModel.load(files)


# ---------------------------------------------------------------------------------------------------------------
# Files and checkpoints


def test_from_root_resolves_upstream_layout(files, models_root):
    assert files.am_checkpoint.name == "g_00140000"
    assert files.style_checkpoint.name == "checkpoint_163431"
    assert files.bert_dir == models_root / "WangZeJun" / "simbert-base-chinese"
    assert files.tokenlist.parent == models_root / "data" / "youdao" / "text"
    config = load_config(files)
    assert (config["n_vocab"], config["n_speaker"], config["emotion_n_labels"]) == (502, 2014, 7)


def test_from_root_errors_name_the_option(tmp_path, models_root):
    with pytest.raises(CheckpointError, match="am_checkpoint"):
        EmotiVoiceFiles.from_root(tmp_path)
    with pytest.raises(CheckpointError, match="style_checkpoint"):
        EmotiVoiceFiles.from_root(tmp_path, am_checkpoint=models_root / "variants" / "g_00140000.parametrized_keys")
    with pytest.raises(CheckpointError, match="bert_dir"):
        EmotiVoiceFiles.from_root(models_root, bert_dir=tmp_path / "nowhere")
    variant = models_root / "variants" / "g_00140000.parametrized_keys"
    explicit = EmotiVoiceFiles.from_root(models_root, am_checkpoint=variant)
    assert explicit.am_checkpoint.name.endswith("parametrized_keys")


def test_text_assets_count_like_readlines(files):
    # `emotion` has no final newline: upstream's readlines() still gives 7 labels
    assert len(read_lines(files.emotion)) == 7
    assert len(read_lines(files.tokenlist)) == 502 and len(read_lines(files.speaker2)) == 2014


def test_both_weight_norm_key_styles_fold_identically(files, models_root):
    legacy = read_am_checkpoint(files.am_checkpoint)
    parametrized = read_am_checkpoint(models_root / "variants" / "g_00140000.parametrized_keys")
    assert legacy.keys() == parametrized.keys()
    assert not any(k.endswith(("weight_g", "weight_v", "original0", "original1")) for k in legacy)
    for key in legacy:
        assert np.array_equal(legacy[key], parametrized[key]), key
    # folding agrees with torch's own weight norm: per output channel (Conv1d) and per input channel (ups)
    raw = read_torch_archive(files.am_checkpoint)["generator"]
    for name in ("generator.conv_pre", "generator.ups.0", "generator.ups.3", "generator.resblocks.4.convs1.2"):
        g, v = torch.from_numpy(raw[f"{name}.weight_g"].copy()), torch.from_numpy(raw[f"{name}.weight_v"].copy())
        assert _max_abs(legacy[f"{name}.weight"], torch._weight_norm(v, g, 0).numpy()) < 1e-6


def test_fold_weight_norm_rejects_half_a_pair():
    with pytest.raises(CheckpointError, match="incomplete"):
        fold_weight_norm({"conv.weight_g": np.ones((2, 1, 1), np.float32)}, "x")


def _resave(tmp_path, source, change, container="generator"):
    obj = read_torch_archive(source)
    state = OrderedDict(obj[container])
    change(state)
    path = tmp_path / source.name
    torch.save({container: OrderedDict((k, torch.from_numpy(np.array(v))) for k, v in state.items())}, path)
    return path


@pytest.mark.parametrize("change, message", [
    (lambda s: s.__setitem__("am.extra_head.weight", np.ones((2, 2), np.float32)), "unexpected weights am.extra_head"),
    (lambda s: s.pop("generator.conv_post.bias"), "missing weights generator.conv_post.bias"),
    (lambda s: s.__setitem__("am.to_mel.weight", np.ones((81, 32), np.float32)),
     r"am.to_mel.weight has shape \(81, 32\)"),
    (lambda s: s.pop("generator.ups.1.weight_v"), "incomplete"),
])
def test_am_checkpoint_key_errors(tmp_path, files, models_root, change, message):
    bad = _resave(tmp_path, files.am_checkpoint, change)
    with pytest.raises(CheckpointError, match=message) as info:
        load_am_and_vocoder(EmotiVoiceFiles.from_root(models_root, am_checkpoint=bad))
    assert "\n" not in str(info.value) and str(bad) in str(info.value)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.__setitem__("module.speaker_clf.classifier.weight", np.ones((3, 40), np.float32)), "unexpected"),
    (lambda s: s.pop("module.bert.pooler.dense.bias"), "missing weights bert.pooler.dense.bias"),
    (lambda s: s.__setitem__("module.bert.embeddings.word_embeddings.weight", np.ones((100, 40), np.float32)),
     "word_embeddings.weight has shape"),
])
def test_style_checkpoint_key_errors(tmp_path, files, models_root, change, message):
    bad = _resave(tmp_path, files.style_checkpoint, change, "model")
    with pytest.raises(CheckpointError, match=message):
        load_style_bert(EmotiVoiceFiles.from_root(models_root, style_checkpoint=bad))


@pytest.mark.parametrize("change, message", [
    ({"encoder_n_hidden": 10 ** 9, "decoder_n_hidden": 10 ** 9}, "encoder_n_hidden = 1000000000"),
    ({"decoder_n_layers": 10 ** 6}, "decoder_n_layers = 1000000 is not a whole number in 1…1024"),
    ({"variance_n_hidden": "256"}, "variance_n_hidden = '256'"), ({"variance_n_hidden": 7}, "has shape")])
def test_a_crafted_config_is_refused_before_any_model_is_built(tmp_path, files, models_root, change, message):
    """Sizes are checked, then the weights against a model built on torch's meta device: a config asking for
    10^9-wide layers used to be allocated before any weight was compared with it."""
    import yaml

    config = yaml.safe_load(files.config_yaml.read_text(encoding="utf-8"))
    config["model"].update(change)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(CheckpointError, match=message) as info:
        load_am_and_vocoder(EmotiVoiceFiles.from_root(models_root, config_yaml=path))
    assert "\n" not in str(info.value)


def test_bert_weights_come_from_the_style_checkpoint(model, files):
    parent = read_torch_archive(files.bert_dir / "pytorch_model.bin")
    ours = model.style_bert.bert.embeddings.word_embeddings.weight.detach().numpy()
    style = read_torch_archive(files.style_checkpoint)["model"]["module.bert.embeddings.word_embeddings.weight"]
    assert np.array_equal(ours, style) and not np.array_equal(ours, parent["embeddings.word_embeddings.weight"])


# ---------------------------------------------------------------------------------------------------------------
# Stages against the fixtures


def test_style_bert_matches_upstream(model, fixtures):
    data = np.load(fixtures / "style_tiny.npz")
    prefixes = sorted({k[: -len("_input_ids")] for k in data.files if k.endswith("_input_ids")})
    assert len(prefixes) == 18  # 12 prompts + 6 contents
    worst = 0.0
    with torch.no_grad():
        for p in prefixes:
            hidden, pooled = model.style_bert.hidden_and_pooled(torch.from_numpy(data[f"{p}_input_ids"]))
            ref = data[f"{p}_pooled"]
            err = _max_abs(pooled[0].numpy(), ref)
            assert err <= ABS_TOL * max(1.0, float(np.abs(ref).max())), p
            assert _max_abs(hidden.numpy(), data[f"{p}_last_hidden"]) <= ABS_TOL * 10, p
            worst = max(worst, err / float(np.abs(ref).max()))
    assert worst <= 1e-5


@pytest.mark.parametrize("uid", UIDS)
def test_acoustic_model_stages_match_upstream(model, fixtures, uid):
    data = np.load(fixtures / f"am_{uid}_tiny.npz")
    inputs = [torch.from_numpy(data[k]) for k in ("inputs_ling", "inputs_speaker", "inputs_style_embedding",
                                                    "inputs_content_embedding")]
    stages = model.am.stages(*inputs)
    assert np.array_equal(stages["durations"].numpy(), data["durations"])
    for name in AM_STAGES:
        ref = data[name]
        assert _max_abs(stages[name].numpy(), ref) <= ABS_TOL * max(1.0, float(np.abs(ref).max())), name
    # the decoder alone, from the fixture's upsampler input and durations
    with torch.no_grad():
        frames = torch.arange(data["mel"].shape[1], dtype=torch.float32)
        mel = model.am.back(torch.from_numpy(data["lr_in"]), torch.from_numpy(data["durations"]), frames)
    assert _max_abs(mel.numpy(), data["mel"]) <= ABS_TOL


def test_upsampler_edge_cases(fixtures):
    data = np.load(fixtures / "upsampler_edge_tiny.npz")
    hs = torch.from_numpy(data["hs"])
    for case, frames in ((0, 10), (1, 6), (2, 6)):
        ds = data[f"case{case}_ds"]
        assert frame_count(ds) == frames == data[f"case{case}_out"].shape[1]
        out = gaussian_upsample(hs, torch.from_numpy(ds), torch.arange(frames, dtype=torch.float32))
        assert _max_abs(out.numpy(), data[f"case{case}_out"]) <= ABS_TOL, case


def test_hifigan_stages_match_upstream(model, fixtures):
    data = np.load(fixtures / "hifigan_stages_tiny.npz")
    record = {}
    with torch.no_grad():
        wav = model.vocoder(torch.from_numpy(data["mel_in"]), record)
    for name, value in record.items():
        ref = data[name]
        assert _max_abs(value.numpy(), ref) <= ABS_TOL * max(1.0, float(np.abs(ref).max())), name
    assert _max_abs(wav.numpy(), data["wav"]) <= ABS_TOL


@pytest.mark.parametrize("uid", UIDS)
def test_hifigan_wav_matches_upstream(model, fixtures, uid):
    data = np.load(fixtures / f"hifigan_{uid}_tiny.npz")
    with torch.no_grad():
        wav = model.vocoder(torch.from_numpy(data["mel_in"]))
    assert wav.shape[-1] == model.facts()["hop"] * data["mel_in"].shape[-1]
    assert _max_abs(wav.numpy(), data["wav"]) <= ABS_TOL


def test_end_to_end_and_graph_modules_match_upstream(model, fixtures):
    """The exported graphs' modules chained as the host chains them (phones and frames padded to the runtime's
    lengths, the real counts as inputs) reproduce upstream's wav for zh1."""
    from edgevoice.emotivoice.synthesizer import AM_SMALLEST_LENGTH
    from edgevoice.fixed_shapes import padded_length

    am = np.load(fixtures / "am_zh1_tiny.npz")
    voc = np.load(fixtures / "hifigan_zh1_tiny.npz")
    front, back, hifigan = (spec.module for spec in model.graph_specs()[1:])
    phones = am["inputs_ling"].shape[1]
    padded = padded_length(phones, AM_SMALLEST_LENGTH)
    assert padded > phones  # the padding is exercised
    ids = torch.nn.functional.pad(torch.from_numpy(am["inputs_ling"]), (0, padded - phones))
    with torch.no_grad():
        hidden, log_d, durations = front(ids, *(torch.from_numpy(am[k]) for k in (
            "inputs_speaker", "inputs_style_embedding", "inputs_content_embedding")), torch.tensor([phones]))
        assert np.array_equal(durations[:, :phones].numpy(), am["durations"])
        assert not durations[:, phones:].any()
        assert _max_abs(log_d[:, :phones].numpy(), am["dur_log"][..., 0]) <= ABS_TOL
        assert _max_abs(hidden[:, :phones].numpy(), am["lr_in"]) <= ABS_TOL
        frames = frame_count(durations.numpy())
        mel = back(hidden, durations, torch.arange(padded_length(frames, AM_SMALLEST_LENGTH), dtype=torch.float32),
                   torch.tensor([phones]), torch.tensor([frames]))[:, :frames]
        wav = hifigan(mel.transpose(1, 2))
    assert _max_abs(wav.numpy(), voc["wav"][:, 0]) <= ABS_TOL
    e2e = np.load(fixtures / "e2e_zh1_tiny.npz")
    audio = model.synthesize(am["inputs_ling"][0], int(am["inputs_speaker"][0]), am["inputs_style_embedding"][0],
                             am["inputs_content_embedding"][0])
    int16 = (audio * 32768).astype(np.int16)
    assert int16.shape == e2e["audio_int16"].shape
    assert np.abs(int16.astype(np.int32) - e2e["audio_int16"]).max() <= 1  # float noise may flip a truncation


def test_facts(model):
    facts = model.facts()
    assert (facts["sample_rate"], facts["n_mels"], facts["hop"], facts["hidden"], facts["bert_hidden"]) == (
        16000, 80, 256, 32, 40)
    assert (facts["n_vocab"], facts["n_speaker"], facts["bert_vocab_size"]) == (502, 2014, 13685)
    assert facts["vocoder_context_frames"] == 15  # upstream's kernels and rates (the tiny set keeps them)


# upstream's vocoder and others a model set could configure: the other residual block, a first stage that upsamples
# little (its resblocks reach far in frames), odd rates and fewer resblocks
VOCODER_CONFIGS = {
    "upstream": {},
    "resblock2": {"resblock": "2", "resblock_dilation_sizes": [[1, 2], [2, 6], [3, 12]]},
    "slow-first-stage": {"upsample_rates": [2, 8, 4, 4], "upsample_kernel_sizes": [4, 16, 8, 8]},
    "odd-rates": {"upsample_rates": [5, 5, 4, 3], "upsample_kernel_sizes": [11, 11, 8, 7],
                  "resblock_kernel_sizes": [3, 5], "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]]},
}


@pytest.mark.parametrize("change", VOCODER_CONFIGS.values(), ids=VOCODER_CONFIGS.keys())
def test_the_vocoders_context_is_worked_out_from_its_configuration(change):
    """The context the runtime's mel windows carry (`vocoder_context_frames`, from the kernels, dilations and
    rates) covers what one mel frame reaches, measured on the module, and is not far over it."""
    from edgevoice_export.emotivoice.models import HiFiGAN
    from edgevoice_export.hifigan import measured_reach_frames

    config = {"resblock": "1", "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
              "initial_channel": 8, "upsample_initial_channel": 32, "resblock_kernel_sizes": [3, 7, 11],
              "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], **change}
    torch.manual_seed(0)
    vocoder = HiFiGAN(config)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # several threads may sum in another order on the two runs: samples far away "change"
    try:
        with torch.no_grad():
            measured = measured_reach_frames(lambda mel: vocoder(torch.from_numpy(mel)).numpy(), 8, 1,
                                             vocoder.reach_frames)
    finally:
        torch.set_num_threads(threads)
    assert measured <= vocoder.reach_frames <= measured + 5


def test_graph_specs_shapes(model):
    specs = model.graph_specs()
    assert [s.name for s in specs] == ["style_bert", "am_front", "am_back", "hifigan"]
    for spec in specs:
        assert len(spec.examples) >= 2
        lengths = {tuple(x.shape) for x in (ex[0] for ex in spec.examples)}
        assert len(lengths) == len(spec.examples), spec.name  # examples of different lengths
        with torch.no_grad():
            out = spec.module(*spec.examples[0])
        out = out if isinstance(out, tuple) else (out,)
        assert [o.dtype for o in out] == [getattr(torch, t.dtype) for t in spec.outputs], spec.name
    back = specs[2]
    assert any(int(ex[1].sum()) == 0 for ex in back.examples)  # the all-zero rule is exercised
    assert any((ex[1] == 0).any() and int(ex[1].sum()) > 0 for ex in back.examples)  # zeros among non-zeros


@pytest.mark.slow
def test_graphs_export_to_onnx(model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from edgevoice_export.onnx_export import compare, export_onnx

    for spec in model.graph_specs():
        path = tmp_path / f"{spec.name}.onnx"
        export_onnx(spec, path)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        assert [i.name for i in session.get_inputs()] == [t.name for t in spec.inputs]
        result = compare(spec, "onnxruntime", lambda feeds: session.run(names, feeds))
        assert result.max_rel < 1e-4, result.line()


# ---------------------------------------------------------------------------------------------------------------
# Test model writer


def test_parameter_counts_match_upstream(emotivoice_set):
    full = parameter_counts("full")
    assert (full["g"], full["g_tensors"]) == (53_277_015, 422)
    assert (full["style"], full["style_bert"]) == (96_662_160, 96_551_424)
    tiny = parameter_counts("tiny")
    manifest = json.loads((emotivoice_set / "models" / "models_manifest.json").read_text())["params"]
    assert (tiny["g"], tiny["g_am"], tiny["g_generator"], tiny["g_alignment_module"]) == (
        manifest["g_total"], manifest["g_am"], manifest["g_generator"], manifest["g_am_alignment_module"])
    assert (tiny["style"], tiny["style_bert"]) == (manifest["style_encoder_total"], manifest["style_encoder_bert"])


def test_tiny_test_model_has_upstream_layout_and_loads(tmp_path, files):
    root = make_test_model(tmp_path / "tiny", "tiny", seed=5)
    ours = EmotiVoiceFiles.from_root(root)
    for attr in ("am_checkpoint", "style_checkpoint"):
        mine, theirs = read_torch_archive(getattr(ours, attr)), read_torch_archive(getattr(files, attr))
        assert mine.keys() == theirs.keys()
        (container,) = mine.keys()
        assert list(mine[container]) == list(theirs[container])  # same keys in the same order
        assert all(mine[container][k].shape == v.shape for k, v in theirs[container].items())
    assert read_lines(ours.lexicon) == read_lines(files.lexicon)
    assert len(read_lines(ours.bert_dir / "vocab.txt")) == 13685
    for name in ("tokenlist", "speaker2", "emotion", "pitch", "speed", "energy"):
        assert getattr(ours, name).read_bytes() == getattr(files, name).read_bytes()
    assert load_config(ours)["model"] == load_config(files)["model"]

    model = EmotiVoiceModel.load(ours)
    raw = read_torch_archive(ours.am_checkpoint)["generator"]
    assert model.am.encoder.embed[0].alpha.item() == pytest.approx(float(raw["am.encoder.embed.0.alpha"]))
    assert abs(model.am.encoder.embed[0].alpha.item() - 1.0) > 1e-3
    assert not np.allclose(model.am.encoder.after_norm.weight.detach().numpy(), 1.0)
    layers = [model.am.encoder.encoders[i].self_attn.linear_q.weight for i in range(2)]
    assert not torch.equal(*layers)
    durations = model.am.front(torch.arange(3, 40)[None], torch.tensor([5]), torch.zeros(1, 40), torch.zeros(1, 40))[2]
    assert 0.3 <= durations.float().mean() <= 12
    audio = model.synthesize(np.arange(3, 20), 1, np.zeros(40, np.float32), np.ones(40, np.float32) * 0.1)
    assert audio.ndim == 1 and audio.size % 256 == 0 and np.isfinite(audio).all()


def test_an_export_refuses_a_vocoder_reaching_past_its_worked_out_context(model, monkeypatch):
    """The exporter measures the reach before writing `vocoder_context_frames`: a configuration the calculation
    did not model (here: the calculation made to give too little) is refused, not shipped with inexact windows."""
    from edgevoice_export.emotivoice.models import HiFiGAN

    model.vocoder.check_reach()  # upstream's configuration passes
    monkeypatch.setattr(HiFiGAN, "reach_frames", property(lambda self: 8))
    with pytest.raises(CheckpointError, match="reaches further than the 8 mel frames"):
        model.vocoder.check_reach()


def test_a_vocoder_that_ignores_its_input_reaches_nothing():
    from edgevoice_export.hifigan import measured_reach_frames

    assert measured_reach_frames(lambda mel: np.zeros(mel.shape[-1] * 4, np.float32), 8, 1, 5) == 0
