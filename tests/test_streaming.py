"""GPT-SoVITS audio by token chunks: windows, noise, joined audio against the whole-fragment decode, the CLI."""

import io
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile

import edgevoice
from edgevoice.errors import OptionsError
from edgevoice.gpt_sovits.chunking import STREAM_FIRST_CHUNK_TOKENS
from edgevoice.gpt_sovits.chunking import FrameNoise, next_window, windows
from edgevoice.gpt_sovits.options import SynthesisOptions

TEXT = "The quick brown fox jumps over the lazy dog. It was a bright cold day in April."


def _snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference ** 2) / max(np.sum((reference - other) ** 2), 1e-30)))


@pytest.mark.parametrize("growth", [1, 4])
@pytest.mark.parametrize("tokens", [1, 7, 30, 31, 55, 100, 333])
def test_windows_keep_every_token_once_with_context(tokens, growth):
    chunk, context = 10, 6
    parts = windows(tokens, chunk, context, growth)
    kept = [(w.keep_start, w.keep_stop) for w in parts]
    assert kept[0][0] == 0 and kept[-1][1] == tokens
    assert all(a[1] == b[0] for a, b in zip(kept, kept[1:]))  # contiguous, no overlap
    for w in parts:
        assert 0 <= w.start <= w.keep_start < w.keep_stop <= w.stop <= tokens
        assert w.keep_start - w.start >= context or w.start == 0  # context, or the fragment's true start
        assert w.stop - w.keep_stop >= context or w.stop == tokens
    # few window lengths (OpenVINO keeps memory per input length): one past the first, or one per growth step
    assert len({w.stop - w.start for w in parts}) <= (2 if growth == 1 else 4)
    if growth > 1 and tokens >= 100:
        assert max(w.keep_stop - w.keep_start for w in parts[:-1]) == growth * chunk


@pytest.mark.parametrize("tokens", [5, 32, 90, 400])
def test_windows_fill_the_padded_shapes(tokens):
    buckets = (32, 64, 128, 256)
    parts = windows(tokens, 20, 12, 4, buckets)
    kept = [(w.keep_start, w.keep_stop) for w in parts]
    assert kept[0][0] == 0 and kept[-1][1] == tokens and all(a[1] == b[0] for a, b in zip(kept, kept[1:]))
    for w in parts[:-1]:  # every window but the last is exactly a bucket: nothing padded, more kept
        assert w.stop - w.start in buckets
        assert w.keep_start - w.start >= 12 or w.start == 0
        assert w.stop - w.keep_stop >= 12
    if tokens > 32:
        assert (parts[0].start, parts[0].stop, parts[0].keep_stop) == (0, 32, 20)  # first audio after 32 tokens


def test_a_window_waits_for_its_right_context():
    assert next_window(0, 15, False, chunk=10, context=6) is None
    window = next_window(0, 16, False, chunk=10, context=6)
    assert (window.start, window.stop, window.keep_start, window.keep_stop) == (0, 16, 0, 10)
    assert next_window(10, 25, False, chunk=10, context=6) is None
    assert next_window(10, 12, True, chunk=10, context=6).keep_stop == 12  # the end needs no right context
    assert next_window(12, 12, True, chunk=10, context=6) is None


def test_frame_noise_does_not_depend_on_how_it_is_drawn():
    whole = FrameNoise(np.random.default_rng(3), 4, 0.5).take(0, 50)
    pieces = FrameNoise(np.random.default_rng(3), 4, 0.5)
    assert whole.shape == (1, 4, 50)
    np.testing.assert_array_equal(np.concatenate([pieces.take(0, 7), pieces.take(7, 30), pieces.take(30, 50)], 2),
                                  whole)


@pytest.fixture(scope="module")
def synth_and_voice(fixture_bundle, gpt_sovits_set):
    synth = edgevoice.load(fixture_bundle[0], threads=2)
    audio = gpt_sovits_set / "audio"
    voice = synth.create_voice(audio / "ref_en.wav", (audio / "ref_en.txt").read_text().strip(), "en")
    return synth, voice


def _fixed(tokens: int, seed: int = 5) -> SynthesisOptions:
    return SynthesisOptions(seed=seed, min_tokens=tokens, max_tokens=tokens, split_method="cut5")


def test_streamed_audio_matches_the_whole_fragment_decode(synth_and_voice):
    synth, voice = synth_and_voice
    options = _fixed(70)
    whole = list(synth.stream(TEXT, voice, "en", options))
    chunked = list(synth.stream(TEXT, voice, "en", options, chunk_tokens=12))
    assert len(chunked) > 2 * len(whole)  # several chunks per fragment, then each fragment's pause
    np.testing.assert_array_equal(np.concatenate([c.tokens for c in chunked]),
                                  np.concatenate([c.tokens for c in whole]))  # same sampling, same seed
    assert all(c.tokens.size == 70 for c in whole)  # min_tokens held EOS back, max_tokens stopped it
    joined, reference = np.concatenate([c.audio for c in chunked]), np.concatenate([c.audio for c in whole])
    assert joined.shape == reference.shape
    assert _snr_db(reference, joined) >= 60
    # no click where chunks meet: 20 ms around every join is as close as the whole
    assert chunked[0].tokens.size == STREAM_FIRST_CHUNK_TOKENS  # a short first chunk, for an early first audio
    for join in np.cumsum([c.audio.size for c in chunked])[:-1]:  # every chunk boundary, in samples
        around = slice(join - 320, join + 320)
        assert _snr_db(reference[around], joined[around]) >= 50


def test_a_long_fragment_equals_one_whole_decode(synth_and_voice):
    """300 tokens: the encoder reads them all at once, the vocoder runs in windows of its largest length."""
    synth, voice = synth_and_voice
    from edgevoice.gpt_sovits.chunking import VOCODER_FRAME_BUCKETS

    tokens = 300
    assert 2 * tokens > VOCODER_FRAME_BUCKETS[-1]
    fragment = synth.synthesize_fragment("A long sentence to read.", voice, "en", _fixed(tokens).sampling(), 0.5,
                                         np.random.default_rng(1))
    assert fragment.tokens.size == tokens
    codes = fragment.tokens.reshape(1, 1, -1)
    phones = np.asarray(fragment.phone_ids, np.int64).reshape(1, -1)
    z = synth._run("sovits_latent", codes=codes, phone_ids=phones, ge=voice.ge, noise=fragment.noise,
                   valid_tokens=np.array([tokens]), valid_phones=np.array([phones.shape[-1]]))["z"]
    whole = synth._run("sovits_vocoder", z=z, ge=voice.ge, valid_frames=np.array([2 * tokens]))["audio"]
    assert fragment.audio.shape == (whole.size,)
    assert _snr_db(whole.reshape(-1), fragment.audio) >= 90  # float rounding only


def test_two_threads_stream_from_one_synthesizer(synth_and_voice):
    synth, voice = synth_and_voice
    expected = {seed: np.concatenate([c.audio for c in synth.stream(TEXT, voice, "en", _fixed(30, seed),
                                                                    chunk_tokens=8)]) for seed in (1, 2)}
    results = {}

    def run(seed):
        results[seed] = np.concatenate([c.audio for c in synth.stream(TEXT, voice, "en", _fixed(30, seed),
                                                                      chunk_tokens=8)])

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for seed in (1, 2):
        np.testing.assert_allclose(results[seed], expected[seed], atol=1e-6)


@pytest.mark.parametrize("bad", [0, -3, 10 ** 6, 2.5, True])
def test_bad_chunk_sizes_are_refused(synth_and_voice, bad):
    synth, voice = synth_and_voice
    with pytest.raises(OptionsError, match="chunk_tokens"):
        next(synth.stream(TEXT, voice, "en", chunk_tokens=bad))


def _say(bundle, voice, *extra):
    command = str(Path(sys.executable).with_name("edgevoice"))  # the venv's console script
    return subprocess.run([command, "say", "--bundle", str(bundle), "--voice", str(voice), "--text", TEXT, "--seed",
                           "3", "--min-tokens", "30", "--max-tokens", "30", *extra], capture_output=True, timeout=300)


def test_say_streams_wav_and_pcm_to_standard_output(fixture_bundle, server_voices, tmp_path):
    bundle, voice = fixture_bundle[0], server_voices / "ref-en.npz"
    saved = _say(bundle, voice, "--out", str(tmp_path / "whole.wav"))
    assert saved.returncode == 0, saved.stderr.decode()
    whole, rate = soundfile.read(tmp_path / "whole.wav", dtype="int16")
    streamed = _say(bundle, voice, "--out", "-", "--stream", "wav", "--chunk-tokens", "10")
    assert streamed.returncode == 0, streamed.stderr.decode()
    assert streamed.stdout[:4] == b"RIFF"
    raw = np.frombuffer(streamed.stdout[44:], np.int16)
    assert raw.size == whole.size
    assert _snr_db(whole.astype(np.float64), raw.astype(np.float64)) >= 45  # 16-bit rounding of a quiet model
    pcm = _say(bundle, voice, "--out", "-", "--stream", "pcm")
    assert pcm.returncode == 0 and np.frombuffer(pcm.stdout, np.int16).size == whole.size
    assert rate == edgevoice.load(bundle).sample_rate
    refused = _say(bundle, voice, "--out", str(tmp_path / "x.wav"), "--stream", "wav")
    assert refused.returncode != 0 and b"--out -" in refused.stderr and b"Traceback" not in refused.stderr
    assert not (tmp_path / "x.wav").exists()
    assert soundfile.info(io.BytesIO(streamed.stdout[:44] + b"\0" * 8)).samplerate == rate
    unspeakable = _say(bundle, voice, "--out", "-", "--stream", "wav", "--text", "?!,;")  # the last --text counts
    assert unspeakable.returncode == 1 and unspeakable.stdout == b""  # not even a header (a probe's find)


def test_a_very_long_fragment_goes_through_windows(synth_and_voice):
    """Past `LONG_FRAGMENT_TOKENS` the encoder's memory would grow with the square of the length: windows of that
    many tokens with context instead, still close to one whole decode."""
    synth, voice = synth_and_voice
    from edgevoice.gpt_sovits.chunking import LONG_FRAGMENT_TOKENS

    tokens = LONG_FRAGMENT_TOKENS + 40
    fragment = synth.synthesize_fragment("A long sentence to read.", voice, "en", _fixed(tokens).sampling(), 0.5,
                                         np.random.default_rng(1))
    assert fragment.tokens.size == tokens
    whole = synth.decode_tokens(fragment.tokens, fragment.phone_ids, noise=fragment.noise, ge=voice.ge)
    assert fragment.audio.shape == whole.shape
    assert 60 <= _snr_db(whole, fragment.audio) < 150  # close, yet not the same computation
