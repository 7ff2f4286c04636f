"""Chinese front-end of EmotiVoice: upstream `frontend_cn.g2p_cn` and `split_py`.

Pipeline (netease-youdao/EmotiVoice bc2de8c, with jieba 0.42.1, pypinyin 0.55.0 and
pypinyin-dict 0.9.0 as the reference fixtures were made):

1. jieba ``cut`` (default dictionary, HMM on); a lone space is skipped; digits in a word are
   read as Chinese numerals (`numerals.tn_chinese`, as upstream does per word too);
2. per word, pypinyin ``pinyin(word, Style.TONE3, neutral_tone_with_five=True)`` with the
   CC-CEDICT phrase table of pypinyin-dict loaded on top of pypinyin's own phrases (upstream
   calls ``cc_cedict.load()`` at import);
3. a word whose pinyin contains Chinese or ASCII punctuation replaces the previous token
   (normally ``sp1``) with ``sp3``; otherwise each syllable is split into initial and final
   + tone by `split_py`, syllables joined by ``sp0`` and the word followed by ``sp1``.
   No tone sandhi.

Isolation: upstream's ``cc_cedict.load()`` adds ~106k phrases to pypinyin's *global* phrase
table, which would change what every other pypinyin user in the process (the GPT-SoVITS
front-end) gets. Here the merged table is private: a `pypinyin.core.Pinyin` subclass with its
own phrase lookup (CC-CEDICT first, then pypinyin's table, as ``dict.update`` gives) and its
own forward-maximum-match segmenter with the exact semantics of pypinyin's ``mmseg``. jieba
runs on a private ``jieba.Tokenizer`` (same default dictionary and cache file) so that words
another component adds to ``jieba.dt`` do not leak in. Everything loads once, lazily, on the
first Chinese text (about 1 s, mostly jieba's dictionary).
"""

from __future__ import annotations

import logging
import re
import string
import threading
from collections import ChainMap

from ..errors import TextError
from .numerals import tn_chinese

CHINESE_PUNCTUATION = (
    "\u3002\uff0c\uff1f\uff01\uff1b\uff1a\u201c\u201d\u2018\u2019\u300a\u300b\u3008\u3009"
    "\u3010\u3011\u300e\u300f\u2014\u2026\u3001\uff08\uff09"
)
_CHINESE_PUNCTUATION_RE = re.compile(f"[{CHINESE_PUNCTUATION}]")
_VOWEL_RE = re.compile("a|e|i|o|u|v")
_Y_FINALS_WITH_I = {"ya", "yan", "yang", "yao", "ye", "yong", "you"}
_Y_FINALS_DROP_Y = {"yi", "yin", "ying"}
# upstream writes 'yue ' (with a space): 'yue' is not caught here and becomes 'y' + 've'
_Y_FINALS_WITH_V = {"yu", "yv", "yuan", "yvan", "yue ", "yve", "yun", "yvn"}
_FINAL_REWRITES = {"ui": "uei", "iu": "iou", "un": "uen", "ue": "ve"}


def split_py(syllable: str) -> tuple[str, str]:
    """TONE3 syllable -> (initial, final + erhua ``r`` + tone), upstream's rules and quirks."""
    tone, py = syllable[-1:], syllable[:-1]
    if py in ("n", "ng", "m"):
        py = "e" + py
    if not py:
        raise TextError(f"cannot split the pinyin syllable {syllable!r} into initial and final")
    erhua = ""
    if py[-1] == "r":
        erhua, py = "r", py[:-1]
    if py in ("zi", "ci", "si", "ri"):
        initial, final = py[0], "ii"
    elif py in ("zhi", "chi", "shi"):
        initial, final = py[:2], "iii"
    elif py in _Y_FINALS_WITH_I:
        initial, final = "", "i" + py[1:]
    elif py in _Y_FINALS_DROP_Y:
        initial, final = "", py[1:]
    elif py in _Y_FINALS_WITH_V:
        initial, final = "", "v" + py[2:]
    elif py == "wu":
        initial, final = "", "u"
    elif py[:1] == "w":
        initial, final = "", "u" + py[1:]
    elif len(py) >= 2 and py[0] in "jqx" and py[1] == "u":
        initial, final = py[0], "v" + py[2:]
    else:
        vowel = _VOWEL_RE.search(py)
        if vowel is None:
            raise TextError(f"cannot split the pinyin syllable {syllable!r} into initial and final")
        initial, final = py[: vowel.start()], py[vowel.start():]
        final = _FINAL_REWRITES.get(final, final)
    return initial, final + erhua + tone


class _Engines:
    """jieba tokenizer and pypinyin converter, built once on first use."""

    def __init__(self):
        self._lock = threading.Lock()
        self._ready = False
        self.init_seconds = 0.0

    def ensure(self):
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            import time

            start = time.perf_counter()
            self.jieba = _make_jieba()
            self.pinyin = _make_pinyin()
            self.init_seconds = time.perf_counter() - start
            self._ready = True


def _make_jieba():
    try:
        import jieba
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise TextError("EmotiVoice's Chinese front-end needs the 'jieba' package: pip install jieba==0.42.1") from exc
    tokenizer = jieba.Tokenizer()
    logger = jieba.default_logger  # it logs dictionary loading at DEBUG to stderr: quiet while loading
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        tokenizer.initialize()
    finally:
        logger.setLevel(level)
    return tokenizer


def _make_pinyin():
    try:
        from pypinyin import Style
        from pypinyin.constants import PHRASES_DICT, RE_HANS
        from pypinyin.converter import UltimateConverter
        from pypinyin.core import Pinyin
        from pypinyin.seg.mmseg import p_set
        from pypinyin.seg.simpleseg import simple_seg
        from pypinyin_dict.phrase_pinyin_data import cc_cedict
    except ImportError as exc:  # pragma: no cover - dependencies of the package
        raise TextError(
            "EmotiVoice's Chinese front-end needs 'pypinyin' and 'pypinyin-dict': "
            "pip install pypinyin==0.55.0 pypinyin-dict==0.9.0"
        ) from exc

    # What upstream's global table is after cc_cedict.load(): PHRASES_DICT.update(cc_cedict).
    phrases = ChainMap(cc_cedict.phrases_dict, PHRASES_DICT)
    cc_prefixes = {key[:end] for key in cc_cedict.phrases_dict for end in range(1, len(key) + 1)}

    def is_prefix(text: str) -> bool:
        return text in cc_prefixes or text in p_set

    def mmseg_cut(text: str):
        """pypinyin's forward maximum matching (``mmseg.seg``, no_non_phrases=True)."""
        start, end_of_text = 0, len(text)
        while start < end_of_text:
            longest = 0
            end = start
            while end < end_of_text and is_prefix(text[start:end + 1]):
                end += 1
                if text[start:end] in phrases:
                    longest = end - start
            if longest:
                yield text[start:start + longest]
                start += longest
            elif end == end_of_text:
                # the rest is a prefix of some phrase without containing one: pypinyin emits
                # every remaining character on its own, without matching again
                yield from text[start:]
                return
            else:
                yield text[start]
                start += 1

    class Converter(UltimateConverter):
        def _phrase_pinyin(self, phrase, style, heteronym, errors, strict):
            if phrase in phrases:
                return [list(item) for item in phrases[phrase]]
            pinyin_list = []
            for han in phrase:
                pinyin_list.extend(self._single_pinyin(han, style, heteronym, errors, strict))
            return pinyin_list

    class PrivatePinyin(Pinyin):
        def get_seg(self, **kwargs):
            def seg(hans):
                words = []
                for chunk in simple_seg(hans):
                    if RE_HANS.match(chunk):
                        words.extend(mmseg_cut(chunk))
                    else:
                        words.append(chunk)
                return words

            return seg

    converter = PrivatePinyin(Converter(neutral_tone_with_five=True))

    def tone3(word: str) -> list[str]:
        return [item[0] for item in converter.pinyin(word, style=Style.TONE3)]

    return tone3


_ENGINES = _Engines()


def engines_init_seconds() -> float:
    """Seconds the one-time jieba + pypinyin initialisation took (0 before it ran)."""
    return _ENGINES.init_seconds


def warm_up() -> None:
    _ENGINES.ensure()


def _is_punctuation(pinyin: str) -> bool:
    # upstream: has_chinese_punctuation(py) or has_english_punctuation(py), the latter being
    # `py in string.punctuation` (a substring test)
    return _CHINESE_PUNCTUATION_RE.search(pinyin) is not None or pinyin in string.punctuation


def g2p_cn(text: str) -> list[str]:
    """Upstream ``g2p_cn(text).split()`` (with its ``<sos/eos>`` at both ends)."""
    _ENGINES.ensure()
    tokens = ["<sos/eos>"]
    for word in _ENGINES.jieba.cut(text):
        if word == " ":
            continue
        syllables = _ENGINES.pinyin(tn_chinese(word))  # a no-op after the front-end's own tn_chinese
        if any(_is_punctuation(py) for py in syllables):
            tokens.pop()
            tokens.append("sp3")
            continue
        parts = [" ".join(split_py(py)) for py in syllables]
        tokens.append(" sp0 ".join(parts))
        tokens.append("sp1")
    tokens.append("<sos/eos>")
    return " ".join(tokens).split()
