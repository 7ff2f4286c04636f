"""MetaVoice host-side audio: the speaker encoder's front end against upstream's fixtures
(`speaker_tiny.npz`, made with librosa 0.10.1), and the BS.1770 output loudness normalisation."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import soundfile

from conftest import shared_dir
from edgevoice.errors import AudioError, EdgevoiceError
from edgevoice.metavoice import loudness, speaker

# librosa computes the mel spectrogram partly in float32; our float64 one differs by its rounding (measured
# 1.4e-7 of the maximum, 56.2; the README measured 1.0e-7 for librosa itself in float64)
MEL_RTOL = 1e-6
EMBED_ATOL = 1e-6


@pytest.fixture(scope="module")
def speaker_set():
    root = shared_dir() / "fixtures" / "metavoice"
    if not (root / "fixtures" / "speaker_tiny.npz").is_file():
        pytest.skip(f"MetaVoice fixture set not found at {root}")
    data = dict(np.load(root / "fixtures" / "speaker_tiny.npz"))
    audio, rate = soundfile.read(str(root / "audio" / "ref.wav"), dtype="float32")
    return data, audio, rate, root / "audio" / "ref.wav"


# --- speaker encoder front end -------------------------------------------------------------------------------

def test_resample_matches_librosa_load(speaker_set):
    data, audio, rate, _ = speaker_set
    wav = speaker.resample_to_16k(audio, rate)
    expected = data["wav16k"]
    assert wav.dtype == np.float32 and wav.shape == expected.shape
    error = wav.astype(np.float64) - expected
    snr = 10 * np.log10(np.sum(expected.astype(np.float64) ** 2) / max(np.sum(error ** 2), 1e-300))
    # measured: bit-identical (soxr 1.1.0, HQ); the bound allows another soxr build's last-bit differences
    assert np.abs(error).max() <= 1e-5 and snr > 80, (np.abs(error).max(), snr)


def test_int16_samples_are_read_as_the_file_is(speaker_set):
    _, audio, rate, path = speaker_set
    pcm, _ = soundfile.read(str(path), dtype="int16")
    np.testing.assert_array_equal(speaker.as_mono_float32(pcm), audio)
    np.testing.assert_array_equal(speaker.resample_to_16k(pcm[:rate], rate),
                                  speaker.resample_to_16k(audio[:rate], rate))


def test_trim_slices_and_padding_match_upstream(speaker_set):
    data = speaker_set[0]
    start, end = speaker.trim_silence(data["wav16k"])
    np.testing.assert_array_equal([start, end], data["trim_index"])
    wav_slices, mel_slices = speaker.partial_slices(end - start)
    np.testing.assert_array_equal(wav_slices, data["wav_slices"])
    np.testing.assert_array_equal(mel_slices, data["mel_slices"])
    assert speaker.padded_length(end - start, wav_slices) == data["wav_padded_len"]


def test_mel_spectrogram_matches_librosa(speaker_set):
    data = speaker_set[0]
    start, _ = speaker.trim_silence(data["wav16k"])
    wav = data["wav16k"][start:start + int(data["wav_padded_len"])]
    mel = speaker.mel_spectrogram(wav)
    expected = data["mel"]
    assert mel.dtype == np.float32 and mel.shape == expected.shape
    assert np.abs(mel - expected).max() <= MEL_RTOL * expected.max()


def test_partials_from_16k_and_from_the_file(speaker_set):
    data, audio, rate, _ = speaker_set
    expected = data["mels"]
    tolerance = MEL_RTOL * expected.max()
    from_16k = speaker.partials_from_16k(data["wav16k"])
    assert from_16k.dtype == np.float32 and from_16k.shape == expected.shape == (43, 160, 40)
    assert np.abs(from_16k - expected).max() <= tolerance
    assert np.abs(speaker.speaker_partials(audio, rate) - expected).max() <= tolerance


def test_combine_partials_matches_upstream(speaker_set):
    data = speaker_set[0]
    embed = speaker.combine_partials(data["partial_embeds"])
    assert embed.dtype == np.float32 and embed.shape == (256,)
    np.testing.assert_allclose(embed, data["embed"], rtol=0, atol=EMBED_ATOL)
    with pytest.raises(AudioError):
        speaker.combine_partials(np.zeros((3, 256), np.float32))


def test_reference_duration_check(speaker_set):
    data, audio, rate, _ = speaker_set
    assert speaker.check_reference_duration(audio, rate) == pytest.approx(float(data["check_audio_duration_s"]),
                                                                         abs=1e-12)
    short = audio[: int(29.5 * rate)]
    with pytest.raises(speaker.ReferenceTooShort, match=r"29\.50 s .* at least 30 s") as caught:
        speaker.check_reference_duration(short, rate)
    assert isinstance(caught.value, EdgevoiceError) and "\n" not in str(caught.value)
    speaker.check_reference_duration(np.ones(30 * 16000, np.float32), 16000)  # exactly 30 s passes


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 16000), np.float32), "one channel"),
    (np.zeros(0, np.float32), "empty"),
    (np.array([0.1, np.nan, 0.2], np.float32), "NaN or infinite"),
    (np.array([0.1, np.inf], np.float64), "NaN or infinite"),
    (np.ones(100, np.int32), "float or int16"),
    (np.zeros(100, np.float32), "silent"),
    (np.full(100, 0.3, np.float32), "constant level"),  # a DC offset holds no voice either
    (np.full(100, -2000, np.int16), "constant level"),
])
def test_bad_reference_arrays_are_refused(bad, message):
    with pytest.raises(AudioError, match=message):
        speaker.speaker_partials(bad, 16000)


@pytest.mark.parametrize("n", [0, 1, 159, 160, 25599, 25600, 25601, 40000, 123457])
def test_partial_slices_rules(n):
    wav_slices, mel_slices = speaker.partial_slices(n)
    assert len(mel_slices) >= 1
    np.testing.assert_array_equal(wav_slices, mel_slices * speaker.HOP_LENGTH)
    assert np.all(mel_slices[:, 1] - mel_slices[:, 0] == speaker.PARTIAL_FRAMES)
    assert np.all(np.diff(mel_slices[:, 0]) == 77)  # round(16000 / 1.3 / 160)
    last_start, last_stop = wav_slices[-1]
    assert len(mel_slices) == 1 or (n - last_start) / (last_stop - last_start) >= speaker.MIN_COVERAGE
    padded = speaker.padded_length(n, wav_slices)
    # every partial lies within the mel frames of the padded clip (centred STFT: 1 + len // hop frames)
    assert padded >= n and mel_slices[-1, 1] <= 1 + padded // speaker.HOP_LENGTH


def test_trim_keeps_the_loud_part():
    rate = speaker.SAMPLE_RATE
    t = np.arange(rate) / rate
    wav = np.concatenate([np.zeros(rate), 0.5 * np.sin(2 * np.pi * 440 * t), 1e-4 * np.ones(rate)])
    start, end = speaker.trim_silence(wav.astype(np.float32))
    # frames are 2048 wide every 512: the kept range reaches at most one frame into the silence on each side
    assert rate - 2048 <= start <= rate and 2 * rate <= end <= 2 * rate + 2048
    assert start % speaker.TRIM_HOP == 0 and end % speaker.TRIM_HOP == 0


# --- output loudness -----------------------------------------------------------------------------------------

def _sine(freq: float, seconds: float, rate: int, dbfs: float) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _speech_like(seconds: float, rate: int, seed: int, level: float = 0.05) -> np.ndarray:
    """Low-passed noise with a syllable-rate envelope and pauses, clipped at 3σ (a speech-like crest factor)."""
    rng = np.random.default_rng(seed)
    noise = np.convolve(rng.standard_normal(int(seconds * rate)), np.ones(6) / 6, mode="same")
    t = np.arange(noise.size) / rate
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) * (np.sin(2 * np.pi * 0.3 * t) > -0.3)
    speech = noise * envelope
    speech = np.clip(speech, -3 * speech.std(), 3 * speech.std())
    return (level * speech / speech.std()).astype(np.float32)


def test_k_weighting_equals_lfilter():
    signal = pytest.importorskip("scipy.signal", reason="scipy (a test-only comparison) is not installed")
    rng = np.random.default_rng(7)
    for rate, n in [(24000, 50_000), (48000, 1_000), (16000, 65), (44100, 2)]:
        x = rng.standard_normal(n)
        expected = x
        for b, a in loudness.k_weighting(rate):
            expected = signal.lfilter(b, a, expected)
        # the block recursion rounds differently: measured ≤ 1.1e-10 on unit-variance noise
        np.testing.assert_allclose(loudness.k_weighted(x, rate), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("rate", [48000, 24000])
@pytest.mark.parametrize("dbfs", [0.0, -20.0])
def test_sine_reads_the_bs1770_value(rate, dbfs):
    # BS.1770: a 997 Hz sine at 0 dBFS peak reads -3.01 LUFS (the -0.691 offset cancels the K-filter's gain)
    measured = loudness.integrated_loudness(_sine(997, 3, rate, dbfs), rate)
    assert abs(measured - (dbfs - 3.01)) < 0.1, measured


def test_gating_follows_the_definition():
    signal = pytest.importorskip("scipy.signal", reason="scipy (a test-only comparison) is not installed")
    rate = 24000
    wav = np.concatenate([_sine(997, 4, rate, -20), _sine(997, 4, rate, -45), np.zeros(rate, np.float32),
                          _speech_like(4, rate, 3)])
    filtered = wav.astype(np.float64)
    for b, a in loudness.k_weighting(rate):
        filtered = signal.lfilter(b, a, filtered)
    block, step = int(0.4 * rate), int(0.1 * rate)
    power = np.array([np.mean(filtered[s:s + block] ** 2) for s in range(0, wav.size - block + 1, step)])
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10 * np.log10(power)
    kept = block_lufs > -70
    relative = -0.691 + 10 * np.log10(power[kept].mean()) - 10
    kept &= block_lufs > relative
    expected = -0.691 + 10 * np.log10(power[kept].mean())
    assert (~kept).sum() > 10  # both gates removed blocks here: the silence and the -45 dBFS part
    assert abs(-0.691 + 10 * np.log10(power.mean()) - expected) > 1
    assert loudness.integrated_loudness(wav, rate) == pytest.approx(expected, abs=1e-9)


def test_normalize_reaches_minus_14_lufs_as_a_pure_gain():
    rate = 24000
    for seed, level in [(1, 0.02), (2, 0.3)]:
        wav = _speech_like(6, rate, seed, level)
        gain = loudness.loudness_gain(wav, rate)
        out = loudness.normalize_loudness(wav, rate)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, wav * gain)
        assert np.abs(out).max() <= 0.99 * (1 + 1e-6)
        assert abs(loudness.integrated_loudness(out, rate) - loudness.TARGET_LUFS) < 0.1


def test_peak_cap_keeps_a_pure_gain():
    rate = 24000
    wav = _speech_like(6, rate, 4, 0.01)
    wav[rate] = 0.5  # one spike: -14 LUFS would push it far past full scale
    gain = loudness.loudness_gain(wav, rate)
    out = loudness.normalize_loudness(wav, rate)
    np.testing.assert_array_equal(out, wav * gain)
    assert gain == pytest.approx(0.99 / 0.5)
    assert loudness.integrated_loudness(out, rate) < loudness.TARGET_LUFS - 1


@pytest.mark.parametrize("wav", [
    np.zeros(24000, np.float32),
    (1e-3 * np.random.default_rng(5).standard_normal(24000)).astype(np.float32),  # RMS 1e-3 < 2e-3
    _sine(997, 0.3, 24000, -20),  # shorter than one 400 ms block
    np.zeros(0, np.float32),
])
def test_quiet_short_or_unmeasurable_audio_is_unchanged(wav):
    assert loudness.loudness_gain(wav, 24000) == 1.0
    np.testing.assert_array_equal(loudness.normalize_loudness(wav, 24000), wav)


def test_unmeasurable_loudness_is_nan():
    assert math.isnan(loudness.integrated_loudness(np.zeros(24000, np.float32), 24000))  # every block gated
    assert math.isnan(loudness.integrated_loudness(_sine(997, 0.3, 24000, -20), 24000))  # no whole block


def test_loudness_refuses_bad_input():
    with pytest.raises(AudioError, match="NaN or infinite"):
        loudness.loudness_gain(np.array([0.1, np.nan] * 10000, np.float32), 24000)
    with pytest.raises(AudioError, match="one channel"):
        loudness.loudness_gain(np.zeros((2, 24000), np.float32), 24000)
    with pytest.raises(AudioError, match="sample rate"):
        loudness.loudness_gain(np.zeros(24000, np.float32), 0)


def test_a_minute_of_24k_audio_is_fast():
    rate = 24000
    wav = (0.1 * np.random.default_rng(6).standard_normal(60 * rate)).astype(np.float32)
    timings = []
    for _ in range(2):
        start = time.perf_counter()
        loudness.loudness_gain(wav, rate)
        timings.append(time.perf_counter() - start)
    # measured 0.05-0.09 s on a shared 2-core machine; a per-sample Python loop would take seconds
    assert min(timings) < 1.0, timings
    assert math.isfinite(loudness.integrated_loudness(wav, rate))
