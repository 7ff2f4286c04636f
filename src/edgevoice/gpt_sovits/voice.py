"""Voice profiles: everything derived from a reference clip and its transcript, saved once, reused per synthesis.

A voice made without a transcript is reference-free (upstream's `ref_free`): no prompt tokens or phones, the
GPT starts from the target text alone and only the timbre (`ge`) comes from the clip.

A profile is an `.npz` of plain arrays (no pickles) plus a JSON header naming the model it was made with, so it
is refused by a bundle of other weights (precision variants of the same weights accept it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import VoiceError, abbreviated
from ..families import check_voice_family
from ..npzfile import atomic_savez, read_npz
from .frontend import LANGUAGES
from .options import FAMILY
from .reference import REFERENCE_MAX_S

VOICE_FORMAT = "edgevoice-voice"
VOICE_FORMAT_VERSION = 1
BERT_FEATURES = 1024
# A reference of at most 10 s, plus the 0.6 s of silence appended for HuBERT, gives 25 semantic tokens a second:
# 265 tokens. Twice that is the limit: a voice file with more was not made from a reference clip, and the GPT's
# memory grows with the square of the prompt (a 200,000-token prompt would ask for 40 GB).
PROMPT_TOKENS_PER_S = 25
MAX_PROMPT_TOKENS = 2 * math.ceil(PROMPT_TOKENS_PER_S * (REFERENCE_MAX_S + 0.6))
MAX_PROMPT_PHONES = 1024  # the transcript of a 10 s clip has about 150; 1024 is a minute of speech
MAX_VOICE_FILE_BYTES = 64 << 20  # a voice at the limits above is about 4 MB
# BERT's hidden states and the reference encoder's `ge` lie within a few tens of zero; values past this were
# written by hand (a probe's `ge` × 1e30 turned every sample into NaN)
MAX_FEATURE = 1e4
_ARRAYS = ("prompt_tokens", "prompt_phone_ids", "prompt_bert", "ge")
_REQUIRED_HEADER = ("text", "language", "norm_text", "model_fingerprint", "family", "upstream_version")
_TEXT_FIELDS = _REQUIRED_HEADER + ("source_audio_sha256",)


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

    def __post_init__(self):
        """Arrays of the right kinds, ranks and lengths (a bundle checks ids and `ge` against its own sizes:
        `Synthesizer.check_voice`); one-line `VoiceError`s otherwise."""
        self.prompt_tokens = _ids(self.prompt_tokens, "prompt_tokens", MAX_PROMPT_TOKENS)
        self.prompt_phone_ids = _ids(self.prompt_phone_ids, "prompt_phone_ids", MAX_PROMPT_PHONES)
        self.prompt_bert = _floats(self.prompt_bert, "prompt_bert", 2)
        self.ge = _floats(self.ge, "ge", 3)
        if self.prompt_bert.shape != (BERT_FEATURES, self.prompt_phone_ids.size):
            raise VoiceError(f"prompt_bert has shape {list(self.prompt_bert.shape)}, not [{BERT_FEATURES}, "
                             f"{self.prompt_phone_ids.size}] (BERT features do not match the phones)")
        if self.ge.shape[0] != 1 or self.ge.shape[2] != 1:
            raise VoiceError(f"ge has shape {list(self.ge.shape)}, not [1, channels, 1]")
        if (self.prompt_tokens.size == 0) != (self.prompt_phone_ids.size == 0):
            raise VoiceError(f"the voice has {self.prompt_tokens.size} prompt tokens but {self.prompt_phone_ids.size} "
                             "transcript phones: both come from the reference (none in a reference-free voice)")
        for name in _TEXT_FIELDS:
            if not isinstance(getattr(self, name), str):
                raise VoiceError(f"{name} must be text, not {type(getattr(self, name)).__name__}")
        if not isinstance(self.aux_audio_sha256, list) or not all(isinstance(h, str) for h in self.aux_audio_sha256):
            raise VoiceError("aux_audio_sha256 must be a list of hashes")
        if self.language not in LANGUAGES:  # the transcript's language, as `create_voice` was told it
            raise VoiceError(f"the voice's language {abbreviated(repr(self.language))} is not one of "
                             f"{', '.join(LANGUAGES)}")

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
        return atomic_savez(path, header=self.header(), error=VoiceError, **self.arrays())

    @classmethod
    def load(cls, path: str | Path) -> "Voice":
        header, arrays = read_npz(path, "voice file", VoiceError, max_bytes=MAX_VOICE_FILE_BYTES)
        check_voice_family(header, path, FAMILY)
        missing = [k for k in _ARRAYS if k not in arrays]
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
        missing = [k for k in _REQUIRED_HEADER if k not in header] + [k for k in _ARRAYS if k not in arrays]
        if missing:
            raise VoiceError(f"{source}: corrupt voice file (no {', '.join(missing)})")
        try:
            return cls(**{k: arrays[k] for k in _ARRAYS},
                       text=header["text"], language=header["language"], norm_text=header["norm_text"],
                       model_fingerprint=header["model_fingerprint"], family=header["family"],
                       upstream_version=header["upstream_version"],
                       source_audio_sha256=header.get("source_audio_sha256", ""),
                       aux_audio_sha256=header.get("aux_audio_sha256", []))
        except VoiceError as exc:
            raise VoiceError(f"{source}: corrupt voice file ({exc})") from None


def _ids(values, name: str, limit: int) -> np.ndarray:
    """A 1-D array of at most `limit` integer ids (their range depends on the bundle)."""
    array = np.asarray(values)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise VoiceError(f"{name} must be a list of integers, not a {array.dtype} array of shape "
                         f"{list(array.shape)}")
    if array.size > limit:
        raise VoiceError(f"{name} has {array.size} entries; a voice has at most {limit}")
    if array.size and (array.min() < 0 or array.max() > np.iinfo(np.int64).max):
        raise VoiceError(f"{name} has negative or oversized ids")
    return array.astype(np.int64)


def _floats(values, name: str, ndim: int) -> np.ndarray:
    """A finite float array of rank `ndim`."""
    array = np.asarray(values)
    if array.dtype.kind != "f" or array.ndim != ndim:
        raise VoiceError(f"{name} must be a {ndim}-D float array, not a {array.dtype} array of shape "
                         f"{list(array.shape)}")
    if not np.isfinite(array).all():
        raise VoiceError(f"{name} contains NaN or infinite values")
    if array.size and np.abs(array).max() > MAX_FEATURE:
        raise VoiceError(f"{name} has values up to {np.abs(array).max():.3g}; a model makes them within ±{MAX_FEATURE:g}")
    return array.astype(np.float32)
