"""numpy reference spectrogram (`edgevoice.gpt_sovits.spectrogram`) against upstream's `spectrogram_torch` fixtures."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgevoice.audio import periodic_hann
from edgevoice.gpt_sovits.reference import normalize_reference_peak
from edgevoice.gpt_sovits.spectrogram import HOP_LENGTH, linear_spectrogram

# The fixture was computed with torch's float32 FFT; our float64 DFT differs from it by its rounding noise
# (measured 7.6e-6 absolute, at spectrogram peaks of ~120, i.e. ~6e-8 relative to the peak).
SPEC_ATOL = 2e-5


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_matches_upstream_fixture(gpt_sovits_set, lang):
    data = np.load(gpt_sovits_set / "fixtures" / f"refspec_{lang}_tiny.npz")
    spec = linear_spectrogram(data["raw_audio_32k"])
    expected = data["spec"]
    assert spec.shape == expected.shape == (1, 1025, 250)
    assert spec.dtype == np.float32
    np.testing.assert_allclose(spec, expected, rtol=0, atol=SPEC_ATOL)
    # the +1e-8 inside the sqrt sets the floor of silent bins: sqrt(1e-8) = 1e-4
    assert spec.min() >= np.float32(1e-4) * (1 - 1e-6)


@pytest.mark.parametrize("n", [705, 1280, 5000, 32000])
def test_frame_count_and_flat_input(n):
    audio = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1
    spec = linear_spectrogram(audio)
    assert spec.shape == (1, 1025, n // HOP_LENGTH)
    np.testing.assert_array_equal(spec, linear_spectrogram(audio[None]))


def test_sine_peaks_at_its_bin():
    sr, bin_index = 32000, 100  # bin spacing sr / n_fft = 15.625 Hz
    t = np.arange(sr) / sr
    audio = (0.5 * np.sin(2 * np.pi * bin_index * sr / 2048 * t)).astype(np.float32)
    spec = linear_spectrogram(audio)
    assert (spec[0, :, 2:-2].argmax(axis=0) == bin_index).all()
    # Hann window sum is 1024, so a 0.5-amplitude sine peaks at 0.5 * 1024 / 2 = 256
    np.testing.assert_allclose(spec[0, bin_index, 2:-2], 256.0, rtol=1e-3)


def test_periodic_hann():
    window = periodic_hann(8)
    np.testing.assert_allclose(window, [0, 0.1464466, 0.5, 0.8535534, 1, 0.8535534, 0.5, 0.1464466], atol=1e-6)
    assert window.dtype == np.float32


def test_rejects_bad_shapes():
    with pytest.raises(ValueError):
        linear_spectrogram(np.zeros((2, 4000), dtype=np.float32))
    with pytest.raises(ValueError):
        linear_spectrogram(np.zeros(500, dtype=np.float32))


def test_normalize_reference_peak():
    quiet = np.array([0.5, -0.9], dtype=np.float32)
    np.testing.assert_array_equal(normalize_reference_peak(quiet), quiet)
    np.testing.assert_allclose(normalize_reference_peak(np.array([1.5, -0.75])), [1.0, -0.5])
    np.testing.assert_allclose(normalize_reference_peak(np.array([-3.0, 1.0])), [-1.5, 0.5])  # divisor capped at 2


def test_runtime_module_does_not_import_torch():
    code = "import sys, edgevoice.gpt_sovits.spectrogram; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def _fbank_by_the_book(frame: np.ndarray) -> np.ndarray:
    """Kaldi's fbank for one 400-sample frame, in float64 and plain loops over the definition (spec §4.7)."""
    frame = frame.astype(np.float64) - frame.mean()
    emphasised = np.array([frame[j] - 0.97 * frame[max(j - 1, 0)] for j in range(400)])
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 399)) ** 0.85
    padded = np.zeros(512)
    padded[:400] = emphasised * window
    power = np.abs(np.fft.rfft(padded)) ** 2
    mel = lambda f: 1127.0 * np.log(1 + f / 700.0)  # noqa: E731
    edges = mel(20.0) + (mel(8000.0) - mel(20.0)) / 81 * np.arange(82)
    out = np.empty(80)
    for b in range(80):
        total = 0.0
        for k in range(256):  # the Nyquist bin carries no weight
            m = mel(16000 / 512 * k)
            if edges[b] < m < edges[b + 2]:
                total += power[k] * ((m - edges[b]) / (edges[b + 1] - edges[b]) if m <= edges[b + 1]
                                     else (edges[b + 2] - m) / (edges[b + 2] - edges[b + 1]))
        out[b] = np.log(max(total, np.finfo(np.float32).eps))
    return out


def test_kaldi_fbank_follows_the_definition():
    from edgevoice.gpt_sovits.spectrogram import kaldi_fbank

    rng = np.random.default_rng(1)
    n = 16000 + 123
    audio = (0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / 16000) + 0.05 * rng.standard_normal(n)).astype(np.float32)
    features = kaldi_fbank(audio)
    assert features.shape == (1 + (n - 400) // 160, 80) and features.dtype == np.float32
    for index in (0, 37, features.shape[0] - 1):
        expected = _fbank_by_the_book(audio[160 * index: 160 * index + 400])
        # float32 FFT rounding in near-empty bins; measured 2.6e-4 against upstream's torch kaldi.fbank
        assert np.abs(features[index] - expected).max() < 1e-3
    with pytest.raises(ValueError, match="at least 400 samples"):
        kaldi_fbank(np.zeros(399, np.float32))
