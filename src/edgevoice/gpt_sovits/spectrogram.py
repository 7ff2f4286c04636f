"""Reference spectrogram for the SoVITS reference encoder, in numpy (runtime, no torch).

Reproduces upstream's `spectrogram_torch(audio, n_fft=2048, sr=32000, hop=640, win=2048, center=False)`:
reflect-pad (n_fft − hop)/2 on both sides, frames every `hop` samples, periodic Hann window, one-sided DFT,
magnitude `sqrt(re² + im² + 1e-8)` — linear, no mel, no log. An n-sample input gives n // hop frames.
"""

from __future__ import annotations

import numpy as np

from ..audio import magnitude_spectrogram
from ..errors import AudioError

# GPT-SoVITS v2 (`configs/s2.json`, section data): filter_length / hop_length / win_length
N_FFT = 2048
HOP_LENGTH = 640
WIN_LENGTH = 2048


def linear_spectrogram(audio: np.ndarray, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH,
                       win_length: int = WIN_LENGTH) -> np.ndarray:
    """Waveform `[n]` or `[1, n]` (float, 32 kHz for v2) → magnitude spectrogram `[1, n_fft//2+1, n//hop]` float32
    (`edgevoice.audio.magnitude_spectrogram` with upstream's sizes)."""
    return magnitude_spectrogram(audio, n_fft, hop_length, win_length)


# Kaldi-compatible log-mel filterbank (the `fbank` GPT-SoVITS v2Pro feeds its speaker-verification model):
# 16 kHz, 25 ms frames every 10 ms with only whole frames kept, no dither, per-frame DC removal, pre-emphasis 0.97,
# Povey window, FFT size 512, power spectrum, 80 triangular bins on Kaldi's mel scale from 20 Hz to Nyquist,
# log floored at float32 epsilon.
FBANK_RATE, FBANK_FRAME, FBANK_SHIFT, FBANK_FFT = 16000, 400, 160, 512
FBANK_BINS, FBANK_LOW_HZ, FBANK_PREEMPHASIS = 80, 20.0, 0.97


def kaldi_mel_banks(bins: int = FBANK_BINS, n_fft: int = FBANK_FFT, rate: int = FBANK_RATE,
                    low_hz: float = FBANK_LOW_HZ) -> np.ndarray:
    """Triangular filters `[bins, n_fft/2 + 1]` on Kaldi's mel scale 1127·ln(1 + f/700), the Nyquist bin weighted
    0; in float32 with the reference implementation's order of operations, so the weights agree to rounding."""
    f32 = np.float32
    low, high = 1127.0 * np.log(1.0 + low_hz / 700.0), 1127.0 * np.log(1.0 + rate / 2 / 700.0)
    delta = f32((high - low) / (bins + 1))
    index = np.arange(bins, dtype=f32)[:, None]
    left = f32(low) + index * delta
    center = f32(low) + (index + f32(1.0)) * delta
    right = f32(low) + (index + f32(2.0)) * delta
    freq = f32(rate / n_fft) * np.arange(n_fft // 2, dtype=f32)
    mel = (f32(1127.0) * np.log(f32(1.0) + freq / f32(700.0)))[None, :]
    weights = np.maximum(f32(0.0), np.minimum((mel - left) / (center - left), (right - mel) / (right - center)))
    return np.pad(weights, ((0, 0), (0, 1))).astype(f32)


def kaldi_fbank(wav16k: np.ndarray) -> np.ndarray:
    """Log-mel filterbank `[frames, 80]` of 16 kHz audio in [-1, 1]; frames = 1 + (n − 400) // 160."""
    audio = np.asarray(wav16k, np.float32).reshape(-1)
    if audio.size < FBANK_FRAME:
        raise AudioError(f"audio too short for a filterbank: {audio.size} samples at 16 kHz, need at least "
                         f"{FBANK_FRAME} samples")
    count = 1 + (audio.size - FBANK_FRAME) // FBANK_SHIFT
    index = FBANK_SHIFT * np.arange(count)[:, None] + np.arange(FBANK_FRAME)[None, :]
    frames = audio[index]
    frames = frames - frames.mean(axis=1, keepdims=True)
    previous = np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)  # the first sample is its own predecessor
    frames = frames - np.float32(FBANK_PREEMPHASIS) * previous
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FBANK_FRAME) / (FBANK_FRAME - 1))) ** 0.85
    frames = frames * window.astype(np.float32)
    power = np.abs(np.fft.rfft(frames, n=FBANK_FFT, axis=1)).astype(np.float32) ** 2
    energies = power @ kaldi_mel_banks().T
    return np.log(np.maximum(energies, np.finfo(np.float32).eps)).astype(np.float32)
