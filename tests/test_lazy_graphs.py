"""Graphs load when first needed and can be given back: English synthesis never loads BERT or the reference graphs,
and `release_reference_graphs` unloads what only voice creation runs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import edgevoice
from edgevoice.errors import BundleError

TEXT = "Hello there, how are you today?"


def _options(seed: int):
    return edgevoice.SynthesisOptions(seed=seed, max_tokens=30)  # 1.2 s: a random-enough GPT may never stop
SYNTHESIS_GRAPHS = {"gpt_prefill", "gpt_decode", "sovits_latent", "sovits_vocoder"}


def _voice(synth, gpt_sovits_set):
    audio = gpt_sovits_set / "audio"
    return synth.create_voice(audio / "ref_en.wav", (audio / "ref_en.txt").read_text().strip(), "en")


def test_english_from_a_voice_file_loads_only_the_gpt_and_sovits(fixture_bundle, gpt_sovits_set, tmp_path):
    bundle = fixture_bundle[0]
    assert "bert" in edgevoice.load(bundle, threads=1).bundle.manifest.graphs  # the tiny bundle has a BERT
    _voice(edgevoice.load(bundle, threads=1), gpt_sovits_set).save(tmp_path / "me.npz")
    synth = edgevoice.load(bundle, threads=1)
    voice = synth.voice_for(tmp_path / "me.npz")
    assert synth.synthesize(TEXT, voice, "en", _options(1)).size > 0
    assert set(synth._sessions) == SYNTHESIS_GRAPHS
    if sys.platform.startswith("linux"):  # nor were BERT's weights ever opened
        assert str(Path(bundle).resolve() / "bert") not in Path("/proc/self/maps").read_text()
    assert set(synth.bundle.graph("bert").files.values()) <= synth.bundle.unverified  # never read, never hashed


def test_reference_graphs_are_released_and_come_back(fixture_bundle, gpt_sovits_set):
    synth = edgevoice.load(fixture_bundle[0], threads=1)
    voice = _voice(synth, gpt_sovits_set)
    assert {"hubert_codes", "ref_encoder"} <= set(synth._sessions)
    assert sorted(synth.release_reference_graphs()) == ["hubert_codes", "ref_encoder"]
    assert not {"hubert_codes", "ref_encoder"} & set(synth._sessions)
    expected = synth.synthesize(TEXT, voice, "en", _options(3))
    assert set(synth._sessions) == SYNTHESIS_GRAPHS
    again = _voice(synth, gpt_sovits_set)  # compiled again on demand, same voice
    assert (again.prompt_tokens == voice.prompt_tokens).all() and abs(again.ge - voice.ge).max() < 1e-5
    assert synth.release_graphs() and not synth._sessions  # everything; synthesis reloads what it needs
    audio = synth.synthesize(TEXT, voice, "en", _options(3))
    assert audio.shape == expected.shape and abs(audio - expected).max() < 1e-5



def test_chinese_on_a_bundle_without_bert_is_refused_not_spoken_with_zeros(fixture_bundle):
    synth = edgevoice.load(fixture_bundle[0], threads=1)
    del synth.bundle.manifest.graphs["bert"]  # as `export` writes it without --bert
    assert not synth.phonemize("Hello there.", "en")[1].any()  # English: zero features, as upstream
    with pytest.raises(BundleError, match="no BERT graph, which Chinese text needs; export it with --bert"):
        synth.phonemize("我们一起去公园散步。", "zh")


def test_a_long_running_process_leaves_the_reference_graphs_to_onnxruntime(fixture_bundle, gpt_sovits_set):
    """OpenVINO keeps kernels for every new clip length for good; onnxruntime's memory stays flat
    (benchmarks/long_running_memory.py), so a server runs the graphs that see every length there: the reference
    graphs, the prefill (each fragment's own phone count) and, in an FP32 bundle, the decode step (every starting
    length: OpenVINO's stateful graph kept ~2.8 MiB for each)."""
    from edgevoice.backends import OnnxRuntimeSession, OpenVINOSession

    default = edgevoice.load(fixture_bundle[0], threads=1)
    server = edgevoice.load(fixture_bundle[0], threads=1, long_running=True)
    voices = [_voice(synth, gpt_sovits_set) for synth in (default, server)]
    assert isinstance(default._sessions["hubert_codes"], OpenVINOSession)
    assert isinstance(server._sessions["hubert_codes"], OnnxRuntimeSession)
    assert isinstance(server._session("gpt_prefill"), OnnxRuntimeSession)
    assert isinstance(server._session("sovits_latent"), OpenVINOSession)  # the rest stays on OpenVINO (padded)
    np.testing.assert_array_equal(voices[0].prompt_tokens, voices[1].prompt_tokens)
    assert default._stateful_decode and not server._stateful_decode
    options = edgevoice.SynthesisOptions(seed=3, min_tokens=12, max_tokens=12)
    audio = [synth.synthesize("Hello there.", voice, "en", options) for synth, voice in zip((default, server), voices)]
    assert isinstance(server._sessions["gpt_step"], OnnxRuntimeSession) and "gpt_decode" not in server._sessions
    assert audio[0].shape == audio[1].shape and np.isfinite(audio[1]).all()
