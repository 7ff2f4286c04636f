"""A MetaVoice voice: the speaker embedding of a ≥ 30 s reference, saved once and reused.

An `.npz` of plain arrays with a JSON header (no pickles). The embedding depends only on the speaker encoder, so a
voice is accepted by every bundle made with the same `speaker_encoder.pt` (any precision, any GPT weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import VoiceError
from ..families import check_voice_family
from ..npzfile import atomic_savez, read_npz
from .options import FAMILY

VOICE_FORMAT = "edgevoice-voice"
VOICE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class SpeakerVoice:
    embedding: np.ndarray  # [dim] float32, unit length
    speaker_encoder_sha256: str  # of the speaker encoder checkpoint that made it
    source_audio_sha256: str = ""
    reference_seconds: float = 0.0

    def header(self) -> dict:
        return {"format": VOICE_FORMAT, "format_version": VOICE_FORMAT_VERSION, "family": FAMILY,
                "speaker_encoder_sha256": self.speaker_encoder_sha256,
                "source_audio_sha256": self.source_audio_sha256, "reference_seconds": self.reference_seconds}

    def summary(self) -> str:
        return f"speaker embedding from {self.reference_seconds:.1f} s of reference"

    def save(self, path: str | Path) -> Path:
        return atomic_savez(path, header=self.header(), speaker_embedding=self.embedding.astype(np.float32))

    @classmethod
    def load(cls, path: str | Path) -> "SpeakerVoice":
        header, arrays = read_npz(path, "voice file", VoiceError)
        check_voice_family(header, path, FAMILY)
        if header.get("format") != VOICE_FORMAT or "speaker_embedding" not in arrays:
            raise VoiceError(f"{path}: not an edgevoice voice file")
        if header.get("family") != FAMILY:
            raise VoiceError(f"{path}: this voice was made for a {header.get('family')!r} model, not MetaVoice")
        if header.get("format_version") != VOICE_FORMAT_VERSION:
            raise VoiceError(f"{path}: voice format version {header.get('format_version')} is not supported")
        embedding = arrays["speaker_embedding"]
        if embedding.ndim != 1 or embedding.dtype != np.float32 or not np.isfinite(embedding).all():
            raise VoiceError(f"{path}: corrupt voice file (the speaker embedding is not a finite float32 vector)")
        seconds = header.get("reference_seconds", 0.0)
        return cls(embedding, str(header.get("speaker_encoder_sha256", "")),
                   str(header.get("source_audio_sha256", "")), float(seconds) if isinstance(seconds, (int, float))
                   else 0.0)
