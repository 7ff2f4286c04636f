"""EmotiVoice refuses bad input with one-line edgevoice errors: the stage entry points' arrays and options, speaker
names that only look like rows, and bundles whose text files or model facts are wrong although their hashes match."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import edgevoice
from edgevoice.bundle import Bundle, write_manifest
from edgevoice.options import SPEED_RANGE
from edgevoice.errors import BundleError, OptionsError, TextError, VoiceError

# the stage checks must refuse before numpy warns (divide by zero, invalid cast, discarded imaginary part)
pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture(scope="module")
def synth(emotivoice_bundle):
    return edgevoice.load(emotivoice_bundle[0], threads=1)


@pytest.fixture(scope="module")
def stage(synth):
    """(token ids, style embedding, durations at speed 1, mel) of one short sentence."""
    _, ids = synth.phonemes("Hello there, how are you?")
    style = synth.voice_for(prompt="happy").style
    durations, mel = synth.acoustic(ids, 0, style, style)
    return ids, style, durations, mel


def _tampered(source, folder, files: dict | None = None, edit=None):
    """A copy of the bundle with files replaced and/or the manifest edited, rehashed the supported way
    (`write_manifest`), so that only the content is wrong."""
    shutil.copytree(source, folder)
    manifest = Bundle.load(folder, verify=False).manifest
    for key, content in (files or {}).items():
        (folder / manifest.model[key]).write_bytes(content)
    if edit:
        edit(manifest)
    write_manifest(folder, manifest)
    return folder


# ---------------------------------------------------------------- 1. stage entry points

@pytest.mark.parametrize("speed, match", [(0, "outside"), (-1, "outside"), (float("nan"), "finite"),
                                          (1e-30, "outside"), (1e-3, "outside"), (4.5, "outside"),
                                          ("2", "must be a number"), (True, "must be a number")])
def test_acoustic_speed_has_the_options_limits(synth, stage, speed, match):
    ids, style, _, _ = stage
    with pytest.raises(OptionsError, match=f"speed.*{match}"):
        synth.acoustic(ids, 0, style, style, speed=speed)
    for limit in SPEED_RANGE:  # the options' own limits are accepted
        durations, mel = synth.acoustic(ids, 0, style, style, speed=limit)
        assert mel.shape[0] == (int(durations.sum()) or durations.size)  # upstream: all zero → one frame a phone


@pytest.mark.parametrize("make, match", [
    (lambda n: [2 ** 62, 2 ** 62] + [0] * (n - 2), "at most"),  # the int64 sum wraps round to 0 frames
    (lambda n: [10 ** 6] + [0] * (n - 1), "at most"),  # minutes of decoding
    (lambda n: [-1] * n, "non-negative"),
    (lambda n: [float("nan")] * n, "not float64"),
    (lambda n: [1.5] * n, "not float64"),
    (lambda n: ["ab"] * n, "integers"),
    (lambda n: [[1], [1, 2]], "not an array"),
    (lambda n: [1] * (n + 1), "integers"),
], ids=["overflow", "million", "negative", "nan", "fraction", "text", "ragged", "count"])
def test_forced_durations_are_checked(synth, stage, make, match):
    ids, style, durations, _ = stage
    with pytest.raises(OptionsError, match=f"durations.*{match}"):
        synth.acoustic_with_durations(ids, 0, style, style, make(durations.size))


def test_forced_durations_up_to_the_slowest_speed_are_taken(synth, stage):
    ids, style, durations, mel = stage
    np.testing.assert_array_equal(synth.acoustic_with_durations(ids, 0, style, style, durations), mel)
    slowest, _ = synth.acoustic(ids, 0, style, style, speed=SPEED_RANGE[0])
    assert synth.acoustic_with_durations(ids, 0, style, style, slowest).shape[0] == slowest.sum()


@pytest.mark.parametrize("mel, match", [
    ("abc", "real"), (np.zeros((5, 80), complex), "real"), ([[0.0] * 80, [0.0]], "not an array"),
    (np.full((5, 80), 1e300), "NaN or infinite"), (np.full((5, 80), 3e38, np.float32), "vocoder gives NaN"),
])
def test_vocode_checks_the_mel(synth, mel, match):
    with pytest.raises(OptionsError, match=match):
        synth.vocode(mel)


@pytest.mark.parametrize("chunk_frames", [0, -1, "8", True, 2.0])
def test_vocode_chunks_checks_its_arguments_at_once(synth, stage, chunk_frames):
    mel = stage[3]
    with pytest.raises(OptionsError, match="chunk_frames must be a positive whole number"):
        synth.vocode_chunks(mel, chunk_frames)  # refused when called, not at the first chunk
    with pytest.raises(OptionsError, match="mel must be real"):
        synth.vocode_chunks("abc", 8)
    assert np.concatenate(list(synth.vocode_chunks(mel.T[None], 8))).size == synth.vocode(mel).size


@pytest.mark.parametrize("which", ["style", "content"])
@pytest.mark.parametrize("vector, match", [
    ("happy", "must be 40 real numbers"), (np.zeros(40, complex), "must be 40 real numbers"),
    (np.zeros((2, 20)), "must be 40 real numbers"), (np.zeros(40, np.int64), "must be 40 real numbers"),
    (np.full(40, np.nan), "contains NaN or infinite"), (np.full(40, 1e38), "has values outside −1…1"),
])
def test_embeddings_are_checked(synth, stage, which, vector, match):
    ids, style, _, _ = stage
    if synth.model["bert_hidden"] != 40:
        pytest.skip("the messages name the tiny model's 40 values")
    arguments = {"style": style, "content": style, which: vector}
    with pytest.raises(OptionsError, match=f"the {which} embedding {match}"):
        synth.acoustic(ids, 0, arguments["style"], arguments["content"])
    synth.acoustic(ids, 0, style[None], style[None])  # [1, hidden] is taken too


def test_an_embedding_rounded_just_past_one_is_taken(synth, stage):
    """onnxruntime's tanh gave 1.0000001 in SimBERT's pooled output for one sentence in 30 (full size): a served
    EmotiVoice refused that sentence until the check allowed the engine's rounding."""
    ids, style, _, _ = stage
    over = np.array(style, np.float32).reshape(-1)
    over[0] = np.nextafter(np.float32(1), np.float32(2))
    synth.acoustic(ids, 0, over, over)
    over[0] = 1.001
    with pytest.raises(OptionsError, match="outside −1…1"):
        synth.acoustic(ids, 0, style, over)


# ---------------------------------------------------------------- 2. speaker rows

@pytest.mark.parametrize("key", ["1_0", "١", "+5", "-0", " +1 ", "0x1", "5.0"])
def test_speaker_rows_are_plain_ascii_digits(synth, key):
    assert key.strip() not in synth.speakers
    with pytest.raises(VoiceError, match="no speaker named"):
        synth.speaker_row(key)


def test_speaker_rows_by_number(synth):
    unlisted = next(i for i in range(len(synth.speakers)) if str(i) not in synth.speakers)
    assert synth.speaker_row(f" {unlisted} ") == synth.speaker_row(unlisted) == unlisted
    for key in ("9" * 5000, 10 ** 5000, -1):
        with pytest.raises(VoiceError, match="outside"):
            synth.speaker_row(key)


# ---------------------------------------------------------------- 3. bundle text files

@pytest.mark.parametrize("key, content, use, match", [
    ("speakers_file", b"", None, "lists no speakers"),
    ("speakers_file", b"\n \n", None, "lists no speakers"),
    ("speakers_file", b"\xff\xfe1\n", None, "is not UTF-8 text"),
    ("lexicon_file", b"HELLO\tHH AH0 L OW1\n\xff\n", lambda s: s.phonemes("hello"), "is not UTF-8 text"),
    ("bert_vocab_file", b"", lambda s: s.style_embedding("happy"), "has no \\[UNK\\] token"),
    ("bert_vocab_file", b"[UNK]\n\xe9\n", lambda s: s.voice_for(prompt="happy"), "is not UTF-8 text"),
])
def test_bad_text_files_are_bundle_errors(emotivoice_bundle, tmp_path, key, content, use, match):
    folder = _tampered(emotivoice_bundle[0], tmp_path / "bundle", files={key: content})
    rel = Bundle.load(folder).manifest.model[key]
    with pytest.raises(BundleError, match=f"{rel}.*{match}"):
        use(edgevoice.load(folder, threads=1)) if use else edgevoice.load(folder, threads=1)


def test_text_files_may_not_outgrow_the_model_tables(emotivoice_bundle, tmp_path):
    source = emotivoice_bundle[0]
    model = Bundle.load(source).manifest.model
    speakers = "\n".join(str(100_000 + i) for i in range(model["n_speaker"] + 1)).encode()
    with pytest.raises(BundleError, match="speakers; the model has"):
        edgevoice.load(_tampered(source, tmp_path / "speakers", files={"speakers_file": speakers}), threads=1)
    vocab = (source / model["bert_vocab_file"]).read_bytes() + b"extra1\nextra2\n"
    synth = edgevoice.load(_tampered(source, tmp_path / "vocab", files={"bert_vocab_file": vocab}), threads=1)
    with pytest.raises(BundleError, match="tokens; the style encoder has"):
        synth.style_embedding("happy")
    vocab = (source / model["bert_vocab_file"]).read_bytes() + b"\n\n"  # empty last lines name no token
    edgevoice.load(_tampered(source, tmp_path / "blank", files={"bert_vocab_file": vocab}), threads=1
                   ).style_embedding("happy")


# ---------------------------------------------------------------- 4. options of another family

def test_options_of_another_family_are_named(synth):
    from edgevoice.gpt_sovits import SynthesisOptions as GptSovitsOptions

    voice = synth.voice_for()
    with pytest.raises(OptionsError, match="EmotiVoice's SynthesisOptions .*not edgevoice.gpt_sovits"):
        synth.synthesize("Hello.", voice, options=GptSovitsOptions())
    for options in ({"speed": 2}, {}):
        with pytest.raises(OptionsError, match="EmotiVoice's SynthesisOptions .*not dict"):
            synth.split_text("Hello.", options=options)


# ---------------------------------------------------------------- 5. model facts

def _set(key, value):
    return lambda manifest: manifest.model.__setitem__(key, value)


def _without(key):
    return lambda manifest: manifest.model.pop(key)


def _top_sample_rate(manifest):
    manifest.sample_rate = 1  # would write a 5,120 s wav of one second of audio


@pytest.mark.parametrize("edit, match", [
    (_without("bert_max_tokens"), "has no 'bert_max_tokens'"),
    (_set("bert_max_tokens", "x"), "bert_max_tokens must be a positive integer, found 'x'"),
    (_set("hop", 0), "hop must be a positive integer"),
    (_set("hop", 255), "hop 255 is not the vocoder's upsampling"),
    (_set("n_mels", True), "n_mels must be a positive integer"),
    (_set("bert_hidden", 40.0), "bert_hidden must be a positive integer"),
    (_set("sample_rate", 0), "sample_rate must be a positive integer"),
    (_top_sample_rate, "sample_rate 1 is not the vocoder's 16000"),
    (_set("n_vocab", 3), "symbols; the model has 3"),
    (_without("speakers_file"), "has no 'speakers_file'"),
    (_set("vocoder_context_frames", 0), "vocoder_context_frames must be a frame count from 1 to 256, found 0"),
    (_set("vocoder_context_frames", 10 ** 6), "vocoder_context_frames must be a frame count"),  # windows of 4M
    (_set("vocoder_context_frames", 15.0), "vocoder_context_frames must be a frame count"),
])
def test_model_facts_are_checked_when_loading(emotivoice_bundle, tmp_path, edit, match):
    folder = _tampered(emotivoice_bundle[0], tmp_path / "bundle", edit=edit)
    with pytest.raises(BundleError, match=f"manifest model.*{match}"):
        edgevoice.load(folder, threads=1)


def _drop_input(graph, name):
    def edit(manifest):
        entry = manifest.graphs[graph]
        entry.inputs[:] = [t for t in entry.inputs if t.name != name]
    return edit


def _add_input(graph, name):
    def edit(manifest):
        entry = manifest.graphs[graph]
        entry.inputs.append(type(entry.inputs[0])(name, "int64", [1]))
    return edit


@pytest.mark.parametrize("edit, match", [
    (_drop_input("am_back", "valid_frames"), "must both take their real counts"),  # the other half would go unfed
    (_drop_input("am_front", "valid_phones"), "must both take their real counts"),
    (_add_input("am_back", "pitch_shift"), "inputs this edgevoice does not feed \\(pitch_shift\\)"),
])
def test_acoustic_graphs_with_inputs_the_host_would_not_feed_are_refused(emotivoice_bundle, tmp_path, edit, match):
    """An input left unfed fails on onnxruntime and reads stale memory on OpenVINO: refused when loading instead."""
    folder = _tampered(emotivoice_bundle[0], tmp_path / "bundle", edit=edit)
    for backend in ("openvino", "onnxruntime"):
        with pytest.raises(BundleError, match=match) as caught:
            edgevoice.load(folder, backend=backend, threads=1)
        assert "\n" not in str(caught.value)


def test_a_server_leaves_an_older_bundles_acoustic_model_to_onnxruntime(emotivoice_bundle, tmp_path):
    """A bundle whose acoustic graphs take no counts (exported before them) cannot be padded, so `serve` runs them on
    onnxruntime as before; a bundle with them keeps them on OpenVINO, padded."""
    from edgevoice.emotivoice.synthesizer import Synthesizer

    def drop_counts(manifest):
        for graph in ("am_front", "am_back"):
            entry = manifest.graphs[graph]
            entry.inputs[:] = [t for t in entry.inputs if not t.name.startswith("valid_")]

    older = Bundle.load(_tampered(emotivoice_bundle[0], tmp_path / "older", edit=drop_counts))
    assert Synthesizer.own_length_graphs(older) == ("style_bert", "am_front", "am_back")
    assert Synthesizer.own_length_graphs(Bundle.load(emotivoice_bundle[0])) == ("style_bert",)


def test_a_sentence_past_what_the_acoustic_model_takes_is_a_one_line_error(synth, stage, monkeypatch):
    """Its attention grows with the square of the phones and frames: an error, not a process the system kills."""
    import edgevoice.emotivoice.synthesizer as module

    ids, style, _, _ = stage
    with pytest.raises(TextError, match="2049 phones in one sentence; the acoustic model takes at most 2048"):
        synth.acoustic(np.resize(ids, 2049), 0, style, style)
    durations, _ = synth.acoustic(ids, 0, style, style)
    monkeypatch.setattr(module, "MAX_FRAMES", int(durations.sum()) - 1)
    with pytest.raises(TextError, match="acoustic model takes at most .* at once: split the text"):
        synth.acoustic(ids, 0, style, style)


def test_a_bundle_from_before_the_vocoders_context_was_recorded_keeps_upstreams(emotivoice_bundle, tmp_path):
    folder = _tampered(emotivoice_bundle[0], tmp_path / "bundle", edit=_without("vocoder_context_frames"))
    synth = edgevoice.load(folder, threads=1)
    assert (synth.vocoder_context, synth.vocoder_windows) == (16, (64, 128))
