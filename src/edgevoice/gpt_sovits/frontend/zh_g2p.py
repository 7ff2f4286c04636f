"""Chinese G2P, behaving like GPT-SoVITS v2 `chinese2` on its pypinyin branch.

Upstream's default reads polyphones with the g2pW ONNX model, a run-time download; its own
``is_g2pw = False`` branch (pypinyin per jieba word) is what we follow, as the conformance
corpus does. Pipeline: split after punctuation, drop Latin letters, jieba_fast POS
segmentation, sandhi regrouping, pypinyin initials/finals per word, tone sandhi, erhua,
then each syllable -> 2 phones (initial, final+tone) and each mark -> 1 phone.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

from .errors import FrontendError
from .symbols import PUNCTUATION
from .zh_normalize import normalize_chinese
from .zh_pinyin import syllable_table
from .zh_sandhi import apply_sandhi, finals_tone3, pre_merge

_SENTENCE_CUT_RE = re.compile(r"(?<=[!?…,.\-])\s*")
_LATIN_RE = re.compile("[a-zA-Z]+")
# Special silence marks of upstream's cleaner: all commas of such a text become SP2 / SP3.
_SILENCE_MARKS = (("￥", "SP2"), ("^", "SP3"))

# Erhua word lists of upstream chinese2.py (facts about which 儿 words merge).
_MUST_ERHUA = {"小院儿", "胡同儿", "范儿", "老汉儿", "撒欢儿", "寻老礼儿", "妥妥儿", "媳妇儿"}
_NOT_ERHUA = set(
    "虐儿 为儿 护儿 瞒儿 救儿 替儿 有儿 一儿 我儿 俺儿 妻儿 拐儿 聋儿 乞儿 患儿 幼儿 孤儿 婴儿 婴幼儿 "
    "连体儿 脑瘫儿 流浪儿 体弱儿 混血儿 蜜雪儿 舫儿 祖儿 美儿 应采儿 可儿 侄儿 孙儿 侄孙儿 女儿 男儿 "
    "红孩儿 花儿 虫儿 马儿 鸟儿 猪儿 猫儿 狗儿 少儿".split()
)
_ZERO_INITIAL_SPELLING = {"ing": "ying", "i": "yi", "in": "yin", "u": "wu"}
_ZERO_INITIAL_FIRST_LETTER = {"v": "yu", "e": "e", "i": "y", "u": "w"}
_AFTER_INITIAL_SPELLING = {"uei": "ui", "iou": "iu", "uen": "un"}


@lru_cache(maxsize=1)
def _posseg():
    import jieba_fast
    import jieba_fast.posseg

    jieba_fast.setLogLevel(logging.CRITICAL)
    return jieba_fast.posseg


@lru_cache(maxsize=16384)
def _cached_initials(word: str) -> tuple[str, ...]:
    from pypinyin import Style, lazy_pinyin

    return tuple(lazy_pinyin(word, neutral_tone_with_five=True, style=Style.INITIALS))


def _initials_finals(word: str) -> tuple[list[str], list[str]]:
    return list(_cached_initials(word)), finals_tone3(word)


def _erhua(initials: list[str], finals: list[str], word: str, pos: str):
    for i, final in enumerate(finals):
        if i == len(finals) - 1 and word[i] == "儿" and final == "er1":
            finals[i] = "er2"
    if word not in _MUST_ERHUA and (word in _NOT_ERHUA or pos in {"a", "j", "nr"}):
        return initials, finals
    if len(finals) != len(word):
        return initials, finals
    merged: list[str] = []
    for i, final in enumerate(finals):
        if (
            i == len(finals) - 1 and word[i] == "儿" and final in {"er2", "er5"}
            and word[-2:] not in _NOT_ERHUA and merged
        ):
            final = "er" + merged[-1][-1]  # 儿 takes the previous syllable's tone
        merged.append(final)
    return initials, merged


def _syllable_phones(initial: str, final: str, context: str) -> list[str]:
    toneless, tone = final[:-1], final[-1:]
    if tone not in "12345" or not tone:
        raise FrontendError(f"no Chinese reading for a character in {context!r} ({initial}{final})")
    pinyin = initial + toneless
    if initial:
        if toneless in _AFTER_INITIAL_SPELLING:
            pinyin = initial + _AFTER_INITIAL_SPELLING[toneless]
    elif pinyin in _ZERO_INITIAL_SPELLING:
        pinyin = _ZERO_INITIAL_SPELLING[pinyin]
    elif pinyin[:1] in _ZERO_INITIAL_FIRST_LETTER:
        pinyin = _ZERO_INITIAL_FIRST_LETTER[pinyin[0]] + pinyin[1:]
    table = syllable_table()
    if pinyin not in table:
        raise FrontendError(f"the Chinese syllable {pinyin!r} in {context!r} has no phone mapping")
    new_initial, new_final = table[pinyin]
    return [new_initial, new_final + tone]


def _sentence_syllables(sentence: str, merge_erhua: bool) -> tuple[list[str], list[str]]:
    words = [(w, p) for w, p in ((pair.word, pair.flag) for pair in _posseg().lcut(sentence))]
    initials: list[str] = []
    finals: list[str] = []
    for word, pos in pre_merge(words):
        if pos == "eng":
            continue
        word_initials, word_finals = _initials_finals(word)
        if "" in word_finals:  # e.g. 噷 (hm): no final, upstream fails on it as well
            raise FrontendError(f"no Chinese reading with a tone for {word!r}")
        word_finals = apply_sandhi(word, pos, word_finals)
        if merge_erhua:
            word_initials, word_finals = _erhua(word_initials, word_finals, word, pos)
        initials += word_initials
        finals += word_finals
    return initials, finals


def g2p_chinese(norm_text: str, merge_erhua: bool = True) -> tuple[list[str], list[int]]:
    phones: list[str] = []
    word2ph: list[int] = []
    sentences = [s for s in _SENTENCE_CUT_RE.split(norm_text) if s.strip()]
    for sentence in sentences:
        initials, finals = _sentence_syllables(_LATIN_RE.sub("", sentence), merge_erhua)
        for initial, final in zip(initials, finals):
            if initial == final:  # pypinyin passes marks through unchanged
                if initial not in PUNCTUATION:
                    raise FrontendError(f"no Chinese reading for {initial!r} in {sentence!r}")
                phones.append(initial)
                word2ph.append(1)
            else:
                phones += _syllable_phones(initial, final, sentence)
                word2ph.append(2)
    return phones, word2ph


def clean_chinese(text: str, merge_erhua: bool = True) -> tuple[list[str], list[int], str]:
    """(phones, word2ph, norm_text) of one Chinese segment (upstream `clean_text` for zh)."""
    for mark, silence in _SILENCE_MARKS:
        if mark in text:
            norm_text = normalize_chinese(text.replace(mark, ","))
            phones, word2ph = g2p_chinese(norm_text, merge_erhua)
            return [silence if p == "," else p for p in phones], word2ph, norm_text
    norm_text = normalize_chinese(text)
    phones, word2ph = g2p_chinese(norm_text, merge_erhua)
    if len(word2ph) != len(norm_text):
        raise FrontendError(f"could not align phones to the characters of {norm_text!r}")
    return phones, word2ph, norm_text
