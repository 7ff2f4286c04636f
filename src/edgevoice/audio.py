"""Audio in and out for every family: reading clips, resampling, and atomic 16-bit wav writing."""

from __future__ import annotations

import io
import math
import os
import sys
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
    bad = np.count_nonzero(~np.isfinite(data))
    if bad:  # float wavs can hold NaN/inf; they would poison the voice silently
        raise AudioError(f"{path}: {bad} samples are NaN or infinite")
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


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """A whole 16-bit PCM wav file in memory."""
    buffer = io.BytesIO()
    soundfile.write(buffer, audio if audio.dtype == np.int16 else to_int16(audio), sample_rate, subtype="PCM_16",
                    format="WAV")
    return buffer.getvalue()


def _current_umask() -> int:
    """The process umask, read without changing it (os.umask would, for a moment, in every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write a 16-bit PCM wav file.

    * `-` writes to standard output (pipes work);
    * an existing device or FIFO (`/dev/null`, a named pipe) is written directly, never replaced;
    * otherwise (absent or a regular file; a symlink is followed to its target) the file is written to a temporary
      file in the same folder and renamed into place when complete, with permissions that follow the umask, so a
      reader never sees half a file and a failed write leaves nothing behind.
    Write errors are one-line `AudioError`s."""
    data = wav_bytes(audio, sample_rate)
    if str(path) == "-":
        _write_stream(sys.stdout.buffer, data, "standard output")
        return Path("-")
    path = Path(path)
    target = path.resolve() if path.is_symlink() else path
    if target.exists() and not target.is_file():
        if target.is_dir():
            raise AudioError(f"{path}: is a folder; give a file name for the wav")
        # a device or FIFO: written in place, never replaced; unbuffered, so a write error surfaces in the write
        with _opened(target) as handle:
            _write_stream(handle, data, str(path))
        return path
    _write_atomically(target, data)
    return path


def _opened(path: Path):
    try:
        return open(path, "ab", buffering=0)
    except OSError as exc:
        raise AudioError(f"{path}: cannot write ({exc.strerror or exc})") from None


def _write_stream(handle, data: bytes, name: str) -> None:
    try:
        handle.write(data)
        handle.flush()
    except OSError as exc:
        raise AudioError(f"{name}: write failed ({exc.strerror or exc})") from None


def _write_atomically(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as exc:
        raise AudioError(f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temp, 0o666 & ~_current_umask())  # mkstemp makes 0600; a new file should look like any other
        os.replace(temp, path)
    except OSError as exc:
        raise AudioError(f"{path}: write failed ({exc.strerror or exc})") from None
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
