"""Reference spectrogram for the SoVITS reference encoder, in numpy (runtime, no torch).

Reproduces upstream's `spectrogram_torch(audio, n_fft=2048, sr=32000, hop=640, win=2048, center=False)`:
reflect-pad (n_fft − hop)/2 on both sides, frames every `hop` samples, periodic Hann window, one-sided DFT,
magnitude `sqrt(re² + im² + 1e-8)` — linear, no mel, no log. An n-sample input gives n // hop frames.
"""

from __future__ import annotations

import numpy as np

# GPT-SoVITS v2 (`configs/s2.json`, section data): filter_length / hop_length / win_length
N_FFT = 2048
HOP_LENGTH = 640
WIN_LENGTH = 2048
MAGNITUDE_EPS = 1e-8


def periodic_hann(length: int) -> np.ndarray:
    """Periodic Hann window `0.5 − 0.5·cos(2πn/length)` in float32, following torch's `hann_window` recipe
    (float32 angles, float32 arithmetic); cos is rounded from float64, which lands within 1 ulp of torch."""
    angles = np.arange(length, dtype=np.float32) * np.float32(2.0 * np.pi / length)
    cos = np.cos(angles.astype(np.float64)).astype(np.float32)
    return np.float32(0.5) - np.float32(0.5) * cos


def linear_spectrogram(audio: np.ndarray, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH,
                       win_length: int = WIN_LENGTH) -> np.ndarray:
    """Waveform `[n]` or `[1, n]` (float, 32 kHz for v2) → magnitude spectrogram `[1, n_fft//2+1, n//hop]` float32.

    The DFT runs in float64 on float32 frames and window; the result is rounded to float32 once.
    """
    audio = np.asarray(audio)
    if audio.ndim == 2 and audio.shape[0] == 1:
        audio = audio[0]
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio of shape [n] or [1, n], got {audio.shape}")
    if win_length > n_fft:
        raise ValueError(f"win_length {win_length} exceeds n_fft {n_fft}")
    pad = (n_fft - hop_length) // 2
    if audio.shape[0] <= pad:
        raise ValueError(f"audio too short for reflect padding: {audio.shape[0]} samples, need > {pad}")
    padded = np.pad(audio.astype(np.float32), pad, mode="reflect")
    n_frames = 1 + (padded.shape[0] - n_fft) // hop_length
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length][:n_frames]
    # like torch.stft, a shorter window is zero-padded to n_fft, centred
    window = np.zeros(n_fft, dtype=np.float32)
    left = (n_fft - win_length) // 2
    window[left:left + win_length] = periodic_hann(win_length)
    spectrum = np.fft.rfft((frames * window).astype(np.float64), n=n_fft, axis=-1)
    magnitude = np.sqrt(spectrum.real ** 2 + spectrum.imag ** 2 + MAGNITUDE_EPS)
    return magnitude.T[None].astype(np.float32)


def normalize_reference_peak(audio: np.ndarray) -> np.ndarray:
    """Upstream's reference preparation at 32 kHz: if the peak exceeds 1, divide by min(2, peak)."""
    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 1.0:
        audio = audio / np.float32(min(2.0, peak))
    return audio
