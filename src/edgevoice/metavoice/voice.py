"""A MetaVoice voice: the speaker embedding of a ≥ 30 s reference, saved once and reused.

An `.npz` of plain arrays with a JSON header (no pickles). The embedding depends only on the speaker encoder, so a
voice is accepted by every bundle made with the same `speaker_encoder.pt` (any precision, any GPT weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import VoiceError, abbreviated
from ..families import check_voice_family
from ..npzfile import atomic_savez, read_npz
from .options import FAMILY

VOICE_FORMAT = "edgevoice-voice"
VOICE_FORMAT_VERSION = 1
MAX_VOICE_FILE_BYTES = 1 << 20  # one embedding of a few hundred floats is ~3 KB (docs/input.md says 1 MiB)
# The speaker encoder's output is L2-normalised (float32 rounding leaves ~1e-7); a norm off by more than this was
# scaled or edited, and stage 1 and 2, trained on unit vectors, would be conditioned on something they never saw
UNIT_NORM_TOLERANCE = 0.01


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
        header, arrays = read_npz(path, "voice file", VoiceError, max_bytes=MAX_VOICE_FILE_BYTES)
        if not isinstance(header.get("family"), str):  # missing, or a list or object that names no family
            raise VoiceError(f"{path}: not an edgevoice voice file (its header names no model family)")
        check_voice_family(header, path, FAMILY)
        if header.get("format") != VOICE_FORMAT or "speaker_embedding" not in arrays:
            raise VoiceError(f"{path}: not an edgevoice voice file")
        if header["family"] != FAMILY:
            raise VoiceError(f"{path}: this voice was made for a {header['family']!r} model, not MetaVoice")
        version = header.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise VoiceError(f"{path}: corrupt voice file (its format version must be an integer, not "
                             f"{abbreviated(repr(version))})")
        if version != VOICE_FORMAT_VERSION:
            raise VoiceError(f"{path}: voice format version {version} is not supported")
        embedding = arrays["speaker_embedding"]
        if embedding.ndim != 1 or embedding.dtype != np.float32 or not np.isfinite(embedding).all():
            raise VoiceError(f"{path}: corrupt voice file (the speaker embedding is not a finite float32 vector)")
        norm = float(np.linalg.norm(embedding.astype(np.float64)))
        if not abs(norm - 1) <= UNIT_NORM_TOLERANCE:
            raise VoiceError(f"{path}: corrupt voice file (the speaker embedding has length {norm:.4g}; a speaker "
                             "embedding is a unit vector)")
        # what ties the embedding to a speaker encoder ("" where the bundle recorded no source hashes)
        encoder = header.get("speaker_encoder_sha256")
        if not isinstance(encoder, str):
            raise VoiceError(f"{path}: corrupt voice file (its header names no speaker encoder)")
        seconds = header.get("reference_seconds", 0.0)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < 1e7:
            raise VoiceError(f"{path}: corrupt voice file (reference_seconds {abbreviated(repr(seconds))} is not a "
                             "duration)")
        return cls(embedding, encoder, str(header.get("source_audio_sha256", "")), float(seconds))
