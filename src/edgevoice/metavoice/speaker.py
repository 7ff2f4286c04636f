"""MetaVoice's speaker-encoder audio front end in numpy: reference audio → the LSTM's input partials.

Reproduces what upstream (metavoiceio/metavoice-src, ``fam/quantiser/audio/speaker_encoder``) does around the
LSTM, with librosa 0.10.1 re-implemented:

1. ``librosa.load(path, sr=16000)``: float32 samples (16-bit PCM as int / 32768), soxr HQ resampling, length fixed
   to ``ceil(n * 16000 / rate)`` (`resample_to_16k`);
2. ``librosa.effects.trim(top_db=20)``: RMS of zero-padded 2048-sample frames every 512 samples, kept from the
   first to the last frame within 20 dB of the loudest (`trim_silence`);
3. ``SpeakerEncoder.compute_partial_slices(rate=1.3, min_coverage=0.75)`` and the zero padding of
   ``embed_utterance`` (`partial_slices`, `padded_length`);
4. ``audio.wav_to_mel_spectrogram``: power mel spectrogram, no log (`mel_spectrogram`);
5. the mean of the L2-normalised partial embeddings, L2-normalised (`combine_partials`, the ``numpy=False`` path
   inference uses).

The LSTM itself (mels → partial embeddings) is a graph in the bundle. ``fam.llm.utils.check_audio_file``'s
30-second minimum is `check_reference_duration`; as upstream, it is a separate check, not part of the chain.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
import soxr

from ..audio import MAX_REFERENCE_RATE, MIN_REFERENCE_RATE, SILENCE_FLOOR, carries_no_sound
from ..errors import AudioError
from .options import MIN_REFERENCE_SECONDS

SAMPLE_RATE = 16000
# librosa.load's default rate: upstream's check_audio_file measures the duration of the clip resampled to it
CHECK_SAMPLE_RATE = 22050

N_FFT = 400  # 25 ms window
HOP_LENGTH = 160  # 10 ms: one mel frame
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s of mel frames per partial utterance
PARTIAL_RATE = 1.3  # partials per second
MIN_COVERAGE = 0.75

TRIM_TOP_DB = 20.0
TRIM_FRAME = 2048
TRIM_HOP = 512
_AMIN_POWER = 1e-10  # librosa's amplitude_to_db floor (amin 1e-5, squared)


# Upstream checks the clip's duration only, so 28 s of silence and 3 s of speech pass its 30 s minimum; the encoder
# then sees the 3 s that `trim_silence` keeps. Below this much sound the voice is made (as upstream would) with a
# warning: half the minimum is where a reference stops being mostly speech.
MIN_SOUND_S = MIN_REFERENCE_SECONDS / 2


class ReferenceTooShort(AudioError):
    """A speaker reference shorter than MetaVoice's 30-second minimum."""


def as_mono_float32(audio: np.ndarray) -> np.ndarray:
    """Validate a reference clip and return it as float32 samples.

    Accepts a 1-D array of floats (cast to float32, the precision librosa reads files in) or of int16, scaled by
    1/32768: the value soundfile (and so librosa) gives 16-bit PCM read as float32, so a wav's int16 samples give
    the same result as the file. Other integer types (their full scale is ambiguous), 2-D arrays (multi-channel:
    average the channels first), empty, non-finite and all-zero input are refused with an `AudioError`."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise AudioError(f"reference audio must be one channel of samples (shape (n,)), got shape {audio.shape}")
    if audio.size == 0:
        raise AudioError("reference audio is empty")
    if audio.dtype == np.int16:
        audio = audio.astype(np.float32) / np.float32(32768)
    elif not np.issubdtype(audio.dtype, np.floating):
        raise AudioError(f"reference audio must be float or int16 samples, got {audio.dtype}")
    audio = audio.astype(np.float32, copy=False)
    bad = np.count_nonzero(~np.isfinite(audio))
    if bad:
        raise AudioError(f"reference audio has {bad} NaN or infinite samples")
    if carries_no_sound(audio):
        raise AudioError(f"reference audio is silent (no sample departs from the clip's mean by more than "
                         f"{SILENCE_FLOOR:g}: silence or a constant level)")
    return audio


def _check_rate(sample_rate: int) -> int:
    if (isinstance(sample_rate, (bool, np.bool_)) or not isinstance(sample_rate, Real)
            or not math.isfinite(sample_rate) or int(sample_rate) != sample_rate or sample_rate <= 0):
        raise AudioError(f"sample rate must be a positive integer, got {sample_rate!r}")
    if not MIN_REFERENCE_RATE <= sample_rate <= MAX_REFERENCE_RATE:
        raise AudioError(f"sample rate {int(sample_rate)} Hz is outside {MIN_REFERENCE_RATE}–{MAX_REFERENCE_RATE} Hz "
                         "for a speaker reference")
    return int(sample_rate)


def reference_duration(n_samples: int, sample_rate: int) -> float:
    """Upstream's measured duration: the length of the clip after librosa.load's resampling to 22,050 Hz (which
    fixes it to ``ceil(n * 22050 / rate)`` samples), in seconds; within 1/22050 s of ``n / rate``."""
    return math.ceil(n_samples * CHECK_SAMPLE_RATE / sample_rate) / CHECK_SAMPLE_RATE


def check_reference_duration(audio: np.ndarray, sample_rate: int, minimum_s: float = MIN_REFERENCE_SECONDS) -> float:
    """Upstream's ``check_audio_file``: the reference's duration in seconds, or `ReferenceTooShort`."""
    duration = reference_duration(len(audio), _check_rate(sample_rate))
    if duration < minimum_s:
        raise ReferenceTooShort(f"speaker reference is {duration:.2f} s long; MetaVoice needs at least "
                                f"{minimum_s:g} s of the speaker")
    return duration


def resample_to_16k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``librosa.load(..., sr=16000)`` after reading: soxr HQ, length ``ceil(n * 16000 / rate)``, float32 mono."""
    audio = as_mono_float32(audio)
    sample_rate = _check_rate(sample_rate)
    if sample_rate == SAMPLE_RATE:
        return audio
    out = soxr.resample(audio, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
    # librosa.resample's util.fix_length: zero-pad or cut to the exact ratio
    length = math.ceil(len(audio) * SAMPLE_RATE / sample_rate)
    if len(out) < length:
        return np.pad(out, (0, length - len(out)))
    return out[:length]


def trim_silence(wav: np.ndarray, top_db: float = TRIM_TOP_DB) -> tuple[int, int]:
    """``librosa.effects.trim(wav, top_db)``'s kept range [start, end) in samples."""
    half = TRIM_FRAME // 2
    padded = np.pad(np.asarray(wav, dtype=np.float64), (half, half))  # rms(center=True, pad_mode="constant")
    frames = np.lib.stride_tricks.sliding_window_view(padded, TRIM_FRAME)[::TRIM_HOP]
    power = np.einsum("ij,ij->i", frames, frames) / TRIM_FRAME  # rms², what amplitude_to_db compares
    # amplitude_to_db(rms, ref=np.max): 10·log10 of the floored powers, loudest frame as 0 dB
    with np.errstate(divide="ignore"):
        db = 10 * np.log10(np.maximum(_AMIN_POWER, power)) - 10 * np.log10(max(_AMIN_POWER, power.max()))
    loud = np.flatnonzero(db > -top_db)
    if loud.size == 0:
        return 0, 0
    return int(loud[0]) * TRIM_HOP, min(len(wav), (int(loud[-1]) + 1) * TRIM_HOP)


def partial_slices(n_samples: int, rate: float = PARTIAL_RATE,
                   min_coverage: float = MIN_COVERAGE) -> tuple[np.ndarray, np.ndarray]:
    """Upstream's ``compute_partial_slices``: (wav slices, mel slices) as int64 ``[k, 2]`` rows of [start, stop).

    Windows of 160 frames start every ``round(16000 / rate / 160)`` frames; the last one is dropped when less
    than `min_coverage` of it is real audio, unless it is the only one."""
    n_frames = (n_samples + 1 + HOP_LENGTH - 1) // HOP_LENGTH  # ceil((n + 1) / 160)
    frame_step = int(round(SAMPLE_RATE / rate / HOP_LENGTH))  # half-to-even, as np.round
    steps = max(1, n_frames - PARTIAL_FRAMES + frame_step + 1)
    starts = np.arange(0, steps, frame_step, dtype=np.int64)
    mel = np.stack([starts, starts + PARTIAL_FRAMES], axis=1)
    wav = mel * HOP_LENGTH
    last_start, last_stop = wav[-1]
    coverage = (n_samples - last_start) / (last_stop - last_start)
    if coverage < min_coverage and len(mel) > 1:
        mel, wav = mel[:-1], wav[:-1]
    return wav, mel


def padded_length(n_samples: int, wav_slices: np.ndarray) -> int:
    """``embed_utterance``'s padding: zeros up to the last slice's end when it reaches the end of the audio."""
    return max(n_samples, int(wav_slices[-1, 1]))


def periodic_hann(n: int) -> np.ndarray:
    """scipy's ``get_window("hann", n)`` (fftbins=True), librosa's STFT window."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


# Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above; written with
# librosa's constants and operation order so the band edges round as its do
_MEL_F_SP = 200.0 / 3
_MEL_MIN_LOG_HZ = 1000.0
_MEL_MIN_LOG_MEL = _MEL_MIN_LOG_HZ / _MEL_F_SP
_MEL_LOG_STEP = math.log(6.4) / 27.0


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    logarithmic = _MEL_MIN_LOG_MEL + np.log(np.maximum(hz, _MEL_MIN_LOG_HZ) / _MEL_MIN_LOG_HZ) / _MEL_LOG_STEP
    return np.where(hz >= _MEL_MIN_LOG_HZ, logarithmic, hz / _MEL_F_SP)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    logarithmic = _MEL_MIN_LOG_HZ * np.exp(_MEL_LOG_STEP * (np.maximum(mel, _MEL_MIN_LOG_MEL) - _MEL_MIN_LOG_MEL))
    return np.where(mel >= _MEL_MIN_LOG_MEL, logarithmic, _MEL_F_SP * mel)


def mel_filterbank(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """``librosa.filters.mel(sr, n_fft, n_mels)`` (0 Hz to Nyquist, Slaney scale and area norm), float32
    ``[n_mels, n_fft // 2 + 1]``."""
    fft_hz = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (fft_hz - lower) / (centre - lower)
    falling = (upper - fft_hz) / (upper - centre)
    triangles = np.maximum(0, np.minimum(rising, falling))
    # librosa stores the triangles in float32 before scaling each to unit area (2 / bandwidth)
    return (triangles.astype(np.float32) * (2 / (upper - lower))).astype(np.float32)


_MEL_BASIS = mel_filterbank()
_WINDOW = periodic_hann(N_FFT)


def mel_spectrogram(wav: np.ndarray) -> np.ndarray:
    """``wav_to_mel_spectrogram``: power (not log) mel spectrogram, float32 ``[1 + len // 160, 40]``.

    STFT as librosa 0.10: 400-sample periodic Hann, hop 160, centred with zero padding; |X|² through the mel
    filterbank. Computed in float64 (librosa rounds to float32 on the way, ~1e-7 of the maximum)."""
    padded = np.pad(np.asarray(wav, dtype=np.float64), (N_FFT // 2, N_FFT // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH]
    spectrum = np.fft.rfft(frames * _WINDOW, axis=1)
    power = spectrum.real ** 2 + spectrum.imag ** 2
    return (power @ _MEL_BASIS.T.astype(np.float64)).astype(np.float32)


def partials_from_16k(wav: np.ndarray) -> np.ndarray:
    """The chain after resampling (trim, slices, padding, mel, cut): float32 ``[n_partials, 160, 40]``."""
    start, end = trim_silence(wav)
    return partials_of_sound(np.asarray(wav, dtype=np.float32)[start:end])


def partials_of_sound(wav: np.ndarray) -> np.ndarray:
    """The chain after trimming (slices, padding, mel, cut) of a float32 16 kHz clip."""
    wav_slices, mel_slices = partial_slices(len(wav))
    wav = np.pad(wav, (0, padded_length(len(wav), wav_slices) - len(wav)))
    mel = mel_spectrogram(wav)
    return np.stack([mel[lo:hi] for lo, hi in mel_slices])


def speaker_partials(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Reference clip (see `as_mono_float32`) at any rate → the LSTM's input mels ``[n_partials, 160, 40]``."""
    return partials_from_16k(resample_to_16k(audio, sample_rate))


def combine_partials(partial_embeds: np.ndarray) -> np.ndarray:
    """Mean of the partial embeddings ``[n, 256]``, L2-normalised: the speaker embedding ``[256]`` (float32)."""
    partial_embeds = np.asarray(partial_embeds, dtype=np.float64)
    if partial_embeds.ndim != 2 or partial_embeds.shape[0] == 0:
        raise ValueError(f"expected partial embeddings [n, dim] with n > 0, got shape {partial_embeds.shape}")
    mean = partial_embeds.mean(axis=0)
    norm = np.linalg.norm(mean)
    if not np.isfinite(norm) or norm == 0:
        raise AudioError("the speaker encoder gave no usable embedding for this reference (zero or non-finite)")
    return (mean / norm).astype(np.float32)
