"""Text → synthesis fragments, following upstream's `TextPreprocessor.preprocess` (spec §2.4).

Each fragment is phonemised and synthesised on its own (one GPT run, one SoVITS decode), so this is where
long text becomes sentence-sized work that batching and streaming can pick up.
"""

from __future__ import annotations

import re

SPLIT_MARKS = set("，。？！,.?!~:：—…")
SPEECHLESS = set("!?…,.- ")  # pieces made only of these carry nothing to say
SENTENCE_END_MARKS = set(",.;?!、，。？！;：…")
MAX_FRAGMENT_CHARS = 510  # BERT's 512 positions minus [CLS] and [SEP]
MIN_FRAGMENT_CHARS = 5


def final_mark(language: str) -> str:
    return "." if language == "en" else "。"


def prepare_prompt_text(text: str, language: str) -> str:
    """Upstream's fix-up of a reference transcript: no newlines, ends in a split mark."""
    text = text.strip("\n").replace("\n", " ").strip()
    if text and text[-1] not in SPLIT_MARKS:
        text += final_mark(language)
    return text


def collapse_punctuation(text: str) -> str:
    return re.sub(r"([!?…,.\-])[!?…,.\-]+", r"\1", text)


def _sentences(text: str) -> list[str]:
    """Split after every split mark (upstream's `split`), after its `……`/`——` replacements."""
    text = text.replace("……", "。").replace("——", "，")
    if text and text[-1] not in SPLIT_MARKS:
        text += "。"
    pieces, start = [], 0
    for index, char in enumerate(text):
        if char in SPLIT_MARKS:
            pieces.append(text[start : index + 1])
            start = index + 1
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def _speakable(pieces: list[str]) -> list[str]:
    return [p for p in pieces if p and not set(p) <= SPEECHLESS]


def cut0(text: str) -> list[str]:
    return _speakable([text])


def cut1(text: str) -> list[str]:
    """Groups of four sentences."""
    sentences = _sentences(text.strip("\n"))
    return _speakable(["".join(sentences[i : i + 4]) for i in range(0, len(sentences), 4)])


def cut2(text: str, limit: int = 50) -> list[str]:
    """Sentences accumulated until a group exceeds `limit` characters; a short last group joins the previous one."""
    groups, current = [], ""
    for sentence in _sentences(text.strip("\n")):
        current += sentence
        if len(current) > limit:
            groups.append(current)
            current = ""
    if current:
        if groups and len(current) < limit:
            groups[-1] += current
        else:
            groups.append(current)
    return _speakable(groups)


def cut3(text: str) -> list[str]:
    return _speakable(text.strip("\n").strip("。").split("。"))


def cut4(text: str) -> list[str]:
    return _speakable(re.split(r"(?<!\d)\.(?!\d)", text.strip("\n").strip(".")))


def cut5(text: str) -> list[str]:
    """After every punctuation mark, except a '.' between digits."""
    text = text.strip("\n")
    pieces, current = [], ""
    for index, char in enumerate(text):
        current += char
        decimal_point = (char == "." and 0 < index < len(text) - 1 and text[index - 1].isdigit()
                         and text[index + 1].isdigit())
        if char in SENTENCE_END_MARKS and not decimal_point:
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return _speakable(pieces)


CUT_METHODS = {"cut0": cut0, "cut1": cut1, "cut2": cut2, "cut3": cut3, "cut4": cut4, "cut5": cut5}


def merge_short(pieces: list[str], threshold: int = MIN_FRAGMENT_CHARS) -> list[str]:
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


def _split_long(text: str, limit: int = MAX_FRAGMENT_CHARS) -> list[str]:
    parts, current = [], ""
    for sentence in _sentences(text):
        if current and len(current) + len(sentence) > limit:
            parts.append(current)
            current = ""
        current += sentence
    if current:
        parts.append(current)
    return [p[i : i + limit] for p in parts for i in range(0, len(p), limit)]


def split_target_text(text: str, language: str, method: str = "cut1") -> list[str]:
    """The target text as upstream's `preprocess` cuts it (before phonemisation)."""
    try:
        cut = CUT_METHODS[method]
    except KeyError:
        raise ValueError(f"unknown split method {method!r} (choose from {', '.join(CUT_METHODS)})") from None
    text = collapse_punctuation(text.strip("\n"))
    if not text.strip():
        return []
    first = re.split("[" + re.escape("".join(SPLIT_MARKS)) + "]", text, maxsplit=1)[0]
    if text[0] not in SPLIT_MARKS and len(first) < 4:
        text = final_mark(language) + text
    pieces = [p for p in "\n".join(cut(text)).split("\n") if p.strip()]
    fragments = []
    for piece in merge_short(pieces):
        if not piece.strip() or not re.sub(r"\W+", "", piece):
            continue
        if piece[-1] not in SPLIT_MARKS:
            piece += final_mark(language)
        fragments.extend(_split_long(piece) if len(piece) > MAX_FRAGMENT_CHARS else [piece])
    return fragments
