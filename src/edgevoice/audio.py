"""Audio in and out for every family: reading clips, resampling, and atomic 16-bit wav writing."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile
import soxr

from .errors import AudioError



def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples (channels averaged, as librosa does) and the file's sample rate."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{path}: cannot read audio ({exc})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio file is empty")
    return data.mean(axis=1).astype(np.float32), int(rate)


def resample_soxr(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """High-quality soxr resampling: what upstream's `librosa.load(path, sr=16000)` does."""
    if rate == target:
        return audio.astype(np.float32)
    return soxr.resample(audio, rate, target, quality="HQ").astype(np.float32)


def resample_sinc(audio: np.ndarray, rate: int, target: int, width: int = 6, rolloff: float = 0.99) -> np.ndarray:
    """Windowed-sinc (Hann) polyphase resampling, the method upstream uses for its 32 kHz reference path."""
    if rate == target:
        return audio.astype(np.float32)
    g = math.gcd(rate, target)
    orig, new = rate // g, target // g
    base = min(orig, new) * rolloff
    half = math.ceil(width * orig / base)
    taps = np.arange(-half, half + orig, dtype=np.float64) / orig
    t = (np.arange(0, -new, -1, dtype=np.float64)[:, None] / new + taps[None, :]) * base
    t = np.clip(t, -width, width)
    window = np.cos(t * np.pi / width / 2) ** 2
    t = t * np.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        kernels = np.where(t == 0, 1.0, np.sin(t) / t) * window * (base / orig)
    padded = np.pad(audio.astype(np.float64), (half, half + orig))
    frames = (padded.shape[0] - kernels.shape[1]) // orig + 1
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernels.shape[1])[::orig][:frames]
    out = (windows @ kernels.T).reshape(-1)
    return out[: math.ceil(new * audio.shape[0] / orig)].astype(np.float32)


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] to int16 (upstream's ×32768, clipped so a full-scale sample cannot wrap around)."""
    return np.clip(np.asarray(audio, dtype=np.float64) * 32768.0, -32768, 32767).astype(np.int16)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write 16-bit PCM atomically: a temporary file in the same folder, renamed into place when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle)
    try:
        pcm = audio if audio.dtype == np.int16 else to_int16(audio)
        soundfile.write(temp, pcm, sample_rate, subtype="PCM_16", format="WAV")
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return path
