"""Voice files are the family's own: one made by another family is refused by name, before its arrays are read."""

from __future__ import annotations

import numpy as np
import pytest

from edgevoice.errors import VoiceError
from edgevoice.gpt_sovits.voice import Voice
from edgevoice.metavoice.voice import SpeakerVoice
from edgevoice.npzfile import atomic_savez


def test_a_metavoice_voice_given_to_gpt_sovits_is_named(tmp_path):
    path = SpeakerVoice(np.ones(4, np.float32) / 2, "enc", "clip", 31.0).save(tmp_path / "mv.npz")
    with pytest.raises(VoiceError, match="made for a metavoice model, not gpt-sovits"):
        Voice.load(path)


def test_a_gpt_sovits_voice_given_to_metavoice_is_named(tmp_path):
    path = atomic_savez(tmp_path / "gs.npz", {"format": "edgevoice-voice", "family": "gpt-sovits"},
                        prompt_tokens=np.zeros(3, np.int64))
    with pytest.raises(VoiceError, match="made for a gpt-sovits model, not metavoice"):
        SpeakerVoice.load(path)


def test_an_unknown_family_is_still_just_not_a_voice_file(tmp_path):
    path = atomic_savez(tmp_path / "x.npz", {"format": "something", "family": "other"}, a=np.zeros(1))
    with pytest.raises(VoiceError, match="not an edgevoice voice file"):
        SpeakerVoice.load(path)


@pytest.mark.parametrize("family", [["gpt-sovits"], {"name": "metavoice"}, 7, None])
def test_a_family_that_is_not_a_name_is_refused_in_one_line(tmp_path, family):
    header = {"format": "edgevoice-voice", "format_version": 1}
    if family is not None:
        header["family"] = family
    path = atomic_savez(tmp_path / "odd.npz", header, speaker_embedding=np.ones(4, np.float32) / 2)
    for load in (Voice.load, SpeakerVoice.load):
        with pytest.raises(VoiceError, match="not an edgevoice voice file"):
            load(path)


def _voice(**arrays) -> Voice:
    parts = {"prompt_tokens": np.arange(3), "prompt_phone_ids": np.arange(2), "prompt_bert": np.zeros((1024, 2)),
             "ge": np.ones((1, 8, 1))}
    parts.update(arrays)
    return Voice(**parts, text="t", language="en", norm_text="t", model_fingerprint="f", family="gpt-sovits",
                 upstream_version="v2")


@pytest.mark.parametrize("arrays, message", [
    ({"ge": np.ones((1, 8, 1)) * 1e30}, "ge has values up to 1e"),  # a probe's: every sample came out NaN
    ({"prompt_bert": np.full((1024, 2), -5e4)}, "prompt_bert has values up to 5e"),
    ({"prompt_tokens": np.zeros(0, np.int64)}, "0 prompt tokens but 2 transcript phones"),
    ({"prompt_phone_ids": np.zeros(0, np.int64), "prompt_bert": np.zeros((1024, 0))}, "3 prompt tokens but 0")])
def test_voice_arrays_no_model_makes_are_refused(arrays, message):
    _voice()  # the base voice is fine, and so is a reference-free one
    _voice(prompt_tokens=np.zeros(0, np.int64), prompt_phone_ids=np.zeros(0, np.int64),
           prompt_bert=np.zeros((1024, 0)))
    with pytest.raises(VoiceError, match=message):
        _voice(**arrays)


def test_audio_that_is_not_finite_never_leaves_a_synthesizer():
    """Every family's audio passes through AudioChunk: NaN would be written as silence without a word."""
    from edgevoice.errors import SynthesisError
    from edgevoice.options import AudioChunk

    AudioChunk("fine", np.zeros(4, np.float32), 16000)
    with pytest.raises(SynthesisError, match="2 of 4 samples as NaN or infinity for 'Hello'"):
        AudioChunk("Hello", np.array([0, np.nan, np.inf, 0], np.float32), 16000)


def test_a_metavoice_voice_must_name_its_speaker_encoder(tmp_path):
    """A probe deleted the header's speaker_encoder_sha256 and the voice went through to any bundle."""
    from edgevoice.npzfile import read_npz

    path = SpeakerVoice(np.ones(4, np.float32) / 2, "enc", "clip", 31.0).save(tmp_path / "mv.npz")
    header, arrays = read_npz(path, "voice file", VoiceError)
    del header["speaker_encoder_sha256"]
    atomic_savez(tmp_path / "bare.npz", header, **arrays)
    with pytest.raises(VoiceError, match="names no speaker encoder"):
        SpeakerVoice.load(tmp_path / "bare.npz")
    assert SpeakerVoice.load(path).speaker_encoder_sha256 == "enc"
