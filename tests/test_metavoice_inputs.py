"""MetaVoice's runtime refuses bad input with one-line edgevoice errors: guidance, the stage-1 token budget, the
options' type and integers, text cleaning, reference rates and voice files (never a traceback, NaN or no audio)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile

import edgevoice
from edgevoice.errors import AudioError, BundleError, OptionsError, TextError, VoiceError
from edgevoice.metavoice import speaker
from edgevoice.metavoice.options import SynthesisOptions
from edgevoice.metavoice.sampling import guided_logits
from edgevoice.metavoice.voice import SpeakerVoice
from edgevoice.npzfile import atomic_savez


@pytest.fixture(scope="module")
def synth(metavoice_bundle):
    return edgevoice.load(metavoice_bundle[0], threads=1)


@pytest.fixture(scope="module")
def embedding(metavoice_set):
    return np.load(metavoice_set / "fixtures" / "e2e_tiny.npz")["spk_emb"].reshape(-1).astype(np.float32)


def _one_line(info) -> None:
    assert "\n" not in str(info.value)


# --- 1. guidance ---------------------------------------------------------------------------------

@pytest.mark.parametrize("guidance", [1e39, 1e308, 101.0])
def test_huge_guidance_is_refused(synth, embedding, guidance):
    with pytest.raises(OptionsError, match="guidance .* is over 100"):
        SynthesisOptions(guidance=guidance)
    with pytest.raises(OptionsError, match="over 100") as info:
        synth.synthesize("Hi there.", embedding, guidance=guidance, max_new_tokens=8, seed=0)
    _one_line(info)
    with pytest.raises(OptionsError, match="at most 100"):
        guided_logits(np.ones(4, np.float32), np.zeros(4, np.float32), (guidance, 1.0))


def test_largest_guidance_gives_finite_audio(synth, embedding):
    audio = synth.synthesize("Hi there.", embedding, guidance=100.0, greedy=True, max_new_tokens=24)
    assert audio.dtype == np.float32 and np.isfinite(audio).all()


def test_guided_logits_are_never_non_finite():
    big = np.full(4, 3e38, np.float32)
    for cond, uncond in [(big, -big), (np.array([np.nan, 0, 0, 0], np.float32), np.zeros(4, np.float32))]:
        with pytest.raises(OptionsError, match="not finite"):
            guided_logits(cond, uncond, (3.0, 1.0))


@pytest.mark.parametrize("guidance", ["ab", 3, (3,), (float("nan"), 1), (3.0, float("inf")), ("3", "1"),
                                      (True, 1)])
def test_first_stage_logits_refuses_bad_guidance(synth, embedding, guidance):
    with pytest.raises(OptionsError, match="guidance") as info:
        synth.first_stage_logits(synth.text_tokens("Hi"), embedding, guidance=guidance)
    _one_line(info)


# --- 2. the stage-1 token budget -----------------------------------------------------------------

def test_generate_first_stage_bounds_max_new(synth, embedding):
    ids = synth.text_tokens("Hi")
    block = int(synth.model["stage1"]["block_size"])
    options = synth.default_options.with_overrides(greedy=True)
    with pytest.raises(OptionsError, match=f"exceed stage 1's context of {block} positions"):
        synth.generate_first_stage(ids, embedding, options, None, block - ids.size + 1)
    for max_new in (0, -1, True, 2.0):  # before the fix, 0 and -1 decoded without end
        with pytest.raises(OptionsError, match="max_new must be a positive integer"):
            synth.generate_first_stage(ids, embedding, options, None, max_new)
    assert 1 <= synth.generate_first_stage(ids, embedding, options, None, np.int64(3)).size <= 3


# --- 3. the options' type ------------------------------------------------------------------------

def test_options_of_another_type_are_refused(synth, embedding):
    from edgevoice.emotivoice.options import SynthesisOptions as EmotiVoiceOptions

    for options, shown in [({}, "dict"), ({"guidance": 2.0}, "dict"),
                           (EmotiVoiceOptions(), "edgevoice.emotivoice.options.SynthesisOptions")]:
        with pytest.raises(OptionsError, match=f"must be MetaVoice's SynthesisOptions, not {shown}$"):
            synth.synthesize("Hi.", embedding, options=options)
        with pytest.raises(OptionsError, match="MetaVoice's SynthesisOptions"):
            list(synth.stream("Hi.", embedding, options=options))
        with pytest.raises(OptionsError, match="MetaVoice's SynthesisOptions"):
            synth.split_text("Hi.", options=options)


# --- 4. numpy integers ---------------------------------------------------------------------------

def test_numpy_integers_are_integer_options(synth, embedding):
    options = SynthesisOptions(max_new_tokens=np.int64(5), top_k=np.int32(3), stage2_top_k=np.uint16(20))
    assert (options.max_new_tokens, options.top_k, options.stage2_top_k) == (5, 3, 20)
    assert all(type(value) is int for value in (options.max_new_tokens, options.top_k, options.stage2_top_k))
    audio = synth.synthesize("Hi.", embedding, max_new_tokens=np.int64(6), top_k=np.int64(3), seed=0)
    assert audio.dtype == np.float32 and np.isfinite(audio).all()
    for bad in (True, np.bool_(True), 3.0, np.float64(3)):
        with pytest.raises(OptionsError, match="top_k must be"):
            SynthesisOptions(top_k=bad)


# --- 5. text -------------------------------------------------------------------------------------

def test_text_is_cleaned_of_markup_and_escapes(synth, embedding):
    assert synth.split_text("<b>Hi</b> AT&amp;T \x1b[31mred\x07") == ["Hi AT&T red"]
    chunk = next(synth.stream("<speak>Hi&#46;</speak>\x1b[0m", embedding, greedy=True, max_new_tokens=4))
    assert chunk.text == "Hi."


@pytest.mark.parametrize("text", ["<b></b>", "\x1b[31m\x07", "<!-- nothing -->  "])
def test_text_empty_after_cleaning_is_refused(synth, embedding, text):
    with pytest.raises(TextError, match="empty") as info:
        synth.synthesize(text, embedding, max_new_tokens=4)
    _one_line(info)
    with pytest.raises(TextError, match="empty"):
        synth.split_text(text)


@pytest.mark.parametrize("text", [None, 5, b"Hi"])
def test_text_that_is_not_a_string_is_refused(synth, embedding, text):
    with pytest.raises(TextError, match="must be a string"):
        synth.text_tokens(text)
    with pytest.raises(TextError, match="must be a string"):
        synth.stage2_text_tokens(text)
    with pytest.raises(TextError, match="must be a string"):
        synth.synthesize(text, embedding, max_new_tokens=4)


def test_punctuation_only_text_is_refused(synth, embedding):
    with pytest.raises(TextError, match="nothing to read") as info:
        synth.synthesize("...!?,;", embedding, max_new_tokens=4)
    _one_line(info)


@pytest.mark.parametrize("language", ["zh", "xx", 5, ""])
def test_a_language_metavoice_cannot_read_is_refused(synth, embedding, language):
    with pytest.raises(OptionsError, match="unsupported language .* for metavoice: expected one of en"):
        synth.synthesize("Hello.", embedding, language, max_new_tokens=4)
    assert synth.split_text("Hello.", "en") == synth.split_text("Hello.", None) == ["Hello."]


def test_no_audio_is_an_error_not_an_empty_array(synth, embedding):
    # one new token is no EnCodec frame: the CLI said so, the API returned a 0-sample array
    with pytest.raises(TextError, match="produced no audio") as info:
        synth.synthesize("Hello.", embedding, max_new_tokens=1, seed=1)
    _one_line(info)


# --- 6. reference sample rates -------------------------------------------------------------------

@pytest.fixture(scope="module")
def reference(metavoice_set):
    audio, rate = soundfile.read(str(metavoice_set / "audio" / "ref.wav"), dtype="float32")
    return audio, rate


@pytest.mark.parametrize("rate, message", [(float("nan"), "positive integer"), (float("inf"), "positive integer"),
                                           (22050.5, "positive integer"), ("22050", "positive integer"),
                                           (True, "positive integer"), (None, "positive integer"),
                                           (1, "outside 4000–768000 Hz"), (10 ** 9, "outside 4000–768000 Hz")])
def test_absurd_reference_rates_are_refused(synth, reference, rate, message):
    audio, _ = reference
    with pytest.raises(AudioError, match=message) as info:
        synth.speaker_embedding(audio, rate)
    _one_line(info)
    with pytest.raises(AudioError, match=message):
        speaker.resample_to_16k(audio[:1000], rate)


def test_a_whole_float_rate_is_a_rate(reference):
    audio, rate = reference
    np.testing.assert_array_equal(speaker.resample_to_16k(audio[:rate], float(rate)),
                                  speaker.resample_to_16k(audio[:rate], rate))


# --- 7. voice files ------------------------------------------------------------------------------

def _voice_file(tmp_path, embedding=None, **header):
    unit = np.ones(256, np.float32) / 16
    header = {"format": "edgevoice-voice", "format_version": 1, "family": "metavoice", "speaker_encoder_sha256": "",
              **header}
    header = {k: v for k, v in header.items() if v is not None}
    return atomic_savez(tmp_path / "v.npz", header, speaker_embedding=unit if embedding is None else embedding)


@pytest.mark.parametrize("header, message", [({"format_version": "1"}, "format version must be an integer, not '1'"),
                                             ({"format_version": True}, "must be an integer"),
                                             ({"format_version": 1.0}, "must be an integer"),
                                             ({"family": None}, "header names no model family"),
                                             ({"family": ["metavoice"]}, "header names no model family")])
def test_bad_voice_headers_are_named(tmp_path, header, message):
    with pytest.raises(VoiceError, match=message) as info:
        SpeakerVoice.load(_voice_file(tmp_path, **header))
    _one_line(info)


@pytest.mark.parametrize("scale", [0.0, 1e30, 0.5, 1.5])
def test_voice_embeddings_must_be_unit_length(tmp_path, scale):
    with pytest.raises(VoiceError, match="is a unit vector"):
        SpeakerVoice.load(_voice_file(tmp_path, np.ones(256, np.float32) / 16 * np.float32(scale)))


@pytest.mark.parametrize("seconds", [float("nan"), -1.0, "30", True])
def test_a_voice_header_duration_must_be_one(tmp_path, seconds):
    with pytest.raises(VoiceError, match="reference_seconds .* is not a duration"):
        SpeakerVoice.load(_voice_file(tmp_path, reference_seconds=seconds))


def test_a_unit_voice_embedding_loads(tmp_path, embedding):
    assert np.array_equal(SpeakerVoice.load(_voice_file(tmp_path, embedding)).embedding, embedding)
    near = np.ones(256, np.float32) / 16 * np.float32(1.005)  # within the tolerance (float16 round trips and such)
    assert SpeakerVoice.load(_voice_file(tmp_path, near)).embedding.shape == (256,)


# ---------------------------------------------------------------- model facts and text files in the bundle


def _tampered(source, folder, edit=None, files: dict | None = None):
    """A copy of the bundle with its manifest's model facts edited and/or files replaced, rehashed the supported
    way (`write_manifest`), so that only the content is wrong."""
    import shutil

    from edgevoice.bundle import Bundle, write_manifest

    shutil.copytree(source, folder)
    manifest = Bundle.load(folder, verify=False).manifest
    for rel, content in (files or {}).items():
        (folder / rel).write_bytes(content)
    if edit:
        edit(manifest.model)
    write_manifest(folder, manifest)
    return folder


def _set(section, key, value):
    def edit(model):
        if value is KeyError:
            del model[section][key]
        else:
            model[section][key] = value
    return edit


@pytest.mark.parametrize("edit, match", [
    (_set("stage1", "n_head", 0), "stage1.n_head must be a positive integer"),
    (_set("stage1", "n_head", 3), "not a multiple of n_head"),
    (_set("stage1", "n_head", 4), "heads of 16 are not its step graph's cache"),
    (_set("stage1", "n_layer", 3), "not its step graph's 2 cache layers"),
    (_set("encodec", "hop", 0), "encodec.hop must be a positive integer"),
    (_set("encodec", "bins", 5000), "not twice encodec.bins"),
    (_set("encodec", "sample_rate", 8000), "is not EnCodec's 8000"),
    (_set("encodec", "n_q", 4), "is not the decoder graph's 8"),
    (_set("stage2", "block_size", KeyError), "stage2.block_size must be a positive integer, found None"),
    (_set("stage2", "vocab_sizes", [5]), "stage2.vocab_sizes must be 2 positive integers"),
    # past the graphs' position tables: onnxruntime failed the run, OpenVINO returned zeros (wrong audio, no error)
    (_set("stage1", "block_size", 10 ** 9), "stage1.block_size 1000000000 is more than the 256 positions"),
    (_set("stage2", "block_size", 257), "stage2.block_size 257 is more than the 256 positions of stage2's table"),
    (lambda model: model.pop("stage2"), "stage2.block_size must be a positive integer"),
])
def test_model_facts_are_checked_when_loading(metavoice_bundle, tmp_path, edit, match):
    from edgevoice.errors import BundleError

    folder = _tampered(metavoice_bundle[0], tmp_path / "b", edit)
    with pytest.raises(BundleError, match=match):
        edgevoice.load(folder, threads=1)


@pytest.mark.parametrize("section, block", [("stage1", 257), ("stage2", 10 ** 6)])
def test_block_size_is_checked_against_the_ir_without_onnx_files(metavoice_bundle, tmp_path, section, block):
    """A bundle exported with `--format openvino` alone: the position tables are read from the IRs' XML."""
    from edgevoice.bundle import Bundle, write_manifest
    from edgevoice.errors import BundleError

    folder = tmp_path / "b"
    shutil.copytree(metavoice_bundle[0], folder)
    manifest = Bundle.load(folder, verify=False).manifest
    for name in [n for n in manifest.graphs if "openvino" not in manifest.graphs[n].files]:
        del manifest.graphs[name]  # the host-cache step exists only as ONNX
    for entry in manifest.graphs.values():
        if "onnx" in entry.files:
            (folder / entry.files.pop("onnx")).unlink()
    write_manifest(folder, manifest)
    assert edgevoice.load(folder, threads=1).model[section]["block_size"] == 256  # as exported: loads
    manifest.model[section]["block_size"] = block
    write_manifest(folder, manifest)
    graph = "stage1" if section == "stage1" else "stage2"
    with pytest.raises(BundleError, match=f"{section}.block_size {block} is more than the 256 positions of {graph}'s"):
        edgevoice.load(folder, threads=1)


def test_a_malformed_graph_file_is_a_bundle_error_at_load(metavoice_bundle, tmp_path):
    # the position tables are read from the ONNX files' headers at load: a damaged file is one line, not a traceback
    # (a memory map held by the parser's frames could not be closed)
    garbage = bytes([0x3A, 0x03, 0x2A, 0x01, 0x0F])  # a graph holding an initializer with wire type 7
    bundle = _tampered(metavoice_bundle[0], tmp_path / "b", files={"stage2.onnx": garbage})
    with pytest.raises(BundleError, match="stage2.onnx is not a well-formed ONNX graph") as info:
        edgevoice.load(bundle)
    _one_line(info)


def test_a_tokenizer_file_that_is_not_json_is_a_bundle_error(metavoice_bundle, tmp_path):
    from edgevoice.errors import BundleError

    folder = _tampered(metavoice_bundle[0], tmp_path / "b", files={"tokenizer.json": b'{"model": '})
    with pytest.raises(BundleError, match="tokenizer.json is not the tokenizer's JSON"):
        edgevoice.load(folder, threads=1).text_tokens("Hi")
