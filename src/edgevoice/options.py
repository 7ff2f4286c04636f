"""What every family's synthesis options share: defaults owned by the model, overrides checked by name.

A family declares its options as a frozen dataclass deriving from `ModelOptions`. The fields listed in
`MODEL_DEFAULTS` are written into the bundle's manifest at export (`to_manifest`) and read back at load
(`from_manifest`), so the bundle is the one source of a model's defaults; the CLI passes only what the user gave
(`with_overrides`). Per-call fields (seed, token caps) stay out of the manifest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from numbers import Integral, Real

import numpy as np

from .errors import OptionsError, SynthesisError, TextError, abbreviated

SPEED_RANGE = (0.25, 4.0)  # speech rate, for every family that takes one (OpenAI's speech API's range)


def check_speed(speed) -> float:
    """`speed` as a float, or a one-line OptionsError unless it is a finite number in SPEED_RANGE (a family's options
    and any stage that takes a bare speed share this check)."""
    if isinstance(speed, (bool, np.bool_)) or not isinstance(speed, Real):
        raise OptionsError(f"speed must be a number, not {type(speed).__name__} {speed!r}")
    if not math.isfinite(speed):
        raise OptionsError(f"speed must be a finite number, not {speed}")
    if not SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]:
        raise OptionsError(f"speed {speed} is outside {SPEED_RANGE[0]}–{SPEED_RANGE[1]}")
    return float(speed)


@dataclass(frozen=True)
class ModelOptions:
    MODEL_DEFAULTS = ()  # names of the fields the manifest carries

    def __post_init__(self):
        for item in fields(self):
            value = getattr(self, item.name)
            _check_type(item, value)
            if isinstance(value, Real) and not isinstance(value, Integral) and not math.isfinite(value):
                raise OptionsError(f"{item.name} must be a finite number, not {value}")
            if item.name == "seed" and value is not None and not 0 <= value < 2 ** 63:
                raise OptionsError(f"seed must be a non-negative integer, not {value}")

    def to_manifest(self) -> dict:
        return {name: getattr(self, name) for name in self.MODEL_DEFAULTS}

    @classmethod
    def from_manifest(cls, defaults: dict):
        """The options a bundle declares; keys this version does not know are ignored (newer exporters)."""
        known = {item.name for item in fields(cls)} & set(cls.MODEL_DEFAULTS)
        return cls(**{k: v for k, v in defaults.items() if k in known})

    def with_overrides(self, **given):
        """A copy with the given options changed; None means "not given". Unknown names are an OptionsError."""
        known = {item.name for item in fields(self)}
        unknown = sorted(k for k, v in given.items() if v is not None and k not in known)
        if unknown:
            raise OptionsError(f"option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                               f"do{'' if len(unknown) > 1 else 'es'} not apply to this model")
        given = {k: v for k, v in given.items() if v is not None}
        self.check_given(given)
        return replace(self, **given)

    def check_given(self, given: dict) -> None:
        """A family's check of options given together that contradict each other (each is checked alone by
        `__post_init__`)."""


# What a field's annotation admits (annotations are strings here: `from __future__ import annotations`); numpy
# scalars are numbers too, booleans are not
_ADMITTED = {"int": Integral, "float": Real, "bool": (bool, np.bool_), "str": str}


def _check_type(item, value) -> None:
    """Refuse a value of the wrong kind with a one-line OptionsError (instead of a TypeError deep inside)."""
    kinds = [kind.strip() for kind in str(item.type).split("|")]
    name, admitted = kinds[0], _ADMITTED.get(kinds[0])
    if admitted is None:
        return  # other types are not options
    if value is None:
        if "None" not in kinds:
            raise OptionsError(f"{item.name} must be {'a' if name != 'int' else 'an'} {name}, not None")
        return  # None where the annotation allows it is checked by the family
    if not isinstance(value, admitted) or (name != "bool" and isinstance(value, (bool, np.bool_))):
        raise OptionsError(f"{item.name} must be {'a' if name != 'int' else 'an'} {name}, not "
                           f"{type(value).__name__} {value!r}")


@dataclass
class AudioChunk:
    """One synthesised piece (a sentence or group of sentences) with its trailing pause."""

    text: str
    audio: np.ndarray  # float32 in [-1, 1]
    sample_rate: int
    tokens: np.ndarray | None = None  # the semantic tokens behind it, for token-based families

    def __post_init__(self):
        # every family's audio leaves through here: NaN would be written as silence (or noise) without a word
        bad = int(np.count_nonzero(~np.isfinite(self.audio)))
        if bad:
            raise SynthesisError(f"the model produced {bad} of {self.audio.size} samples as NaN or infinity for "
                                 f"{abbreviated(self.text, quoted=True)}: an input far outside what it was trained on "
                                 "(a hand-edited voice or embedding?)")


def joined_audio(chunks) -> np.ndarray:
    """A text's audio from its chunks (`Synthesizer.stream`); none, or nothing but empty ones (options that stop
    every sentence before its first sample), is a `TextError`: every family's `synthesize` returns sound or fails."""
    parts = [chunk.audio for chunk in chunks]
    if not sum(part.size for part in parts):
        raise TextError("the model produced no audio for this text with these options")
    return np.concatenate(parts)
