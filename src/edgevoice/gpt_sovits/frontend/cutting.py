"""Sentence cutting for long text and upstream's prompt/target text paths.

`cut_text(text, "cut0".."cut5")` implements upstream's split methods (one piece per line in
upstream; a list here). `split_target_text` is upstream `TextPreprocessor.preprocess` up to
the per-piece G2P: collapse repeated marks, prefix a mark when the first sentence is very
short, cut, merge pieces shorter than 5 characters, drop symbol-only pieces, end every piece
with a mark and split pieces longer than 510 characters. `prepare_prompt_text` is
`TTS.run`'s fix-up of the reference transcript.
"""

from __future__ import annotations

import re

from .errors import FrontendError

SPLIT_MARKS = frozenset("，。？！,.?!~:：—…")
_BLANK_MARKS = frozenset("!?…,.- ")  # a piece made only of these is dropped
_CUT5_MARKS = frozenset(",.;?!、，。？！;：…")
_REPEATED_MARK_RE = re.compile(r"([!?…,.\-])([!?…,.\-])+")
_FIRST_SENTENCE_RE = re.compile("[" + re.escape("".join(sorted(SPLIT_MARKS))) + "]")
_NON_WORD_RE = re.compile(r"\W+")
MAX_PIECE_CHARS = 510
MIN_PIECE_CHARS = 5
CUT_METHODS = ("cut0", "cut1", "cut2", "cut3", "cut4", "cut5")


def _is_blank(piece: str) -> bool:
    return set(piece) <= _BLANK_MARKS


def _sentences(text: str) -> list[str]:
    """Sentences ending after every split mark (a final "。" is added if missing)."""
    text = text.replace("……", "。").replace("——", "，")
    if text[-1] not in SPLIT_MARKS:
        text += "。"
    sentences, start = [], 0
    for index, char in enumerate(text):
        if char in SPLIT_MARKS:
            sentences.append(text[start : index + 1])
            start = index + 1
    return sentences


def _cut0(text: str) -> list[str]:
    return [] if _is_blank(text) else [text]


def _cut1(text: str) -> list[str]:
    """Groups of four sentences; the last group also takes the remainder (upstream's slicing)."""
    text = text.strip("\n")
    sentences = _sentences(text)
    starts: list[int | None] = list(range(0, len(sentences), 4))
    starts[-1] = None
    if len(starts) > 1:
        groups = ["".join(sentences[starts[i] : starts[i + 1]]) for i in range(len(starts) - 1)]
    else:
        groups = [text]
    return [g for g in groups if not _is_blank(g)]


def _cut2(text: str) -> list[str]:
    """Sentences accumulated until a piece exceeds 50 characters."""
    text = text.strip("\n")
    sentences = _sentences(text)
    if len(sentences) < 2:
        return [text]
    pieces, current = [], ""
    for sentence in sentences:
        current += sentence
        if len(current) > 50:
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    if len(pieces) > 1 and len(pieces[-1]) < 50:
        pieces[-2:] = [pieces[-2] + pieces[-1]]
    return [p for p in pieces if not _is_blank(p)]


def _cut3(text: str) -> list[str]:
    """Split at every 。."""
    return [p for p in text.strip("\n").strip("。").split("。") if not _is_blank(p)]


def _cut4(text: str) -> list[str]:
    """Split at every '.' that is not between digits."""
    pieces = re.split(r"(?<!\d)\.(?!\d)", text.strip("\n").strip("."))
    return [p for p in pieces if not _is_blank(p)]


def _cut5(text: str) -> list[str]:
    """Split after every punctuation mark (a '.' between digits does not split)."""
    text = text.strip("\n")
    pieces, current = [], []
    for index, char in enumerate(text):
        current.append(char)
        if char in _CUT5_MARKS:
            decimal_point = char == "." and 0 < index < len(text) - 1 and text[index - 1].isdigit() and text[index + 1].isdigit()
            if not decimal_point:
                pieces.append("".join(current))
                current = []
    if current:
        pieces.append("".join(current))
    return [p for p in pieces if not set(p) <= _CUT5_MARKS]


_METHODS = {"cut0": _cut0, "cut1": _cut1, "cut2": _cut2, "cut3": _cut3, "cut4": _cut4, "cut5": _cut5}


def cut_text(text: str, method: str = "cut5") -> list[str]:
    """Pieces of `text` by one of upstream's cut methods (cut0 = no cut)."""
    if method not in _METHODS:
        raise FrontendError(f"unknown cut method {method!r}: expected one of {', '.join(CUT_METHODS)}")
    if not text:
        return []
    pieces: list[str] = []
    for piece in _METHODS[method](text):
        # upstream joins with newlines and splits again, so inner newlines cut too
        pieces += [p for p in piece.split("\n") if p]
    return pieces


def _final_mark(language: str) -> str:
    return "." if language == "en" else "。"


def prepare_prompt_text(text: str, language: str) -> str:
    """Reference transcript as `TTS.run` feeds it: a final mark is added if missing."""
    text = text.strip("\n")
    if not text:
        raise FrontendError("the prompt text is empty")
    if text[-1] not in SPLIT_MARKS:
        text += _final_mark(language)
    return text


def merge_short_pieces(pieces: list[str], threshold: int = MIN_PIECE_CHARS) -> list[str]:
    if len(pieces) < 2:
        return pieces
    merged, current = [], ""
    for piece in pieces:
        current += piece
        if len(current) >= threshold:
            merged.append(current)
            current = ""
    if current:
        if merged:
            merged[-1] += current
        else:
            merged.append(current)
    return merged


def split_long_piece(text: str, max_chars: int = MAX_PIECE_CHARS) -> list[str]:
    parts = re.split("([" + re.escape("".join(sorted(SPLIT_MARKS))) + "])", text)
    result, current = [], ""
    for part in parts:
        if len(current + part) > max_chars:
            result.append(current)
            current = part
        else:
            current += part
    if current:
        result.append(current)
    return result


def split_target_text(text: str, language: str, method: str = "cut1") -> list[str]:
    """Pieces upstream's `TextPreprocessor.preprocess` would phonemize, in order."""
    text = _REPEATED_MARK_RE.sub(r"\1", text).strip("\n")
    if not text:
        return []
    first_sentence = _FIRST_SENTENCE_RE.split(text)[0].strip()
    if text[0] not in SPLIT_MARKS and len(first_sentence) < 4:
        text = _final_mark(language) + text
    if method not in _METHODS:
        raise FrontendError(f"unknown cut method {method!r}: expected one of {', '.join(CUT_METHODS)}")
    lines = "\n".join(_METHODS[method](text)).split("\n")
    if all(line in ("", " ") for line in lines):
        raise FrontendError("the text has nothing to read (only punctuation or spaces)")
    pieces = [line for line in lines if line not in ("", " ")]
    pieces = merge_short_pieces(pieces)
    result = []
    for piece in pieces:
        if not piece.strip() or not _NON_WORD_RE.sub("", piece):
            continue  # blank or symbol-only piece
        if piece[-1] not in SPLIT_MARKS:
            piece += _final_mark(language)
        # upstream's long-piece split starts with "" when the first run between marks is already too long; its
        # synthesis loop skips the empty piece (no phones), so it never becomes a fragment here
        result += [p for p in split_long_piece(piece) if p] if len(piece) > MAX_PIECE_CHARS else [piece]
    return result
