"""GPT-SoVITS reference clips, prepared as upstream prepares them: 16 kHz for HuBERT (3–10 s) and the model's rate,
peak-limited, for the spectrogram and the speaker embedding."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..audio import SILENCE_FLOOR, audio_duration, carries_no_sound, read_audio, resample_sinc, resample_soxr
from ..errors import AudioError

HUBERT_RATE = 16000
REFERENCE_MIN_S, REFERENCE_MAX_S = 3.0, 10.0
AUX_MIN_S = 0.5  # shortest extra timbre clip (not an upstream limit: a few spectrogram frames)
# longest extra timbre clip (upstream has no limit): a minute gives the mean timbre already, and longer clips only
# cost memory (the spectrogram and the speaker model's features grow with the clip)
AUX_MAX_S = 60.0
RESAMPLING_SLACK_S = 0.1  # a clip's length in its own rate may differ this much from its length at 16 kHz


def normalize_reference_peak(audio: np.ndarray) -> np.ndarray:
    """Upstream's reference preparation at 32 kHz: if the peak exceeds 1, divide by min(2, peak)."""
    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 1.0:
        audio = audio / np.float32(min(2.0, peak))
    return audio


def load_timbre_clip(path: str | Path, sample_rate: int, audio_rate: tuple | None = None) -> np.ndarray:
    """A clip at the model's rate for the spectrogram (and speaker embedding) as upstream prepares it: mono,
    sinc-resampled, divided by min(2, peak) when it clips. From half a second to a minute (upstream's extra
    references have no length limit; ours is checked before the file is decoded)."""
    if audio_rate is None:
        seconds = audio_duration(path)
        if seconds > AUX_MAX_S:
            raise AudioError(f"{path}: clip is {seconds:.1f} s long; a timbre clip may be at most {AUX_MAX_S:g} s")
    audio, rate = audio_rate or read_audio(path)
    if audio.shape[0] < AUX_MIN_S * rate:
        raise AudioError(f"{path}: clip is {audio.shape[0] / rate:.2f} s long; a timbre clip needs at least "
                         f"{AUX_MIN_S:g} s")
    if carries_no_sound(audio):
        raise AudioError(f"{path}: reference is silent (no sample departs from the clip's mean by more than "
                         f"{SILENCE_FLOOR:g}: silence or a constant level)")
    return normalize_reference_peak(resample_sinc(audio, rate, sample_rate))


def load_reference(path: str | Path, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """A reference clip as (16 kHz audio for HuBERT, `sample_rate` audio for the spectrogram), with upstream's checks
    (a clip far too long is refused from its header, before it is decoded)."""
    seconds = audio_duration(path)
    if seconds <= REFERENCE_MAX_S + RESAMPLING_SLACK_S:
        audio, rate = read_audio(path)
        wav16k = resample_soxr(audio, rate, HUBERT_RATE)
        seconds = wav16k.shape[0] / HUBERT_RATE
    if not REFERENCE_MIN_S <= seconds <= REFERENCE_MAX_S:
        raise AudioError(f"{path}: reference is {seconds:.2f} s long; GPT-SoVITS needs {REFERENCE_MIN_S:g}–"
                         f"{REFERENCE_MAX_S:g} s of speech")
    return wav16k, load_timbre_clip(path, sample_rate, (audio, rate))
