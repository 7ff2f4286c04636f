"""English grapheme-to-phoneme, behaving like GPT-SoVITS v2 `english.g2p`.

Tokenisation reproduces what nltk's TweetTokenizer does on *normalised* text (which only
contains ``A-Za-z '.,?!-`` and spaces): naked domain names ("example.com") stay one token,
words with inner apostrophes/hyphens stay one token, every other mark is its own token.

Part of speech: upstream tags words with nltk's perceptron tagger and uses the tag only for
the ~370 words of g2p_en's homograph table. That tagger model is a download, so we tag every
word ``NN`` (noun), exactly what the conformance corpus was generated with: homographs take
their noun reading when the table's POS starts with "N", otherwise the other reading.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .errors import FrontendError
from ...g2p_en import neural_g2p, tokenize
from .en_lexicon import homographs, lexicon, names
from .symbols import symbol_to_id

CONSTANT_POS_TAG = "NN"

_POSSESSIVE_RE = re.compile(r"^([a-z]+)('s)$")
_VOICELESS_ENDINGS = {"P", "T", "K", "F", "TH", "HH"}
_SIBILANT_ENDINGS = {"S", "Z", "SH", "ZH", "CH", "JH"}
_DROPPED_OUTPUT = {" ", "<pad>", "UW", "</s>", "<s>"}  # bare "UW" is dropped: upstream quirk


@lru_cache(maxsize=1)
def _wordsegment():
    import wordsegment  # data ships in its wheel; loading takes about a second

    wordsegment.load()
    return wordsegment


def _spell_letters(word: str) -> list[str]:
    phones: list[str] = []
    for letter in word:
        if letter == "a":
            phones.append("EY1")
        elif not letter.isalpha():
            phones.append(letter)
        else:
            phones.extend(lexicon()[letter])
    return phones


@lru_cache(maxsize=8192)
def _lookup(original: str) -> tuple[str, ...]:
    """Pronunciation of one token that is not a homograph (upstream `qryword`)."""
    word = original.lower()
    words = lexicon()
    if len(word) > 1 and word in words:
        return words[word]
    if original.istitle() and word in names():
        return names()[word]
    if len(word) <= 3:
        return tuple(_spell_letters(word))
    if _POSSESSIVE_RE.match(word):
        phones = list(_lookup(word[:-2]))
        if not phones:
            raise FrontendError(f"no pronunciation for the English word {original!r}")
        if phones[-1] in _VOICELESS_ENDINGS:
            phones.append("S")
        elif phones[-1] in _SIBILANT_ENDINGS:
            phones.extend(["AH0", "Z"])
        else:
            phones.append("Z")
        return tuple(phones)
    parts = _wordsegment().segment(word)
    if len(parts) == 1:
        return tuple(neural_g2p().predict(word))
    return tuple(phone for part in parts for phone in _lookup(part))


def _token_phones(token: str, pos: str) -> tuple[str, ...]:
    word = token.lower()
    if re.search("[a-z]", word) is None:
        return (word,)
    if len(word) == 1:
        return ("EY1",) if token == "A" else lexicon()[word]
    table = homographs()
    if word in table:
        pron_for_pos, other_pron, table_pos = table[word]
        if pos.startswith(table_pos) or (len(pos) < len(table_pos) and pos == table_pos[: len(pos)]):
            return pron_for_pos
        return other_pron
    return _lookup(token)


def g2p_english(norm_text: str) -> list[str]:
    """Phone symbols of normalised English text (before the `< 4 phones` rule)."""
    known = symbol_to_id("v2")
    phones: list[str] = []
    for token in tokenize(norm_text):
        for phone in _token_phones(token, CONSTANT_POS_TAG):
            if phone in _DROPPED_OUTPUT:
                continue
            if phone == "<unk>":
                phone = "UNK"
            if phone in known:
                phones.append(phone)
            elif phone == "'":
                phones.append("-")
            # anything else (e.g. an empty or unknown mark) is dropped, as upstream does
    return phones
