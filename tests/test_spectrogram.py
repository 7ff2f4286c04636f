"""numpy reference spectrogram (`edgevoice.spectrogram`) against upstream's `spectrogram_torch` fixtures."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgevoice.spectrogram import HOP_LENGTH, linear_spectrogram, normalize_reference_peak, periodic_hann

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
    code = "import sys, edgevoice.spectrogram; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
