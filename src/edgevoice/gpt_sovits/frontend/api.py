"""Public entry point: text + language -> phone ids (+ word2ph for Chinese).

`phonemize` mirrors upstream `TextPreprocessor.get_phones_and_bert` (without BERT): collapse
space runs, cut the text into language segments, run each segment through its language's
normalisation and G2P, concatenate, and retry once with "." in front when fewer than 6
phones came out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import FrontendError
from .symbols import symbol_to_id

LANGUAGES = ("en", "zh", "ja", "all_zh", "all_ja", "auto")
MIN_PHONES = 6
MIN_ENGLISH_PHONES = 4


@dataclass
class Segment:
    """One language run of the input, processed by that language's front-end."""

    lang: str  # "en", "zh" or "ja"
    text: str  # the segment as cut from the input
    norm_text: str
    phones: list[str]
    phone_ids: list[int]
    word2ph: list[int] | None = None  # Chinese only: phones per character of norm_text


@dataclass
class PhonemizeResult:
    text: str
    language: str
    version: str
    norm_text: str
    phones: list[str]
    phone_ids: list[int]
    segments: list[Segment] = field(default_factory=list)
    retried_with_dot: bool = False

    @property
    def word2ph(self) -> list[int] | None:
        """Phones per character of `norm_text` when every segment is Chinese, else None.

        For mixed input use the per-segment values (BERT runs on Chinese segments only).
        """
        if self.segments and all(s.word2ph is not None for s in self.segments):
            return [n for s in self.segments for n in s.word2ph]
        return None


def _clean_english(text: str, version: str) -> tuple[list[str], None, str]:
    from .en_g2p import g2p_english
    from .en_normalize import normalize_english

    norm_text = normalize_english(text)
    phones = g2p_english(norm_text)
    if len(phones) < MIN_ENGLISH_PHONES:
        phones = [","] + phones
    return phones, None, norm_text


def _clean_chinese(text: str, version: str) -> tuple[list[str], list[int], str]:
    from .zh_g2p import clean_chinese

    # v1 models used upstream's older `chinese` module: the same rules without erhua merging.
    return clean_chinese(text, merge_erhua=version != "v1")


def _clean_japanese(text: str, version: str) -> tuple[list[str], None, str]:
    from .ja_g2p import clean_japanese

    return clean_japanese(text)


_CLEANERS = {"en": _clean_english, "zh": _clean_chinese, "ja": _clean_japanese}


def clean_segment(text: str, lang: str, version: str = "v2") -> Segment:
    """Normalise and G2P one single-language segment (upstream `clean_text` + ids)."""
    if lang not in _CLEANERS:
        name = {"ko": "Korean", "yue": "Cantonese"}.get(lang, repr(lang))
        raise FrontendError(f"{name} text is not supported by this front-end (only en, zh, ja): {text!r}")
    phones, word2ph, norm_text = _CLEANERS[lang](text, version)
    table = symbol_to_id(version)
    phones = [p if p in table else "UNK" for p in phones]
    return Segment(lang, text, norm_text, phones, [table[p] for p in phones], word2ph)


def split_by_language(text: str, language: str) -> list[tuple[str, str]]:
    """(lang, text) runs for a language argument, as upstream's routing does."""
    if language == "en":
        return [("en", text)]
    from .segmenter import segment_text

    if language in ("all_zh", "all_ja"):
        return segment_text(text, default_lang=language[4:])
    if language == "auto":
        return segment_text(text, default_lang=None)
    if language in ("zh", "ja"):
        # Mixed with English: every non-English run takes the user's language.
        merged: list[tuple[str, str]] = []
        for lang, piece in segment_text(text, default_lang=None):
            lang = "en" if lang == "en" else language
            if merged and merged[-1][0] == lang:
                merged[-1] = (lang, merged[-1][1] + piece)
            else:
                merged.append((lang, piece))
        return merged
    raise FrontendError(
        f"unsupported language {language!r}: expected one of {', '.join(LANGUAGES)}"
    )


def _phonemize_once(text: str, language: str, version: str) -> PhonemizeResult:
    segments = [clean_segment(piece, lang, version) for lang, piece in split_by_language(text, language)]
    for segment in segments:
        if segment.lang == "zh" and not segment.norm_text:
            # Upstream fails here too (BERT of an empty Chinese segment).
            raise FrontendError(f"no readable Chinese text in {segment.text!r}")
    return PhonemizeResult(
        text=text,
        language=language,
        version=version,
        norm_text="".join(s.norm_text for s in segments),
        phones=[p for s in segments for p in s.phones],
        phone_ids=[i for s in segments for i in s.phone_ids],
        segments=segments,
    )


def phonemize(text: str, language: str, version: str = "v2") -> PhonemizeResult:
    """Phones of `text` for a GPT-SoVITS model of `version` ("v1" or "v2").

    `language`: "en", "zh", "ja" (that language mixed with English), "all_zh", "all_ja"
    (everything not plainly English in that language) or "auto" (script-based detection).
    Raises FrontendError (a ValueError) for unusable text.
    """
    if not isinstance(text, str):
        raise FrontendError(f"text must be a string, got {type(text).__name__}")
    symbol_to_id(version)  # validates the version early
    text = re.sub(r" {2,}", " ", text)
    result = _phonemize_once(text, language, version)
    if len(result.phone_ids) < MIN_PHONES:
        result = _phonemize_once("." + text, language, version)
        result.text = text
        result.retried_with_dot = True
    if not result.phone_ids:
        raise FrontendError(f"the text {text!r} yields no phones")
    return result
