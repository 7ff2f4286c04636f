"""The bad-input corpus (tests/bad_inputs.py) as tests: every case is refused with exit status 1 and one line
`Error: ...` on stderr, no traceback, no output file (not even part of one) and nothing written anywhere else; every
misuse of the Python API raises an `EdgevoiceError` with a one-line message. Then what is accepted, as documented:
markup and escapes removed, text from a file or standard input, integer PCM arrays scaled."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

import edgevoice
from bad_inputs import API_CASE_NAMES, CASES, Env, _api_cases, run_case
from edgevoice.cli import main
from edgevoice.textinput import UnreadableTextWarning


@pytest.fixture(scope="module")
def corpus(fixture_bundle, gpt_sovits_set, tmp_path_factory):
    """The GPT-SoVITS bundle, a synthesizer on it and a voice made with it (once for the module)."""
    bundle = fixture_bundle[0]
    audio = gpt_sovits_set / "audio"
    synth = edgevoice.load(bundle, backend="onnxruntime", threads=1)
    voice = synth.create_voice(audio / "ref_en.wav", (audio / "ref_en.txt").read_text().strip(), "en")
    path = voice.save(tmp_path_factory.mktemp("voice") / "me.npz")
    return bundle, synth, voice, path, audio / "ref_en.wav"


@pytest.mark.parametrize("case", CASES, ids=[f"{c.group}: {c.name}" for c in CASES])
def test_bad_input_is_refused_cleanly(case, corpus, gpt_sovits_set, request, tmp_path):
    bundle, _, _, voice, reference = corpus
    emotivoice = request.getfixturevalue("emotivoice_bundle")[0] if "emotivoice" in case.needs else None
    if "torch" in case.needs:
        pytest.importorskip("torch", reason="export needs the export extra")
    work = tmp_path / "case"
    work.mkdir()
    env = Env(work, bundle, voice, reference, emotivoice, gpt_sovits_set / "models")
    outcome = run_case(case, env)
    assert not outcome.traceback, outcome
    assert outcome.one_line_error, outcome
    assert case.expect in outcome.stderr_lines[0], outcome.stderr_lines
    assert "\n" not in outcome.stderr_lines[0] and len(outcome.stderr_lines[0]) < 600
    assert outcome.partial == [], "partial output left behind"
    assert outcome.written == [], "files written, changed or removed"


@pytest.mark.parametrize("name", API_CASE_NAMES)
def test_api_misuse_raises_one_line_edgevoice_errors(name, corpus):
    _, synth, voice, _, _ = corpus
    call = dict(_api_cases())[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreadableTextWarning)
        with pytest.raises(edgevoice.EdgevoiceError) as error:
            call(synth, voice)
    assert "\n" not in str(error.value) and str(error.value)


# ------------------------------------------------------------------------------------ accepted, as documented


def test_markup_and_escapes_are_removed_before_speaking(corpus):
    _, synth, voice, _, _ = corpus
    options = edgevoice.SynthesisOptions(seed=3, max_tokens=16)
    plain = synth.synthesize("Hello there, friend & you.", voice, "en", options)
    marked = synth.synthesize("Hello <b>there</b>, <emphasis level=\"strong\">friend</emphasis> &amp; you.", voice,
                              "en", options)
    escaped = synth.synthesize("Hello \x1b[1mthere\x1b[0m, friend\u200b &#38; you.", voice, "en", options)
    np.testing.assert_array_equal(marked, plain)
    np.testing.assert_array_equal(escaped, plain)


def test_unreadable_characters_warn_once_and_are_left_out(corpus, tmp_path):
    bundle, synth, voice, voice_path, _ = corpus
    options = edgevoice.SynthesisOptions(seed=5, max_tokens=16)
    with pytest.warns(UnreadableTextWarning, match=r"the 'en' front end cannot read 6 different characters "
                                                   r"\(П р и в е т\)"):
        mixed = synth.synthesize("Hello Привет there.", voice, "en", options)
    np.testing.assert_array_equal(mixed, synth.synthesize("Hello  there.", voice, "en", options))
    out = tmp_path / "o.wav"
    result = CliRunner().invoke(main, ["say", "--bundle", bundle, "--voice", voice_path, "--text", "Hello Привет.",
                                       "--out", out, "--seed", "1", "--backend", "onnxruntime", "--threads", "1"])
    assert result.exit_code == 0, result.output
    warning_lines = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert warning_lines == ["Warning: the 'en' front end cannot read 6 different characters (П р и в е т) of this "
                             "text (left out)"]
    assert "UnreadableTextWarning" not in result.stderr and out.stat().st_size > 44


def test_text_from_a_file_or_standard_input_speaks_like_text_given(emotivoice_bundle, tmp_path):
    bundle = emotivoice_bundle[0]
    text = "今天天气很好。<break/>See you tomorrow &amp; after!\n"
    (tmp_path / "t.txt").write_bytes(("\ufeff" + text).encode())
    runs = {"--text": ["--text", text], "--text-file": ["--text-file", tmp_path / "t.txt"], "stdin": ["--text", "-"]}
    written = {}
    for name, args in runs.items():
        out = tmp_path / f"{name}.wav"
        result = CliRunner().invoke(main, ["say", "--bundle", bundle, "--out", out, "--backend", "onnxruntime",
                                           *args], input=text.encode() if name == "stdin" else None)
        assert result.exit_code == 0, result.output
        written[name] = soundfile.read(out)[0]
    np.testing.assert_array_equal(written["--text-file"], written["--text"])
    np.testing.assert_array_equal(written["stdin"], written["--text"])


def test_integer_pcm_arrays_are_scaled_like_files(corpus):
    _, synth, _, _, reference = corpus
    pcm, _ = soundfile.read(reference, dtype="int16")
    as_float = pcm.astype(np.float32) / 32768
    np.testing.assert_array_equal(synth.timbre(pcm), synth.timbre(as_float))
    np.testing.assert_array_equal(synth.timbre(pcm.astype(np.int32) << 16), synth.timbre(as_float))
    np.testing.assert_array_equal(synth.timbre(as_float[None]), synth.timbre(as_float))  # [1, N] is mono
