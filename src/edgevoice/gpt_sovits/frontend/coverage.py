"""Which characters each language's front end reads; the others are dropped (English, Chinese) or become the
unknown phone (Japanese) without a word, so the synthesizer names them in a warning.

Rules per character, as the front ends behave (checked against them over every letter, digit and symbol of
Unicode in tests/test_text_input.py):

* English: letters whose base letter (without accents) is A–Z, and the digits 0–9;
* Chinese: the ideographs U+4E00–U+9FA5 (the normaliser's range), decimal digits of any script, A–Z in English
  runs, and the symbols the normaliser spells out (Greek letters, circled numbers, superscripts);
* Japanese: ideographs, kana and 々〆ヶ, full-width Ａ–Ｚ, decimal digits of any script, A–Z in English runs;
* auto reads what Chinese or Japanese reads.

A few ideographs in the Chinese range have no reading and are dropped all the same; they are not named.
"""

from __future__ import annotations

import unicodedata

from .en_normalize import SUPERSCRIPTS
from .errors import FrontendError
from .zh_normalize import SPELLED_SYMBOLS

_CHINESE_SYMBOLS = frozenset(SPELLED_SYMBOLS) | frozenset(SUPERSCRIPTS)
_JAPANESE_MARKS = frozenset("々〆ヶ")


def _english(char: str) -> bool:
    base = unicodedata.normalize("NFD", char)[0]
    return base.isascii() and base.isalnum()


def _decimal_digit(char: str) -> bool:
    return unicodedata.category(char) == "Nd"


def _chinese(char: str) -> bool:
    return ("\u4e00" <= char <= "\u9fa5" or (char.isascii() and char.isalnum()) or _decimal_digit(char)
            or char in _CHINESE_SYMBOLS)


def _japanese(char: str) -> bool:
    code = ord(char)
    ideograph = 0x3400 <= code <= 0x4DBF or 0x4E00 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF
    kana = 0x3041 <= code <= 0x30FF or 0xFF66 <= code <= 0xFF9F
    full_width_latin = 0xFF21 <= code <= 0xFF3A or 0xFF41 <= code <= 0xFF5A  # Open JTalk spells them out
    return (ideograph or kana or full_width_latin or char in _JAPANESE_MARKS or (char.isascii() and char.isalnum())
            or _decimal_digit(char))


_RULES = {"en": _english, "zh": _chinese, "all_zh": _chinese, "ja": _japanese, "all_ja": _japanese,
          "auto": lambda char: _chinese(char) or _japanese(char)}


def reads(char: str, language: str) -> bool:
    """Whether the front end for `language` reads `char` (a letter, digit or symbol)."""
    try:
        return _RULES[language](char)
    except KeyError:
        raise FrontendError(f"unsupported language {language!r}: expected one of {', '.join(_RULES)}") from None
