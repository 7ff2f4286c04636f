"""Cut mixed text into language runs, as upstream's `LangSegmenter.getTexts` does.

Upstream builds on the `split_lang` package: the (stripped) text is cut into character-class
sections (CJK/kana, Hangul, digits, single punctuation marks, newlines, everything else);
punctuation joins the section before it (or the next one at the start); a run is then
labelled ``en`` when it is plainly English (an ASCII letter and only ASCII/general
punctuation/CJK-symbol/full-width characters), digit runs take the default language.

* With a default language (``all_zh`` / ``all_ja``) every other run takes that language.
  Upstream's language detector cannot change these labels (only the character rule
  decides), so this reproduces upstream exactly.
* Without one (``auto``) upstream asks a fastText model, which we do not ship. We decide by
  script instead: a CJK run containing kana is Japanese, other CJK runs are Chinese,
  Hangul is Korean (not supported), other non-English runs inherit a neighbour's language.
"""

from __future__ import annotations

import re

from .errors import FrontendError

# split_lang's punctuation set (each mark starts its own section).
_SECTION_MARKS = set("〜~,.;:!?，。！？；：、·([{<（【《〈「『“‘)]}>）】》〉」』”’\"-_——#$%&……￥'*+<=>?@[\\]^_`{|}~")
_PLAIN_ENGLISH_RE = re.compile(
    r"^(?=.*[A-Za-z])[A-Za-z0-9\s\u0020-\u007E\u2000-\u206F\u3000-\u303F\uFF00-\uFFEF]+$"
)
_KANA_RE = re.compile(r"[\u3040-\u30ff]")


def _char_class(char: str) -> str:
    code = ord(char)
    if 0x4E00 <= code <= 0x9FFF or 0x3040 <= code <= 0x30FF or char == "々":
        return "cjk"
    if 0xAC00 <= code <= 0xD7AF:
        return "hangul"
    if char.isdigit():
        return "digit"
    if char in _SECTION_MARKS:
        return "mark"
    if char in "\n\r":
        return "newline"
    if char.isspace():
        return "space"
    return "other"


def _sections(text: str) -> list[list[str]]:
    """[kind, text] sections; spaces stay with the section they follow."""
    sections: list[list[str]] = []
    for index, char in enumerate(text):
        kind = _char_class(char)
        if kind == "mark" and char == "'" and index > 0 and not text[index - 1].isspace():
            kind = "space"  # an apostrophe inside a word does not cut it
        if kind == "space" and sections:
            sections[-1][1] += char
        elif kind in ("mark", "newline") or not sections or sections[-1][0] != kind:
            sections.append([kind, char])
        else:
            sections[-1][1] += char
    return sections


def _attach_marks(sections: list[list[str]]) -> list[list[str]]:
    """Marks/newlines join the preceding run; leading ones join the following run."""
    runs: list[list[str]] = []
    pending = ""
    for kind, piece in sections:
        if kind in ("mark", "newline"):
            if runs:
                runs[-1][1] += piece
            else:
                pending += piece
            continue
        runs.append([kind, pending + piece])
        pending = ""
    if pending:
        runs.append(["mark", pending])
    return runs


def is_plain_english(text: str) -> bool:
    return bool(_PLAIN_ENGLISH_RE.match(text))


def _script_language(kind: str, piece: str) -> str | None:
    if kind == "cjk":
        return "ja" if _KANA_RE.search(piece) else "zh"
    if kind == "hangul":
        return "ko"
    return None  # digits, marks and other scripts: decided by the neighbours


def segment_text(text: str, default_lang: str | None) -> list[tuple[str, str]]:
    """(lang, text) runs; `default_lang` is "zh"/"ja" for all_zh/all_ja, None for auto."""
    text = text.strip()
    if not text:
        raise FrontendError("the text is empty")
    labelled: list[list] = []
    for kind, piece in _attach_marks(_sections(text)):
        if kind != "digit" and is_plain_english(piece):
            lang = "en"
        elif default_lang is not None:
            lang = default_lang
        else:
            lang = _script_language(kind, piece)
        labelled.append([lang, piece])
    if default_lang is None:
        _fill_from_neighbours(labelled)
    merged: list[tuple[str, str]] = []
    for lang, piece in labelled:
        if merged and merged[-1][0] == lang:
            merged[-1] = (lang, merged[-1][1] + piece)
        else:
            merged.append((lang, piece))
    return merged


def _fill_from_neighbours(labelled: list[list]) -> None:
    for index, item in enumerate(labelled):
        if item[0] is None:
            before = next((x[0] for x in reversed(labelled[:index]) if x[0]), None)
            after = next((x[0] for x in labelled[index + 1:] if x[0]), None)
            item[0] = before or after or "zh"
