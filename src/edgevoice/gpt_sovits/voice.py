"""Voice profiles: everything derived from a reference clip and its transcript, saved once, reused per synthesis.

A voice made without a transcript is reference-free (upstream's `ref_free`): no prompt tokens or phones, the
GPT starts from the target text alone and only the timbre (`ge`) comes from the clip.

A profile is an `.npz` of plain arrays (no pickles) plus a JSON header naming the model it was made with, so it
is refused by a bundle of other weights (precision variants of the same weights accept it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import VoiceError
from ..npzfile import atomic_savez, read_npz

VOICE_FORMAT = "edgevoice-voice"
VOICE_FORMAT_VERSION = 1


@dataclass
class Voice:
    prompt_tokens: np.ndarray  # [T_p] int64, semantic tokens of the reference
    prompt_phone_ids: np.ndarray  # [N_p] int64, phones of the transcript
    prompt_bert: np.ndarray  # [1024, N_p] float32, BERT features of the transcript (zeros outside Chinese)
    ge: np.ndarray  # [1, gin, 1] float32, reference embedding from the spectrogram
    text: str
    language: str
    norm_text: str
    model_fingerprint: str
    family: str
    upstream_version: str
    source_audio_sha256: str = ""
    aux_audio_sha256: list[str] = field(default_factory=list)  # extra timbre clips averaged into `ge`

    @property
    def reference_free(self) -> bool:
        return self.prompt_tokens.size == 0

    def header(self) -> dict:
        return {"format": VOICE_FORMAT, "format_version": VOICE_FORMAT_VERSION, "text": self.text,
                "language": self.language, "norm_text": self.norm_text, "model_fingerprint": self.model_fingerprint,
                "family": self.family, "upstream_version": self.upstream_version,
                "source_audio_sha256": self.source_audio_sha256, "aux_audio_sha256": list(self.aux_audio_sha256)}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"prompt_tokens": self.prompt_tokens.astype(np.int64),
                "prompt_phone_ids": self.prompt_phone_ids.astype(np.int64),
                "prompt_bert": self.prompt_bert.astype(np.float32), "ge": self.ge.astype(np.float32)}

    def save(self, path: str | Path) -> Path:
        """Write atomically (temporary file + rename)."""
        return atomic_savez(path, header=self.header(), **self.arrays())

    @classmethod
    def load(cls, path: str | Path) -> "Voice":
        header, arrays = read_npz(path, "voice file", VoiceError)
        missing = [k for k in ("prompt_tokens", "prompt_phone_ids", "prompt_bert", "ge") if k not in arrays]
        if missing:
            raise VoiceError(f"{path}: not an edgevoice voice file (no {', '.join(missing)})")
        return cls.from_parts(header, arrays, path)

    @classmethod
    def from_parts(cls, header: dict, arrays: dict[str, np.ndarray], source) -> "Voice":
        """A voice from its JSON header and arrays (as `save` writes them); `source` names them in errors."""
        if header.get("format") != VOICE_FORMAT:
            raise VoiceError(f"{source}: not an edgevoice voice file")
        if header.get("format_version") != VOICE_FORMAT_VERSION:
            raise VoiceError(f"{source}: voice format version {header.get('format_version')} is not supported; "
                             "create the voice again")
        if arrays["prompt_bert"].shape != (1024, arrays["prompt_phone_ids"].shape[0]):
            raise VoiceError(f"{source}: corrupt voice file (BERT features do not match the phones)")
        return cls(**arrays, text=header["text"], language=header["language"], norm_text=header["norm_text"],
                   model_fingerprint=header["model_fingerprint"], family=header["family"],
                   upstream_version=header["upstream_version"],
                   source_audio_sha256=header.get("source_audio_sha256", ""),
                   aux_audio_sha256=list(header.get("aux_audio_sha256", [])))
