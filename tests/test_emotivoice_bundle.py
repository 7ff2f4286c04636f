"""EmotiVoice through the bundle: every stage and the end-to-end audio against upstream's recorded fixtures, on
OpenVINO and onnxruntime; speakers, styles, speed, chunked streaming, and the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

import edgevoice
from edgevoice.audio import to_int16
from edgevoice.cli import main
from edgevoice.errors import OptionsError, TextError, VoiceError

BACKENDS = ["openvino", "onnxruntime"]
UTTERANCES = ["en1", "en2", "zh1", "zh2", "mix1", "mix2"]


def _fixture(emotivoice_set, name):
    return np.load(emotivoice_set / "fixtures" / name)


def _snr_db(reference, test) -> float:
    reference, test = np.asarray(reference, np.float64), np.asarray(test, np.float64)
    return float(10 * np.log10(np.sum(reference ** 2) / max(np.sum((reference - test) ** 2), 1e-30)))


@pytest.fixture(scope="module", params=BACKENDS)
def synth(request, emotivoice_bundle):
    return edgevoice.load(emotivoice_bundle[0], backend=request.param, threads=1)


def test_export_parity_and_manifest(emotivoice_bundle):
    bundle, report = emotivoice_bundle
    assert {r.graph for r in report.parity} == {"style_bert", "am_front", "am_back", "hifigan"}
    assert all(len(set(r.shapes)) >= 2 for r in report.parity)  # every graph checked at two lengths or more
    assert max(r.max_rel for r in report.parity) < 1e-4
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["family"] == "emotivoice" and manifest["sample_rate"] == 16000
    assert manifest["defaults"]["speed"] == 1.0 and len(manifest["symbols"]) == manifest["model"]["n_vocab"]


def test_style_embeddings_match_upstream(synth, emotivoice_set):
    style = _fixture(emotivoice_set, "style_tiny.npz")
    texts = [str(t) for t in style["prompttexts"]] + [str(t) for t in style["contenttexts"]]
    keys = [f"prompt{i:02d}" for i in range(len(style["prompttexts"]))]
    keys += [f"content{i:02d}" for i in range(len(style["contenttexts"]))]
    for text, key in zip(texts, keys):
        np.testing.assert_array_equal(synth.tokenizer.encode(text), style[f"{key}_input_ids"][0])
        expected = style[f"{key}_pooled"]
        got = synth.style_embedding(text)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max(), key


@pytest.mark.parametrize("uid", UTTERANCES)
def test_acoustic_and_vocoder_match_upstream(synth, emotivoice_set, uid):
    am = _fixture(emotivoice_set, f"am_{uid}_tiny.npz")
    durations, mel = synth.acoustic(am["inputs_ling"][0], int(am["inputs_speaker"][0]),
                                    am["inputs_style_embedding"][0], am["inputs_content_embedding"][0])
    np.testing.assert_array_equal(durations, am["durations"][0])
    assert mel.shape == am["mel"][0].shape
    assert np.abs(mel - am["mel"][0]).max() <= 1e-4 * np.abs(am["mel"]).max()
    vocoder = _fixture(emotivoice_set, f"hifigan_{uid}_tiny.npz")
    wav = synth.vocode(vocoder["mel_in"])  # upstream's [1, n_mels, frames] layout
    assert _snr_db(vocoder["wav"].reshape(-1), wav) >= 60
    np.testing.assert_allclose(synth.vocode(vocoder["mel_in"][0].T), wav, atol=1e-6)  # [frames, n_mels] too


@pytest.mark.parametrize("uid", UTTERANCES)
def test_end_to_end_matches_upstream_wav(synth, emotivoice_set, uid):
    e2e = _fixture(emotivoice_set, f"e2e_{uid}_tiny.npz")
    text = str(e2e["text"])
    phonemes, ids = synth.phonemes(text)
    assert phonemes == str(e2e["phonemes"])
    voice = synth.voice_for(speaker=str(e2e["speaker_name"]), prompt=str(e2e["prompt"]))
    audio = to_int16(synth.synthesize(text, voice))
    assert audio.shape == e2e["audio_int16"].shape
    assert _snr_db(e2e["audio_int16"], audio) >= 60


def test_speakers_by_name_or_row(emotivoice_bundle):
    synth = edgevoice.load(emotivoice_bundle[0])
    names = synth.speakers
    assert synth.speaker_row(names[5]) == 5
    numeric = next(i for i, n in enumerate(names) if n.isdigit() and int(n) != i and int(n) < len(names))
    assert synth.speaker_row(names[numeric]) == numeric  # a listed name wins over the row with that number
    unlisted = next(i for i in range(len(names)) if str(i) not in names)
    assert synth.speaker_row(unlisted) == unlisted
    with pytest.raises(VoiceError, match="outside"):
        synth.speaker_row(len(names) + 10_000)
    with pytest.raises(VoiceError, match="no speaker named"):
        synth.speaker_row("nobody")


def test_speed_streaming_and_bad_input(emotivoice_bundle):
    synth = edgevoice.load(emotivoice_bundle[0])
    voice = synth.voice_for(prompt="开心")
    text = "The weather is lovely today, and we are going to the park together."
    base = synth.default_options
    whole = synth.synthesize(text, voice)
    fast = synth.synthesize(text, voice, options=base.with_overrides(speed=2.0))
    assert 0.35 * whole.size < fast.size < 0.65 * whole.size
    # on onnxruntime the chunks are `vocoder_chunk_frames` long; on OpenVINO they are its fixed-length calls
    ort = edgevoice.load(emotivoice_bundle[0], backend="onnxruntime", threads=1)
    for streamer, at_least in ((ort, 4), (synth, 2)):
        pieces = [c.audio for c in streamer.stream(text, voice, options=base.with_overrides(vocoder_chunk_frames=16),
                                                   chunked=True)]
        assert len(pieces) >= at_least
        joined = np.concatenate(pieces)
        assert joined.size == whole.size and _snr_db(whole, joined) >= 60
    two = synth.synthesize("第一句话。Second sentence here.", voice)
    assert two.size > int(0.2 * 16000)  # two sentences with a pause between them
    with pytest.raises(TextError):
        synth.synthesize("   ", voice)
    with pytest.raises(OptionsError, match="does not apply"):
        base.with_overrides(top_k=5)
    with pytest.raises(OptionsError, match="finite"):
        base.with_overrides(speed=float("nan"))
    with pytest.raises(OptionsError):
        synth.vocode(np.zeros((3, 7), np.float32))
    with pytest.raises(TextError):
        synth.acoustic([0, 10_000], 0, voice.style, voice.style)


class _LengthRecorder:
    """A session that notes the frame counts it is fed and passes them on."""

    prepares_each_shape = True

    def __init__(self, session):
        self.session, self.frames = session, []

    def run(self, feeds):
        self.frames.append(feeds["mel"].shape[2])
        return self.session.run(feeds)


class _ShapeRecorder:
    """A session that notes the length of one input's axis 1 (or 0) and passes the feeds on."""

    def __init__(self, session, name):
        self.session, self.name, self.lengths = session, name, set()
        self.prepares_each_shape = getattr(session, "prepares_each_shape", True)

    def run(self, feeds):
        self.lengths.add(feeds[self.name].shape[-1] if feeds[self.name].ndim == 1 else feeds[self.name].shape[1])
        return self.session.run(feeds)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_acoustic_model_runs_at_a_few_padded_lengths(emotivoice_bundle, backend):
    """On OpenVINO, which keeps kernels for every new length, phones and frames are padded to the half-octave ladder;
    onnxruntime runs each sentence at its own counts. The durations and mel are those of a run at the own length."""
    from edgevoice.emotivoice.synthesizer import AM_SMALLEST_LENGTH
    from edgevoice.fixed_shapes import padded_length

    synth = edgevoice.load(emotivoice_bundle[0], backend=backend, threads=1)
    front = _ShapeRecorder(synth.backend.session(synth.bundle, "am_front"), "token_ids")
    back = _ShapeRecorder(synth.backend.session(synth.bundle, "am_back"), "frame_index")
    synth._sessions.update(am_front=front, am_back=back)
    voice = synth.voice_for(prompt="happy")
    rng, frame_counts = np.random.default_rng(2), set()
    for phones in (3, 17, 24, 40, 77):
        ids = rng.integers(1, len(synth.bundle.manifest.symbols), phones)
        durations, mel = synth.acoustic(ids, voice.speaker_row, voice.style, voice.style)
        feeds = {"token_ids": ids[None], "speaker": np.array([voice.speaker_row]), "valid_phones": np.array([phones]),
                 "style": voice.style[None], "content": voice.style[None]}
        own = front.session.run(feeds)  # the graph at the sentence's own length: nothing padded
        np.testing.assert_array_equal(durations, own["durations"][0])
        frames = mel.shape[0]
        frame_counts.add(frames)
        own_mel = back.session.run({"hidden": own["hidden"], "durations": own["durations"],
                                    "frame_index": np.arange(frames, dtype=np.float32),
                                    "valid_phones": np.array([phones]), "valid_frames": np.array([frames])})["mel"][0]
        np.testing.assert_allclose(mel, own_mel, atol=2e-5 * np.abs(own_mel).max())
    if backend == "onnxruntime":
        assert front.lengths == {3, 17, 24, 40, 77} and back.lengths == frame_counts
    else:
        ladder = {padded_length(n, AM_SMALLEST_LENGTH) for n in range(1, 4000)}
        assert front.lengths == {16, 24, 48, 96} and back.lengths <= ladder


def test_openvino_vocoder_runs_at_fixed_shapes_with_the_same_audio(emotivoice_bundle, emotivoice_set):
    """On OpenVINO, which prepares each new input length on its first run (seconds) and keeps it (memory), the
    vocoder runs at a few mel lengths whatever the sentence, with the samples of one whole call (`fixed_shapes.py`);
    a server's synthesizer (`long_running`) keeps it there."""
    synth = edgevoice.load(emotivoice_bundle[0], threads=1)
    windows, context = synth.vocoder_windows, synth.vocoder_context
    assert context == synth.model["vocoder_context_frames"] == 15  # upstream's kernels and rates (tiny keeps them)
    recorder = _LengthRecorder(synth.backend.session(synth.bundle, "hifigan"))
    synth._sessions["hifigan"] = recorder
    rng = np.random.default_rng(5)
    lengths = (7, 33, 100, windows[0], windows[-1] + 1, 700)
    for frames in lengths:
        mel = (rng.standard_normal((frames, synth.model["n_mels"])) * 1.5 - 2).astype(np.float32)
        whole = recorder.session.run({"mel": mel.T[None]})["wav"][0]  # one call at the mel's own length
        np.testing.assert_allclose(synth.vocode(mel), whole, atol=2e-5, err_msg=f"{frames} frames")
    assert set(recorder.frames) == {7, 2 * context, *windows}
    e2e = _fixture(emotivoice_set, "e2e_en1_tiny.npz")
    voice = synth.voice_for(speaker=str(e2e["speaker_name"]), prompt=str(e2e["prompt"]))
    whole = synth.synthesize(str(e2e["text"]), voice)
    assert _snr_db(e2e["audio_int16"], to_int16(whole)) >= 60
    chunks = synth.stream(str(e2e["text"]), voice, options=synth.default_options.with_overrides(
        vocoder_chunk_frames=40), chunked=True)
    assert _snr_db(whole, np.concatenate([c.audio for c in chunks])) >= 60
    served = edgevoice.load(emotivoice_bundle[0], threads=1, long_running=True)
    assert served.backend.onnxruntime_graphs == {"style_bert"}  # the acoustic model runs padded (own test)
    assert served._vocoder_fixed_shapes()
    assert not edgevoice.load(emotivoice_bundle[0], backend="onnxruntime")._vocoder_fixed_shapes()


def test_a_vocoder_that_reaches_further_gets_its_own_context_and_windows(tmp_path):
    """Another model set's HiFi-GAN (its first stage upsamples 2×, so its resblocks reach ~37 mel frames) is
    exported with its own context; on OpenVINO its windows grow to hold more than that on both sides, and the
    samples still equal one whole call's. With upstream's 16 frames they would not."""
    pytest.importorskip("torch", reason="exporting needs the export extra (torch)")
    from edgevoice_export.emotivoice.exporter import export_emotivoice, resolve_files
    from edgevoice_export.emotivoice.random_model import make_test_model
    from edgevoice_export.graph_export import ExportOptions

    root = make_test_model(tmp_path / "models", "tiny", seed=3, yaml_overrides={
        "model.upsample_rates": [2, 8, 4, 4], "model.upsample_kernel_sizes": [4, 16, 8, 8]})
    export_emotivoice(resolve_files(root, {}), ExportOptions(tmp_path / "bundle", formats=("openvino",),
                                                             progress=False))
    synth = edgevoice.load(tmp_path / "bundle", threads=1)
    assert (synth.vocoder_context, synth.vocoder_windows) == (42, (128, 256))
    recorder = _LengthRecorder(synth.backend.session(synth.bundle, "hifigan"))
    synth._sessions["hifigan"] = recorder
    rng = np.random.default_rng(6)
    for frames in (50, 100, 200, 600):
        mel = (rng.standard_normal((frames, synth.model["n_mels"])) * 1.5 - 2).astype(np.float32)
        whole = recorder.session.run({"mel": mel.T[None]})["wav"][0]
        np.testing.assert_allclose(synth.vocode(mel), whole, atol=2e-5, err_msg=f"{frames} frames")
    assert set(recorder.frames) == {50, 2 * 42, 128, 256}
    synth.vocoder_context = 16  # what every bundle had before the context was worked out: joins that differ
    assert np.abs(synth.vocode(mel) - whole).max() > 1e-3


def test_a_vocoder_whose_upsampling_adds_samples_keeps_them(tmp_path):
    """A transposed convolution whose kernel minus rate is odd (rate 5, kernel 10: as 24 kHz HiFi-GANs with a hop of
    300 or 320 have) makes one sample more than rate × its input, so upstream's vocoder here gives frames·320 + 64
    samples. The runtime kept frames·hop of each piece, so OpenVINO's windows and every stream dropped the last 64
    (and `parity` of the two engines failed on the shapes): the piece that ends at the mel's end keeps them."""
    pytest.importorskip("torch", reason="exporting needs the export extra (torch)")
    from edgevoice_export.emotivoice.exporter import export_emotivoice, resolve_files
    from edgevoice_export.emotivoice.random_model import make_test_model
    from edgevoice_export.graph_export import ExportOptions

    root = make_test_model(tmp_path / "models", "tiny", seed=4, yaml_overrides={
        "model.upsample_rates": [5, 4, 4, 4], "model.upsample_kernel_sizes": [10, 8, 8, 8]})
    export_emotivoice(resolve_files(root, {}), ExportOptions(tmp_path / "bundle", progress=False))
    rng = np.random.default_rng(8)
    for backend in ("openvino", "onnxruntime"):
        synth = edgevoice.load(tmp_path / "bundle", backend=backend, threads=1)
        session = synth.backend.session(synth.bundle, "hifigan")
        assert synth.model["hop"] == 320
        for frames in (9, 60, 150, 400):
            mel = (rng.standard_normal((frames, synth.model["n_mels"])) * 1.5 - 2).astype(np.float32)
            whole = session.run({"mel": mel.T[None]})["wav"][0]
            assert whole.size == frames * 320 + 64
            np.testing.assert_allclose(synth.vocode(mel), whole, atol=2e-5, err_msg=f"{backend}, {frames} frames")
            chunks = np.concatenate(list(synth.vocode_chunks(mel, 37)))
            np.testing.assert_allclose(chunks, whole, atol=2e-5, err_msg=f"{backend} chunks, {frames} frames")


def test_a_vocoder_reaching_past_the_runtimes_windows_is_refused_before_export(tmp_path):
    """Upstream runs any receptive field; the runtime's windows carry at most MAX_VOCODER_CONTEXT_FRAMES of context.
    Such a set used to export every graph and then fail on its own manifest ("vocoder_context_frames must be a frame
    count from 1 to 256"), which read like corruption."""
    pytest.importorskip("torch", reason="exporting needs the export extra (torch)")
    from edgevoice_export.emotivoice.checkpoints import CheckpointError
    from edgevoice_export.emotivoice.exporter import export_emotivoice, resolve_files
    from edgevoice_export.emotivoice.random_model import make_test_model
    from edgevoice_export.graph_export import ExportOptions

    root = make_test_model(tmp_path / "models", "tiny", seed=5, yaml_overrides={
        "model.upsample_rates": [2, 2, 2, 2], "model.upsample_kernel_sizes": [4, 4, 4, 4],
        "model.resblock_kernel_sizes": [3, 11], "model.resblock_dilation_sizes": [[1, 3, 5], [1, 27, 81]]})
    with pytest.raises(CheckpointError, match=r"reaches 532 mel frames to each side .* at most 256 frames") as info:
        export_emotivoice(resolve_files(root, {}), ExportOptions(tmp_path / "bundle", progress=False))
    assert "\n" not in str(info.value) and sorted(p.name for p in tmp_path.iterdir()) == ["models"]


def test_an_export_the_runtime_would_refuse_is_not_written(emotivoice_set, tmp_path, monkeypatch):
    """The exporter opens what it wrote as the runtime does before renaming it into place (`write_checked_manifest`,
    shared by every family): a model fact at odds with the graphs is a one-line error and leaves no bundle."""
    from edgevoice.errors import BundleError
    from edgevoice_export.emotivoice.exporter import export_emotivoice, resolve_files
    from edgevoice_export.emotivoice.reference import EmotiVoiceModel
    from edgevoice_export.graph_export import ExportOptions

    facts = EmotiVoiceModel.facts
    monkeypatch.setattr(EmotiVoiceModel, "facts", lambda self: {**facts(self), "hop": facts(self)["hop"] + 1})
    out = tmp_path / "bundle"
    with pytest.raises(BundleError, match="hop") as info:
        export_emotivoice(resolve_files(emotivoice_set / "models", {}), ExportOptions(out, progress=False))
    assert "\n" not in str(info.value) and not out.exists() and list(tmp_path.iterdir()) == []


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_line_error(result, fragment):
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = [line for line in result.output.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("Error:") and fragment in lines[0], result.output


def test_cli_say_and_phonemize(emotivoice_bundle, emotivoice_set, tmp_path):
    bundle, _ = emotivoice_bundle
    e2e = _fixture(emotivoice_set, "e2e_mix1_tiny.npz")
    wav = tmp_path / "out.wav"
    result = _run("say", "--bundle", bundle, "--speaker", str(e2e["speaker_name"]), "--prompt", str(e2e["prompt"]),
                  "--text", str(e2e["text"]), "--out", wav)
    assert result.exit_code == 0, result.output
    data, rate = soundfile.read(wav, dtype="int16")
    assert rate == 16000 and soundfile.info(wav).subtype == "PCM_16"
    assert data.shape == e2e["audio_int16"].shape and _snr_db(e2e["audio_int16"], data) >= 60
    result = _run("phonemize", "--bundle", bundle, "--json", str(e2e["text"]))
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["phonemes"] == str(e2e["phonemes"]) and report["ids"][0] == report["ids"][-1]
    result = _run("info", bundle)
    assert result.exit_code == 0 and "emotivoice" in result.output and "hifigan" in result.output
    _one_line_error(_run("say", "--bundle", bundle, "--speaker", "nobody", "--text", "hi", "--out", wav),
                    "no speaker named")
    _one_line_error(_run("say", "--bundle", bundle, "--text", "hi", "--out", wav, "--top-k", 3), "does not apply")
    _one_line_error(_run("voice", "create", "--bundle", bundle, "--audio", wav, "--out", tmp_path / "v.npz"),
                    "built-in speakers")
    _one_line_error(_run("say", "--bundle", bundle, "--voice", tmp_path / "v.npz", "--text", "hi", "--out", wav),
                    "built-in speakers")


def test_parity_command_with_pytorch_reference_and_replay(emotivoice_bundle, emotivoice_set, tmp_path):
    bundle, _ = emotivoice_bundle
    case = tmp_path / "case.npz"
    result = _run("parity", "--bundle", bundle, "--prompt", "Happy", "--text", "今天天气很好, let us go.",
                  "--pytorch-models", emotivoice_set / "models", "--save", case, "--min-snr-db", 60, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[: result.output.rindex("}") + 1])
    assert report["reference"]["backend"] == "pytorch" and len(report["runs"]) == 2
    for run in report["runs"]:
        assert run["durations_agreement"] == 1.0 and run["mel_max_rel"] < 1e-4 and run["style_max_rel"] < 1e-4
    result = _run("parity", "--bundle", bundle, "--backend", "onnxruntime", "--against", case, "--min-snr-db", 60)
    assert result.exit_code == 0 and "onnxruntime" in result.output, result.output


def _cuda_available() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available(), reason="onnxruntime-gpu with a CUDA device is not available here")
def test_cuda_matches_cpu(emotivoice_bundle):
    from edgevoice.emotivoice import parity

    cpu = edgevoice.load(emotivoice_bundle[0], backend="onnxruntime")
    cuda = edgevoice.load(emotivoice_bundle[0], backend="onnxruntime-cuda")
    case = parity.make_case(cpu, cpu.voice_for(prompt="Happy"), "The weather is lovely today.")
    result = parity.compare_runs(parity.run_case(cpu, case), parity.run_case(cuda, case))
    assert result["mel_max_rel"] < 1e-3 and result["audio_snr_db"] > 50


def test_cli_make_test_model_export_and_say(tmp_path):
    pytest.importorskip("torch", reason="exporting needs the export extra (torch)")
    root, bundle, wav = tmp_path / "EmotiVoice", tmp_path / "bundle", tmp_path / "hi.wav"
    made = _run("make-test-model", "--family", "emotivoice", "--size", "tiny", "--seed", 3, "--out", root)
    assert made.exit_code == 0, made.output
    _one_line_error(_run("make-test-model", "--family", "emotivoice", "--out", root), "not an empty folder")
    huge = _run("make-test-model", "--seed", 10 ** 20, "--out", tmp_path / "huge")  # an overflow traceback before
    assert huge.exit_code == 2 and "--seed" in huge.output and not (tmp_path / "huge").exists()
    (tmp_path / "empty").mkdir()  # an empty folder is taken, and filled whole: the files appear at the end
    assert _run("make-test-model", "--family", "emotivoice", "--out", tmp_path / "empty").exit_code == 0
    assert (tmp_path / "empty" / "config").is_dir() and not list((tmp_path / "empty").glob(".*"))
    _one_line_error(_run("export", "emotivoice", "--root", tmp_path / "missing", "--out", bundle), "not a directory")
    _one_line_error(_run("export", "emotivoice", "--root", root, "--lexicon", tmp_path / "none.txt", "--out", bundle),
                    "not found")
    assert not bundle.exists()
    # the command make-test-model printed, as printed
    printed = [line for line in made.output.splitlines() if line.startswith("export it with: edgevoice ")]
    command = printed[0].removeprefix("export it with: edgevoice ").split()
    result = _run(*[bundle if word == "BUNDLE" else word for word in command], "--format", "openvino")
    assert result.exit_code == 0 and "hifigan" in result.output, result.output
    result = _run("say", "--bundle", bundle, "--speaker", 12, "--prompt", "Sad", "--speed", 1.5,
                  "--text", "Random weights, but a whole pipeline. 随机的权重。", "--out", wav)
    assert result.exit_code == 0, result.output
    data, rate = soundfile.read(wav, dtype="int16")
    assert rate == 16000 and data.size > 0


def test_files_are_verified_when_first_read(emotivoice_bundle, tmp_path):
    import shutil

    from edgevoice.errors import BundleError

    copy = tmp_path / "copy"
    shutil.copytree(emotivoice_bundle[0], copy)
    for name in ("hifigan.onnx", "hifigan.bin"):
        with open(copy / name, "r+b") as handle:
            handle.seek(200)
            handle.write(b"\x00\x01\x02\x03")
    synth = edgevoice.load(copy)  # OpenVINO: the ONNX files are never read, so never hashed
    voice = synth.voice_for(prompt="Happy")
    _, ids = synth.phonemes("Hello there.")
    _, mel = synth.acoustic(ids, voice.speaker_row, voice.style, synth.style_embedding("Hello there."))
    with pytest.raises(BundleError, match="hifigan.bin does not match its sha256"):
        synth.vocode(mel)
    with pytest.raises(BundleError, match="hifigan.onnx does not match its sha256"):
        edgevoice.load(copy, backend="onnxruntime").vocode(mel)
    with pytest.raises(BundleError, match="does not match its sha256"):
        from edgevoice.bundle import Bundle

        Bundle.load(copy)  # eager by default ('edgevoice info' verifies everything)


def test_phonemize_reads_the_text_say_would_read(emotivoice_bundle):
    """Markup and terminal escapes are removed first (not read as letters and numbers); nothing left is an error."""
    bundle = emotivoice_bundle[0]
    clean = _run("phonemize", "--bundle", bundle, "--json", "hi there")
    marked = _run("phonemize", "--bundle", bundle, "--json", "<b>hi</b> \x1b[31mthere\x07")
    assert clean.exit_code == marked.exit_code == 0, marked.output
    assert json.loads(marked.output)["phonemes"] == json.loads(clean.output)["phonemes"]
    for empty in ("", "<b></b>", "\x1b[31m"):
        _one_line_error(_run("phonemize", "--bundle", bundle, empty), "TEXT is empty")
    _one_line_error(_run("phonemize", "--bundle", bundle, "😀"), "can read nothing in this text")
    _one_line_error(_run("phonemize", "😀"), "can read nothing in this text")  # GPT-SoVITS' front end, no bundle
    reference = emotivoice_bundle[0] / "speakers.txt"  # any existing path: refused before it is read
    _one_line_error(_run("parity", "--bundle", bundle, "--reference", reference, "--tokens", 3),
                    "built-in speakers, not cloned voices")


def test_an_interrupted_make_test_model_leaves_nothing(tmp_path, monkeypatch):
    """A set half written (SIGTERM 12 s into a full-size one left GPT, SoVITS and HuBERT but no BERT, and the folder
    was then refused as not empty) is never left behind: the files appear together at the end."""
    pytest.importorskip("torch", reason="make-test-model is an export command")
    import edgevoice_export.cli as export_cli

    def half_then_interrupted(family, size, folder, seed, version):
        (folder / "gpt.ckpt").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(export_cli, "_write_test_model", half_then_interrupted)
    result = CliRunner().invoke(main, ["make-test-model", "--out", str(tmp_path / "set")])
    assert result.exit_code != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    (tmp_path / "empty").mkdir()  # a folder the user made (or the current one) is kept, and left empty
    result = CliRunner().invoke(main, ["make-test-model", "--out", str(tmp_path / "empty")])
    assert result.exit_code != 0 and (tmp_path / "empty").is_dir() and not list((tmp_path / "empty").iterdir())
