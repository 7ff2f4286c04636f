"""Export the upstream-made tiny model set, then check every graph and every runtime stage against upstream.

One bundle is exported per session (about a minute on 2 cores) and shared by the tests below.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")

from edgevoice import BundleError, EdgevoiceError, Synthesizer  # noqa: E402
from edgevoice.bundle import Bundle  # noqa: E402
from edgevoice.gpt_sovits.spectrogram import linear_spectrogram  # noqa: E402
from edgevoice_export.gpt_sovits.exporter import GptSovitsFiles, export_gpt_sovits  # noqa: E402
from edgevoice_export.graph_export import ExportOptions  # noqa: E402

BACKENDS = ["openvino", "onnxruntime"]


def _load(set_dir, name):
    return np.load(set_dir / "fixtures" / name)


def _snr_db(reference, test):
    noise = np.sum((reference.astype(np.float64) - test) ** 2)
    return 10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / max(noise, 1e-30))


def test_every_graph_matches_pytorch_on_at_least_two_lengths(fixture_bundle):
    _, report = fixture_bundle
    graphs = {r.graph for r in report.parity}
    assert graphs == {"hubert_codes", "ref_encoder", "bert", "gpt_prefill", "gpt_step", "gpt_decode", "gpt_batch_decode",
                      "sovits_latent", "sovits_vocoder"}
    backends = {(r.graph, r.backend) for r in report.parity}
    # gpt_step ships as ONNX only (onnxruntime), gpt_decode as a stateful IR only (OpenVINO); both take batches.
    assert ("gpt_step", "onnxruntime") in backends and ("gpt_step", "openvino") not in backends
    assert ("gpt_decode", "openvino") in backends and ("gpt_decode", "onnxruntime") not in backends
    for result in report.parity:
        assert len(set(result.shapes)) >= 2, result.line()
        if result.graph == "hubert_codes":
            assert result.max_abs == 0, result.line()  # codes identical
        else:
            assert result.max_rel < 1e-4, result.line()


def test_manifest_is_self_describing(fixture_bundle):
    path, _ = fixture_bundle
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == "edgevoice-bundle" and manifest["upstream_version"] == "v2"
    assert manifest["sample_rate"] == 32000 and len(manifest["symbols"]) == 732
    assert manifest["model"]["gpt"]["n_layer"] == 2  # read from the checkpoint, not assumed
    step = manifest["graphs"]["gpt_step"]
    assert step["files"] == {"onnx": "gpt_step.onnx"}
    assert step["inputs"][0]["shape"] == ["batch", 1]  # a batch of sequences
    assert {t["name"] for t in step["inputs"]} >= {"token", "position", "past_key.0", "past_value.1"}
    decode = manifest["graphs"]["gpt_decode"]
    assert decode["files"] == {"openvino": "gpt_decode.xml"}
    assert decode["runtime_options"]["openvino"]["KV_CACHE_PRECISION"] == "f32"
    assert {t["name"] for t in decode["inputs"]} == {"token", "position", "beam_idx"}
    batch = manifest["graphs"]["gpt_batch_decode"]  # the same step for rows of different lengths: a mask
    assert {t["name"] for t in batch["inputs"]} == {"token", "position", "past_mask", "beam_idx"}
    assert batch["states"] == decode["states"]
    # every layer's key and value cache is a state seeded from the prefill output of the same name
    assert sorted(decode["states"].values()) == sorted(f"present_{kind}.{i}" for kind in ("key", "value")
                                                       for i in range(2))
    for rel, digest in manifest["files"].items():
        assert (path / rel).is_file() and len(digest) == 64


@pytest.mark.parametrize("backend", BACKENDS)
def test_runtime_stages_reproduce_upstream(fixture_bundle, gpt_sovits_set, backend):
    synth = Synthesizer.load(fixture_bundle[0], backend=backend)
    for lang in ("en", "zh"):
        latent = _load(gpt_sovits_set, f"hubert_latent_{lang}_tiny.npz")
        np.testing.assert_array_equal(synth.reference_codes(latent["wav16k"]), latent["prompt_semantic"])

        gpt = _load(gpt_sovits_set, f"gpt_{lang}_tiny.npz")
        logits = synth.teacher_forced_logits(gpt["phoneme_ids"], gpt["bert_feature"], gpt["prompt_semantic"],
                                             gpt["tokens"])
        assert np.abs(logits - gpt["logits"]).max() <= 1e-4 * max(1.0, np.abs(gpt["logits"]).max())

        spec = _load(gpt_sovits_set, f"refspec_{lang}_tiny.npz")
        ns0 = _load(gpt_sovits_set, f"sovits_ns0_{lang}_tiny.npz")
        np.testing.assert_allclose(synth.reference_embedding(linear_spectrogram(spec["raw_audio_32k"])), ns0["ge"],
                                   atol=1e-5)
        audio = synth.decode_tokens(ns0["codes"], ns0["text"], ns0["refer_spec"])
        assert _snr_db(ns0["o"].reshape(-1), audio) >= 60
        assert np.abs(audio - ns0["o"].reshape(-1)).max() < 1e-6  # the tiny vocoder's signal is tiny (README §6.3)

        ns05 = _load(gpt_sovits_set, f"sovits_ns05_{lang}_tiny.npz")
        audio = synth.decode_tokens(ns0["codes"], ns0["text"], ns0["refer_spec"], noise=ns05["noise"] * 0.5)
        assert _snr_db(ns05["o"].reshape(-1), audio) >= 60


def test_openvino_decodes_with_the_stateful_cache(fixture_bundle, gpt_sovits_set):
    """OpenVINO runs gpt_decode (cache in the request), onnxruntime gpt_step (host cache): same logits, and a
    second utterance on the same request starts from its own prefill, not the previous state."""
    gpt = _load(gpt_sovits_set, "gpt_en_tiny.npz")
    args = (gpt["phoneme_ids"], gpt["bert_feature"], gpt["prompt_semantic"], gpt["tokens"])
    openvino = Synthesizer.load(fixture_bundle[0], backend="openvino")
    onnxruntime = Synthesizer.load(fixture_bundle[0], backend="onnxruntime")
    assert openvino._stateful_decode and not onnxruntime._stateful_decode
    first = openvino.teacher_forced_logits(*args)
    other = _load(gpt_sovits_set, "gpt_zh_tiny.npz")
    openvino.teacher_forced_logits(other["phoneme_ids"], other["bert_feature"], other["prompt_semantic"],
                                   other["tokens"])
    again = openvino.teacher_forced_logits(*args)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - onnxruntime.teacher_forced_logits(*args)).max() < 1e-4
    assert "gpt_decode" in openvino._sessions and "gpt_step" not in openvino._sessions


def test_bert_features_match_upstream(fixture_bundle, gpt_sovits_set):
    synth = Synthesizer.load(fixture_bundle[0])
    text = _load(gpt_sovits_set, "text_zh_tiny.npz")
    features = synth.bert_features(str(text["target_norm_text"]), text["target_word2ph"])
    assert features.shape == text["target_bert"].shape
    assert np.abs(features - text["target_bert"]).max() < 1e-4


@pytest.mark.parametrize("backend", BACKENDS)
def test_bert_is_padded_to_a_few_lengths_with_the_same_features(fixture_bundle, backend):
    """BERT runs on ids padded to `BERT_TOKEN_BUCKETS` with their mask (so a long-running process meets a few
    shapes, not one per segment length); the real tokens' states equal an unpadded run's."""
    from edgevoice.gpt_sovits.chunking import BERT_TOKEN_BUCKETS

    synth = Synthesizer.load(fixture_bundle[0], backend=backend, threads=1)
    seen = []
    session = synth._session("bert")
    real_run = session.run
    session.run = lambda feeds: seen.append(feeds["input_ids"].shape[1]) or real_run(feeds)
    for text in ("我们一起去公园散步。", "春天到了，公园里的花都开了，孩子们在草地上放风筝，老人们坐在长椅上聊天。"):
        phones, padded = synth.phonemize(text, "zh")
        synth._bert_buckets = ()  # the same segments at their own lengths (all-ones masks)
        _, exact = synth.phonemize(text, "zh")
        synth._bert_buckets = BERT_TOKEN_BUCKETS
        assert padded.shape == exact.shape and np.abs(padded - exact).max() < 1e-4 * max(1.0, np.abs(exact).max())
    assert len(seen) == 4 and set(seen[::2]) <= set(BERT_TOKEN_BUCKETS)  # padded, then the exact runs
    assert not set(seen[1::2]) & set(BERT_TOKEN_BUCKETS)
    with pytest.raises(EdgevoiceError, match="longer than BERT reads"):
        synth.phonemize("我们一起去公园散步" * 70, "zh")  # 630 characters without a break


def test_corrupt_and_incomplete_bundles_are_refused(fixture_bundle, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(fixture_bundle[0], copy)
    Bundle.load(copy)  # intact
    with open(copy / "gpt_decode.bin", "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(BundleError, match="gpt_decode.bin does not match its sha256"):
        Bundle.load(copy)
    (copy / "gpt_decode.bin").unlink()
    with pytest.raises(BundleError, match="missing file gpt_decode.bin"):
        Bundle.load(copy)
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="corrupt manifest"):
        Bundle.load(copy)
    with pytest.raises(BundleError, match="bundle folder not found"):
        Bundle.load(tmp_path / "nowhere")


def test_export_refuses_to_overwrite_and_leaves_no_partial_output(fixture_bundle, gpt_sovits_set, tmp_path):
    models = gpt_sovits_set / "models"
    with pytest.raises(BundleError, match="already exists"):
        export_gpt_sovits(GptSovitsFiles(models / "s1_v2_tiny.ckpt", models / "s2_v2_tiny.pth",
                                         models / "chinese-hubert-base"), ExportOptions(fixture_bundle[0], progress=False))
    bad = tmp_path / "notes.pth"
    bad.write_text("not a model")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="not a GPT-SoVITS SoVITS checkpoint"):
        export_gpt_sovits(GptSovitsFiles(models / "s1_v2_tiny.ckpt", bad, models / "chinese-hubert-base"),
                          ExportOptions(out, progress=False))
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_bundle_from_another_graph_interface_is_refused(fixture_bundle, tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(fixture_bundle[0], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    step = manifest["graphs"]["gpt_step"]
    step["inputs"] = [t for t in step["inputs"] if t["name"] != "past_mask"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="re-export the bundle"):
        Synthesizer.load(copy, verify=False)


def test_speed_changes_the_frame_count_not_the_tokens(fixture_bundle, gpt_sovits_set, tmp_path):
    """Upstream's speed_factor: the same tokens decoded into int(2T/speed)+1 frames; speed 1 is the plain path;
    OpenVINO and onnxruntime agree at every speed; a bundle from before speed control refuses speed != 1."""
    from edgevoice import SynthesisOptions
    from edgevoice.errors import OptionsError
    from edgevoice.gpt_sovits.options import stretched_frames

    data = _load(gpt_sovits_set, "sovits_ns0_en_tiny.npz")
    tokens, phones, spec = data["codes"][0, 0], data["text"], data["refer_spec"]
    openvino = Synthesizer.load(fixture_bundle[0], backend="openvino")
    onnxruntime = Synthesizer.load(fixture_bundle[0], backend="onnxruntime")
    hop = openvino.bundle.manifest.model["sovits"]["hop_length"]
    np.testing.assert_array_equal(openvino.decode_tokens(tokens, phones, spec),
                                  openvino.decode_tokens(tokens, phones, spec, speed=1.0))
    for speed in (0.75, 1.5):
        audio = openvino.decode_tokens(tokens, phones, spec, speed=speed)
        assert audio.size == hop * stretched_frames(tokens.size, speed) == hop * (int(2 * tokens.size / speed) + 1)
        assert _snr_db(audio, onnxruntime.decode_tokens(tokens, phones, spec, speed=speed)) > 100

    audio_dir = gpt_sovits_set / "audio"
    voice = openvino.create_voice(audio_dir / "ref_en.wav", (audio_dir / "ref_en.txt").read_text().strip(), "en")
    text = "The weather is lovely today."
    normal = list(openvino.stream(text, voice, "en", SynthesisOptions(seed=3, max_tokens=40)))
    fast = list(openvino.stream(text, voice, "en", SynthesisOptions(seed=3, max_tokens=40, speed=2.0)))
    pause = int(0.3 * openvino.sample_rate)
    for a, b in zip(normal, fast, strict=True):
        np.testing.assert_array_equal(a.tokens, b.tokens)
        assert b.audio.size == hop * stretched_frames(b.tokens.size, 2.0) + pause < a.audio.size

    with pytest.raises(OptionsError, match="speed 9.0 is outside"):
        SynthesisOptions(speed=9.0)


def test_default_token_limit_comes_from_the_gpt_config(fixture_bundle, gpt_sovits_set, tmp_path):
    copy = tmp_path / "short"
    shutil.copytree(fixture_bundle[0], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["model"]["gpt"]["max_sec"] == 54
    assert Synthesizer.load(fixture_bundle[0], verify=False).token_limit == 1499
    manifest["model"]["gpt"]["max_sec"] = 0.4  # upstream: early_stop_num = 50 · 0.4 = 20 tokens
    (copy / "manifest.json").write_text(json.dumps(manifest))
    synth = Synthesizer.load(copy, verify=False)
    gpt = _load(gpt_sovits_set, "gpt_en_tiny.npz")
    tokens = synth.generate_tokens(gpt["phoneme_ids"], gpt["bert_feature"], gpt["prompt_semantic"],
                                   rng=np.random.default_rng(0))
    assert synth.token_limit == 20 and 11 <= tokens.size <= 20


def test_reference_free_voices_match_the_pytorch_reference(fixture_bundle, gpt_sovits_set, tmp_path):
    """Upstream's ref_free: no prompt tokens or phones, the GPT starts from the target phones alone (audio
    positions from 0). Every backend equals our PyTorch reference there too, and such a voice saves and speaks."""
    import torch

    from edgevoice import SynthesisOptions, Voice
    from edgevoice_export.gpt_sovits.checkpoints import load_gpt_checkpoint
    from edgevoice_export.gpt_sovits.models.gpt import Text2SemanticDecoder

    gpt = _load(gpt_sovits_set, "gpt_en_tiny.npz")
    phones, bert, forced = gpt["phoneme_ids"].reshape(1, -1), gpt["bert_feature"].reshape(1, 1024, -1), gpt["tokens"]
    model = Text2SemanticDecoder.from_checkpoint(load_gpt_checkpoint(gpt_sovits_set / "models" / "s1_v2_tiny.ckpt"))
    empty = np.zeros((1, 0), np.int64)
    expected = model.teacher_forced_logits(torch.from_numpy(phones), torch.from_numpy(bert), torch.from_numpy(empty),
                                           torch.from_numpy(forced.astype(np.int64))).numpy()
    for backend in BACKENDS:
        synth = Synthesizer.load(fixture_bundle[0], backend=backend)
        logits = synth.teacher_forced_logits(phones, bert, empty, forced)
        assert np.abs(logits - expected).max() <= 1e-4 * np.abs(expected).max(), backend

    audio_dir = gpt_sovits_set / "audio"
    voice = synth.create_voice(audio_dir / "ref_en.wav", None, "en")
    assert voice.reference_free and voice.prompt_phone_ids.size == 0 and voice.prompt_bert.shape == (1024, 0)
    with_text = synth.create_voice(audio_dir / "ref_en.wav", (audio_dir / "ref_en.txt").read_text().strip(), "en")
    np.testing.assert_array_equal(voice.ge, with_text.ge)  # the timbre comes from the same clip
    again = Voice.load(voice.save(tmp_path / "free.npz"))
    assert again.reference_free
    chunks = list(synth.stream("See you tomorrow.", again, "en", SynthesisOptions(seed=0, max_tokens=30)))
    assert chunks and all(np.isfinite(c.audio).all() and 11 <= c.tokens.size <= 30 for c in chunks)


def test_extra_reference_clips_average_the_timbre(fixture_bundle, gpt_sovits_set, tmp_path):
    """Upstream's aux_ref_audio_paths: ge is the mean of every clip's ge; the prompt comes from the main clip."""
    from edgevoice import AudioError, Voice
    from edgevoice.audio import write_wav
    from edgevoice.gpt_sovits.reference import load_reference, load_timbre_clip

    synth = Synthesizer.load(fixture_bundle[0])
    audio_dir = gpt_sovits_set / "audio"
    text = (audio_dir / "ref_en.txt").read_text().strip()
    plain = synth.create_voice(audio_dir / "ref_en.wav", text, "en")
    mixed = synth.create_voice(audio_dir / "ref_en.wav", text, "en", aux_audio=[audio_dir / "ref_zh.wav"])
    main_ge = synth.timbre(load_reference(audio_dir / "ref_en.wav", 32000)[1])
    aux_ge = synth.timbre(load_timbre_clip(audio_dir / "ref_zh.wav", 32000))
    np.testing.assert_allclose(mixed.ge, (main_ge + aux_ge) / 2, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(mixed.prompt_tokens, plain.prompt_tokens)
    assert np.abs(mixed.ge - plain.ge).max() > 1e-4
    assert len(Voice.load(mixed.save(tmp_path / "mixed.npz")).aux_audio_sha256) == 1
    write_wav(tmp_path / "blip.wav", np.full(3200, 0.1, np.float32), 32000)
    with pytest.raises(AudioError, match="a timbre clip needs at least 0.5 s"):
        synth.create_voice(audio_dir / "ref_en.wav", text, "en", aux_audio=[tmp_path / "blip.wav"])


class _PlainSession:
    """The same onnxruntime session without `bind`: every step passes all the cache buffers."""

    def __init__(self, inner):
        self.run = inner.run


def test_bound_cache_buffers_step_as_plain_runs(fixture_bundle, gpt_sovits_set):
    """onnxruntime's decode step with the KV buffers bound by address gives the plain runs' logits, across a
    buffer growth (which rebinds) and rows dropped from a batch."""
    from edgevoice.gpt_sovits.decode_cache import HostKVCache

    synth = Synthesizer.load(fixture_bundle[0], backend="onnxruntime")
    gpt = _load(gpt_sovits_set, "gpt_en_tiny.npz")
    out, prompt_len = synth._prefill_run(gpt["phoneme_ids"], gpt["bert_feature"], gpt["prompt_semantic"])
    other, other_len = synth._prefill_run(gpt["phoneme_ids"][..., :-3], gpt["bert_feature"][..., :-3],
                                          gpt["prompt_semantic"])
    step, layers = synth._session("gpt_step"), synth._model["gpt"]["n_layer"]
    assert hasattr(step, "bind")
    bound = HostKVCache.of_rows(step, [out, other], layers, [prompt_len, other_len])
    plain = HostKVCache.of_rows(_PlainSession(step), [out, other], layers, [prompt_len, other_len])
    tokens = np.random.default_rng(0).integers(0, 1024, (HostKVCache.GROWTH + 10, 2))
    kept = []
    for index, pair in enumerate(tokens):
        if index == 20:
            bound.keep_rows(np.array([1]))
            plain.keep_rows(np.array([1]))
        rows = pair[:1] if index >= 20 else pair
        logits = bound.step_rows(rows)
        np.testing.assert_array_equal(logits, plain.step_rows(rows))
        kept.append((logits, logits.copy()))
    # the step writes its logits into one bound array: what a step returned must not change with later steps
    for returned, as_returned in kept:
        np.testing.assert_array_equal(returned, as_returned)
    assert len({id(returned) for returned, _ in kept}) == len(kept)


def test_bound_outputs_are_written_in_place(fixture_bundle):
    """`bind(inputs, outputs)`: a run writes the named outputs into the given arrays and returns those arrays; an
    output array of the wrong shape is a one-line BundleError, not a crash or a silent reallocation."""
    synth = Synthesizer.load(fixture_bundle[0], backend="onnxruntime")
    step = synth._session("gpt_step")
    layers, heads = synth._model["gpt"]["n_layer"], synth._model["gpt"]["heads"]
    head_dim = synth._model["gpt"]["hidden"] // heads
    cache = {f"past_{kind}.{i}": np.zeros((1, heads, 4, head_dim), np.float32)
             for kind in ("key", "value") for i in range(layers)}
    cache["past_mask"] = np.array([[0.0, 0.0, -np.inf, -np.inf]], np.float32)
    feeds = {"token": np.array([[3]], np.int64), "position": np.array([2], np.int64)}
    plain = step.run({**feeds, **cache})
    given = {"new_key.0": np.full((1, heads, 1, head_dim), np.nan, np.float32)}
    out = step.bind(cache, given).run(feeds)
    assert out["new_key.0"] is given["new_key.0"]
    for name, value in plain.items():
        np.testing.assert_array_equal(out[name], value)
    wrong = {"new_key.0": np.zeros((1, heads, 2, head_dim), np.float32)}
    with pytest.raises(BundleError, match="gpt_step"):
        step.bind(cache, wrong).run(feeds)
