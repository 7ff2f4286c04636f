"""Audio in and out for every family: reading clips, resampling, atomic 16-bit wav writing, and the magnitude
spectrogram."""

from __future__ import annotations

import io
import math
import os
import struct
from pathlib import Path

import numpy as np
import soundfile
import soxr

from .errors import AudioError
from .files import write_output

# integer PCM given as an array is scaled as soundfile and librosa read such files: by the type's full scale
INTEGER_FULL_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2.0 ** 31}
# float samples beyond this are integer PCM stored as float (a clip a few dB over full scale is fine, 16 = +24 dB)
MAX_FLOAT_PEAK = 16.0
MAGNITUDE_EPS = 1e-8  # inside the square root of a spectrogram's magnitude, as upstream's


def audio_array(audio, what: str = "audio") -> np.ndarray:
    """Mono float32 samples from an array given to the API.

    * float arrays are taken as they are; int16 and int32 PCM are divided by 32768 and 2³¹ (the rule soundfile and
      librosa use to read such files); any other type (uint8, int64, complex, objects) is refused;
    * `[N]`, `[1, N]` and `[N, 1]` are mono; several channels are refused (average them first: which axis holds the
      channels is a guess this function will not make);
    * empty arrays, NaN or infinite samples and float samples beyond ±16 (integer PCM stored as float) are refused.
    Refusals are one-line `AudioError`s naming `what`."""
    try:
        array = np.asarray(audio)
    except (TypeError, ValueError) as exc:
        raise AudioError(f"{what} is not an array of samples ({exc})") from None
    if array.dtype in INTEGER_FULL_SCALE:
        array = array.astype(np.float64) / INTEGER_FULL_SCALE[array.dtype]
    elif array.dtype.kind != "f":
        raise AudioError(f"{what} has samples of type {array.dtype}; give float samples in [-1, 1] or int16/int32 "
                         "PCM")
    if array.ndim == 0 or sum(size > 1 for size in array.shape) > 1:
        raise AudioError(f"{what} has shape {list(array.shape)}; give mono samples [N] (average the channels first)")
    array = array.reshape(-1)
    if array.size == 0:
        raise AudioError(f"{what} is empty")
    bad = np.count_nonzero(~np.isfinite(array))
    if bad:
        raise AudioError(f"{what}: {bad} samples are NaN or infinite")
    peak = float(np.abs(array).max())
    if peak > MAX_FLOAT_PEAK:
        raise AudioError(f"{what} peaks at {peak:.4g}; float samples belong in [-1, 1] (divide integer PCM by its "
                         "full scale, e.g. 32768 for 16 bits)")
    return array.astype(np.float32)


def audio_duration(path: str | Path) -> float:
    """Seconds of audio in a file, from its header (nothing is decoded)."""
    path = _existing_audio_file(path)
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{path}: cannot read audio ({exc})") from None
    return info.frames / info.samplerate if info.samplerate > 0 else 0.0


def _audio_path(path) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise AudioError(f"an audio file is given by its path, not a {type(path).__name__}")
    return Path(path)


def _existing_audio_file(path) -> Path:
    """`path` if it is a regular file; otherwise one line saying what it is (a folder, a device, nothing)."""
    path = _audio_path(path)
    try:
        if path.is_file():
            return path
        what = "a folder" if path.is_dir() else "a device or pipe" if path.exists() else None
    except OSError as exc:
        raise AudioError(f"{path}: cannot read ({exc.strerror or exc})") from None
    raise AudioError(f"{path}: audio file not found" if what is None else f"{path}: is {what}, not an audio file")


# Rates a reference clip may claim: telephone audio is 8 kHz and studio formats reach 768 kHz. A clip read with a
# wrong rate (1 Hz) would be resampled to billions of samples; one far below 8 kHz holds no speech band to embed.
MIN_REFERENCE_RATE = 4000
MAX_REFERENCE_RATE = 768000


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples (channels averaged, as librosa does) and the file's sample rate (refused outside
    MIN_REFERENCE_RATE…MAX_REFERENCE_RATE)."""
    path = _existing_audio_file(path)
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{path}: cannot read audio ({exc})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio file is empty")
    if not MIN_REFERENCE_RATE <= rate <= MAX_REFERENCE_RATE:
        raise AudioError(f"{path}: sample rate {rate} Hz is outside {MIN_REFERENCE_RATE}–{MAX_REFERENCE_RATE} Hz")
    bad = np.count_nonzero(~np.isfinite(data))
    if bad:  # float wavs can hold NaN/inf; they would poison the voice silently
        raise AudioError(f"{path}: {bad} samples are NaN or infinite")
    return data.mean(axis=1).astype(np.float32), int(rate)


SILENCE_FLOOR = 1e-4  # ~3 steps of a 16-bit sample: a reference whose samples all lie this close holds no sound


def carries_no_sound(audio: np.ndarray) -> bool:
    """Whether no sample of a reference departs from the clip's mean by more than `SILENCE_FLOOR`: silence, or a
    constant offset (a DC level passes a plain all-zero check but holds no voice to clone)."""
    return audio.size == 0 or float(np.max(np.abs(audio - np.mean(audio, dtype=np.float64)))) <= SILENCE_FLOOR


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


def wav_header(sample_rate: int, data_bytes: int | None = None) -> bytes:
    """A 44-byte header of a 16-bit mono wav; `None` for a stream of unknown length (sizes at their maximum, as
    streaming servers send them)."""
    data = 0xFFFFFFFF - 36 if data_bytes is None else data_bytes
    return (b"RIFF" + struct.pack("<I", data + 36) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
            + b"data" + struct.pack("<I", data))


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """A whole 16-bit PCM wav file in memory."""
    buffer = io.BytesIO()
    soundfile.write(buffer, audio if audio.dtype == np.int16 else to_int16(audio), sample_rate, subtype="PCM_16",
                    format="WAV")
    return buffer.getvalue()


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write a 16-bit PCM wav file where `files.write_output` puts an output: `-` is standard output, a device or
    FIFO is written in place, a symlink is followed, anything else is replaced atomically. Write errors are
    one-line `AudioError`s."""
    return write_output(path, wav_bytes(audio, sample_rate), AudioError)


# ------------------------------------------------------------------------------------------------ spectrum


def periodic_hann(length: int) -> np.ndarray:
    """Periodic Hann window `0.5 − 0.5·cos(2πn/length)` in float32, following torch's `hann_window` recipe
    (float32 angles, float32 arithmetic); cos is rounded from float64, which lands within 1 ulp of torch."""
    angles = np.arange(length, dtype=np.float32) * np.float32(2.0 * np.pi / length)
    cos = np.cos(angles.astype(np.float64)).astype(np.float32)
    return np.float32(0.5) - np.float32(0.5) * cos


def magnitude_spectrogram(audio: np.ndarray, n_fft: int, hop_length: int, win_length: int) -> np.ndarray:
    """Waveform `[n]` or `[1, n]` → linear magnitude spectrogram `[1, n_fft//2+1, n//hop]` float32, as torch's
    `stft(center=False)` after a reflect pad of (n_fft − hop)/2 a side (GPT-SoVITS' `spectrogram_torch`), with a
    periodic Hann window and magnitude `sqrt(re² + im² + 1e-8)`.

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
        raise AudioError(f"audio too short for a spectrogram: {audio.shape[0]} samples, need more than {pad}")
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
