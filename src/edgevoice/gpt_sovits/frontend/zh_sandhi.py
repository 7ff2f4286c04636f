"""Mandarin tone sandhi as GPT-SoVITS applies it (its `ToneSandhi`, from PaddleSpeech).

Two stages: `pre_merge` regroups jieba words (不/一 with neighbours, reduplications,
runs of third tones, 儿), then `apply_sandhi` rewrites the tone digit of each word's
finals (不, 一, neutral tone, third-tone sandhi). Finals are pypinyin FINALS_TONE3
strings with neutral tone written 5.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

_DATA_DIR = Path(__file__).resolve().parent / "data"
_PUNCTUATION = "：，；。？！“”‘’':,;.?!"
_MODAL_PARTICLES = "吧呢哈啊呐噻嘛吖嗨呐哦哒额滴哩哟喽啰耶喔诶"
_GE_PRECEDERS = "几有两半多各整每做是"


@lru_cache(maxsize=1)
def _word_lists() -> tuple[frozenset, frozenset]:
    """(must-neutral-tone words, words exempt from the neutral-tone rules)."""
    must, exempt, target = set(), set(), None
    for line in (_DATA_DIR / "zh_neutral_tone_words.txt").read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        if line == "[not]":
            target = exempt
            continue
        (must if target is None else target).add(line)
    return frozenset(must), frozenset(exempt)


@lru_cache(maxsize=16384)
def _cached_finals(word: str) -> tuple[str, ...]:
    from pypinyin import Style, lazy_pinyin

    return tuple(lazy_pinyin(word, neutral_tone_with_five=True, style=Style.FINALS_TONE3))


def finals_tone3(word: str) -> list[str]:
    """pypinyin FINALS_TONE3 of each character (neutral tone = 5); a fresh list."""
    return list(_cached_finals(word))


def _with_tone(final: str, tone: str) -> str:
    return final[:-1] + tone


def _all_third(finals: list[str]) -> bool:
    return all(f[-1] == "3" for f in finals)


def _is_reduplication(word: str) -> bool:
    return len(word) == 2 and word[0] == word[1]


# ---------------------------------------------------------------- word regrouping


def _merge_bu(words):
    merged, previous = [], ""
    for word, pos in words:
        if previous == "不":
            word = previous + word
        if word != "不":
            merged.append([word, pos])
        previous = word
    if previous == "不":
        merged.append(["不", "d"])
    return merged


def _merge_yi(words):
    # "V 一 V" (same verb twice) becomes one word; then a lone 一 joins the next word.
    first_pass, i = [], 0
    while i < len(words):
        word, pos = words[i]
        if i >= 1 and word == "一" and i + 1 < len(words):
            left = first_pass[-1] if first_pass else words[i - 1]
            right = words[i + 1]
            if left[0] == right[0] and left[1] == "v" and right[1] == "v":
                first_pass[-1] = [left[0] + "一" + right[0], left[1]]
                i += 2
                continue
        first_pass.append([word, pos])
        i += 1
    merged = []
    for word, pos in first_pass:
        if merged and merged[-1][0] == "一":
            merged[-1][0] += word
        else:
            merged.append([word, pos])
    return merged


def _merge_reduplication(words):
    merged = []
    for word, pos in words:
        if merged and word == merged[-1][0]:
            merged[-1][0] += word
        else:
            merged.append([word, pos])
    return merged


def _merge_third_tones(words, whole_words: bool):
    """Join neighbouring words of third tones (whole words, or the touching syllables)."""
    finals = [finals_tone3(word) for word, _ in words]
    merged, joined = [], [False] * len(words)
    for i, (word, pos) in enumerate(words):
        if i >= 1 and not joined[i - 1]:
            if whole_words:
                touching = _all_third(finals[i - 1]) and _all_third(finals[i])
            else:
                touching = finals[i - 1][-1][-1] == "3" and finals[i][0][-1] == "3"
            previous = words[i - 1][0]
            if touching and not _is_reduplication(previous) and len(previous) + len(word) <= 3:
                merged[-1][0] += word
                joined[i] = True
                continue
        merged.append([word, pos])
    return merged


def _merge_er(words):
    merged = []
    for i, (word, pos) in enumerate(words):
        if i >= 1 and word == "儿" and words[i - 1][0] != "#":
            merged[-1][0] += word
        else:
            merged.append([word, pos])
    return merged


def pre_merge(words: list[tuple[str, str]]) -> list[list[str]]:
    words = _merge_bu(words)
    words = _merge_yi(words)
    words = _merge_reduplication(words)
    for whole_words in (True, False):
        try:
            words = _merge_third_tones(words, whole_words)
        except IndexError:
            # A syllable without a final (e.g. "hm"): upstream skips this stage too.
            pass
    return _merge_er(words)


# ---------------------------------------------------------------- tone rewriting


def _split_word(word: str) -> list[str]:
    """Cut a word in two around its shortest jieba search-mode piece."""
    import jieba_fast

    pieces = sorted(jieba_fast.cut_for_search(word), key=len)
    shortest = pieces[0]
    if word.find(shortest) == 0:
        return [shortest, word[len(shortest):]]
    return [word[: -len(shortest)], shortest]


def _bu_sandhi(word: str, finals: list[str]) -> list[str]:
    if len(word) == 3 and word[1] == "不":
        finals[1] = _with_tone(finals[1], "5")
    else:
        for i, char in enumerate(word):
            if char == "不" and i + 1 < len(word) and finals[i + 1][-1] == "4":
                finals[i] = _with_tone(finals[i], "2")
    return finals


def _yi_sandhi(word: str, finals: list[str]) -> list[str]:
    if "一" in word and all(c.isnumeric() for c in word if c != "一"):
        return finals  # a number such as 一一零
    if len(word) == 3 and word[1] == "一" and word[0] == word[-1]:
        finals[1] = _with_tone(finals[1], "5")
    elif word.startswith("第一"):
        finals[1] = _with_tone(finals[1], "1")
    else:
        for i, char in enumerate(word):
            if char == "一" and i + 1 < len(word):
                if finals[i + 1][-1] == "4":
                    finals[i] = _with_tone(finals[i], "2")
                elif word[i + 1] not in _PUNCTUATION:
                    finals[i] = _with_tone(finals[i], "4")
    return finals


def _neutral_sandhi(word: str, pos: str, finals: list[str]) -> list[str]:
    must, exempt = _word_lists()
    for j in range(1, len(word)):
        if word[j] == word[j - 1] and pos[0] in "nva" and word not in exempt:
            finals[j] = _with_tone(finals[j], "5")
    ge_index = word.find("个")
    last = word[-1] if word else ""
    if last and last in _MODAL_PARTICLES:
        finals[-1] = _with_tone(finals[-1], "5")
    elif last and last in "的地得":
        finals[-1] = _with_tone(finals[-1], "5")
    elif len(word) == 1 and word in "了着过" and pos in {"ul", "uz", "ug"}:
        finals[-1] = _with_tone(finals[-1], "5")
    elif len(word) > 1 and last in "们子" and pos in {"r", "n"} and word not in exempt:
        finals[-1] = _with_tone(finals[-1], "5")
    elif len(word) > 1 and last in "上下里" and pos in {"s", "l", "f"}:
        finals[-1] = _with_tone(finals[-1], "5")
    elif len(word) > 1 and last in "来去" and word[-2] in "上下进出回过起开":
        finals[-1] = _with_tone(finals[-1], "5")
    elif (ge_index >= 1 and (word[ge_index - 1].isnumeric() or word[ge_index - 1] in _GE_PRECEDERS)) or word == "个":
        finals[ge_index] = _with_tone(finals[ge_index], "5")
    elif word in must or word[-2:] in must:
        finals[-1] = _with_tone(finals[-1], "5")
    parts = _split_word(word)
    groups = [finals[: len(parts[0])], finals[len(parts[0]):]]
    for part, group in zip(parts, groups):
        if (part in must or part[-2:] in must) and group:
            group[-1] = _with_tone(group[-1], "5")
    return groups[0] + groups[1]


def _three_sandhi(word: str, finals: list[str]) -> list[str]:
    if len(word) == 2 and _all_third(finals):
        finals[0] = _with_tone(finals[0], "2")
    elif len(word) == 3:
        parts = _split_word(word)
        if _all_third(finals):
            if len(parts[0]) == 2:
                finals[0] = _with_tone(finals[0], "2")
                finals[1] = _with_tone(finals[1], "2")
            elif len(parts[0]) == 1:
                finals[1] = _with_tone(finals[1], "2")
        else:
            groups = [finals[: len(parts[0])], finals[len(parts[0]):]]
            for i, group in enumerate(groups):
                if _all_third(group) and len(group) == 2:
                    group[0] = _with_tone(group[0], "2")
                elif i == 1 and not _all_third(group) and group[0][-1] == "3" and groups[0][-1][-1] == "3":
                    groups[0][-1] = _with_tone(groups[0][-1], "2")
            finals = groups[0] + groups[1]
    elif len(word) == 4:
        halves = [finals[:2], finals[2:]]
        for half in halves:
            if _all_third(half):
                half[0] = _with_tone(half[0], "2")
        finals = halves[0] + halves[1]
    return finals


def apply_sandhi(word: str, pos: str, finals: list[str]) -> list[str]:
    finals = _bu_sandhi(word, finals)
    finals = _yi_sandhi(word, finals)
    finals = _neutral_sandhi(word, pos, finals)
    return _three_sandhi(word, finals)
