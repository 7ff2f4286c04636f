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
