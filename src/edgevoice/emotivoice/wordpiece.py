"""BERT WordPiece tokenizer (uncased), as transformers' ``BertTokenizerFast`` with default
settings builds it from a ``vocab.txt`` - EmotiVoice tokenizes its style prompt and the content
text with one (``AutoTokenizer.from_pretrained(simbert-base-chinese)``).

Steps (the `tokenizers` library's BertNormalizer, BertPreTokenizer, WordPiece and template):

1. special tokens of the vocabulary written literally in the text (``[CLS]``, ``[SEP]``,
   ``[MASK]``, ``[PAD]``, ``[UNK]``) are kept as they are;
2. clean-up: NUL, U+FFFD and control/format/unassigned/private-use characters removed,
   every whitespace character becomes a space;
3. a space on both sides of every CJK ideograph (so each is its own token);
4. accents stripped (NFD, combining marks ``Mn`` dropped), then lower-cased character by
   character;
5. split at whitespace and around every punctuation character (ASCII punctuation and
   Unicode ``P*``);
6. WordPiece: greedy longest match first, continuations prefixed ``##``; a word longer than
   100 characters, or one that cannot be covered, becomes ``[UNK]``;
7. ``[CLS] ... [SEP]``.

Character properties follow what `tokenizers` does, checked on every code point against
``BertTokenizerFast`` (tokenizers 0.23): its older Unicode tables (`_UNKNOWN_TO_TOKENIZERS`),
its CJK ranges, control characters removed before whitespace is mapped. On a Python whose
`unicodedata` is newer than Unicode 14 (3.12+), characters added after Unicode 14 may differ.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Iterable

import numpy as np

MAX_CHARS_PER_WORD = 100
CONTINUATION = "##"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)
# Unicode White_Space (what Rust's char::is_whitespace tests); Python's str.isspace() would also
# take U+001C..U+001F, which tokenizers removes as control characters
_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_ASCII_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
# tokenizers' is_control: Rust `is_other` as its tables have it (Cc, Cf, Co, Cs; unassigned
# code points are kept), tab/newline/CR excepted
_CONTROL_CATEGORIES = frozenset(("Cc", "Cf", "Co", "Cs"))

# `tokenizers` takes general categories from Unicode 9-era tables (crate unicode_categories).
# Code points that Python's unicodedata (Unicode 14 in Python 3.11) assigns but those tables
# do not are ordinary characters there: neither removed, nor punctuation, nor stripped as
# accents. Found by running BertTokenizerFast on every code point; three characters changed
# category since and keep their old one.
_UNKNOWN_TO_TOKENIZERS = (
    (0x61D, 0x61D), (0x7FD, 0x7FD), (0x890, 0x891), (0x898, 0x89F), (0x8CA, 0x8E2), (0x9FD, 0x9FE),
    (0xA76, 0xA76), (0xAFA, 0xAFF), (0xB55, 0xB55), (0xC04, 0xC04), (0xC3C, 0xC3C), (0xC77, 0xC77),
    (0xC84, 0xC84), (0xD00, 0xD00), (0xD3B, 0xD3C), (0xD81, 0xD81), (0xEBA, 0xEBA), (0x180F, 0x180F),
    (0x1885, 0x1886), (0x1ABF, 0x1ACE), (0x1B7D, 0x1B7E), (0x1DF6, 0x1DFB), (0x2E43, 0x2E4F), (0x2E52, 0x2E5D),
    (0xA82C, 0xA82C), (0xA8C5, 0xA8C5), (0xA8FF, 0xA8FF), (0xA9BD, 0xA9BD), (0x10D24, 0x10D27),
    (0x10EAB, 0x10EAD), (0x10F46, 0x10F50), (0x10F55, 0x10F59), (0x10F82, 0x10F89), (0x11070, 0x11070),
    (0x11073, 0x11074), (0x110C2, 0x110C2), (0x110CD, 0x110CD), (0x111CF, 0x111CF), (0x1123E, 0x1123E),
    (0x1133B, 0x1133B), (0x11438, 0x1143F), (0x11442, 0x11444), (0x11446, 0x11446), (0x1144B, 0x1144F),
    (0x1145A, 0x1145B), (0x1145D, 0x1145E), (0x11660, 0x1166C), (0x116B9, 0x116B9), (0x1182F, 0x11837),
    (0x11839, 0x1183B), (0x1193B, 0x1193C), (0x1193E, 0x1193E), (0x11943, 0x11946), (0x119D4, 0x119D7),
    (0x119DA, 0x119DB), (0x119E0, 0x119E0), (0x119E2, 0x119E2), (0x11A01, 0x11A0A), (0x11A33, 0x11A38),
    (0x11A3B, 0x11A47), (0x11A51, 0x11A56), (0x11A59, 0x11A5B), (0x11A8A, 0x11A96), (0x11A98, 0x11A9C),
    (0x11A9E, 0x11AA2), (0x11C30, 0x11C36), (0x11C38, 0x11C3D), (0x11C3F, 0x11C3F), (0x11C41, 0x11C45),
    (0x11C70, 0x11C71), (0x11C92, 0x11CA7), (0x11CAA, 0x11CB0), (0x11CB2, 0x11CB3), (0x11CB5, 0x11CB6),
    (0x11D31, 0x11D36), (0x11D3A, 0x11D3A), (0x11D3C, 0x11D3D), (0x11D3F, 0x11D45), (0x11D47, 0x11D47),
    (0x11D90, 0x11D91), (0x11D95, 0x11D95), (0x11D97, 0x11D97), (0x11EF3, 0x11EF4), (0x11EF7, 0x11EF8),
    (0x11FFF, 0x11FFF), (0x12FF1, 0x12FF2), (0x13430, 0x13438), (0x16E97, 0x16E9A), (0x16F4F, 0x16F4F),
    (0x16FE2, 0x16FE2), (0x16FE4, 0x16FE4), (0x1CF00, 0x1CF2D), (0x1CF30, 0x1CF46), (0x1E000, 0x1E006),
    (0x1E008, 0x1E018), (0x1E01B, 0x1E021), (0x1E023, 0x1E024), (0x1E026, 0x1E02A), (0x1E130, 0x1E136),
    (0x1E2AE, 0x1E2AE), (0x1E2EC, 0x1E2EF), (0x1E944, 0x1E94A), (0x1E95E, 0x1E95F),
)
_OLD_CATEGORIES = {0x166D: "Po", 0x1734: "Mn", 0x111C9: "Po"}


def _in_ranges(code: int, ranges) -> bool:
    return any(low <= code <= high for low, high in ranges)


@lru_cache(maxsize=65536)
def _category(char: str) -> str:
    """General category of `char` as tokenizers' tables give it."""
    code = ord(char)
    if code in _OLD_CATEGORIES:
        return _OLD_CATEGORIES[code]
    if 0x600 <= code and _in_ranges(code, _UNKNOWN_TO_TOKENIZERS):
        return "Cn"
    return unicodedata.category(char)


def _is_cjk(code: int) -> bool:
    # tokenizers' table (its 0x2B920 start, not BERT's 0x2B820, is kept as it is)
    return _in_ranges(code, _CJK_RANGES)


@lru_cache(maxsize=65536)
def _char_class(char: str) -> int:
    """0 keep, 1 remove, 2 whitespace, 3 CJK ideograph (after clean-up)."""
    code = ord(char)
    if char not in "\t\n\r" and (code == 0 or code == 0xFFFD or _category(char) in _CONTROL_CATEGORIES):
        return 1  # removed first: U+000B, U+000C, U+0085 and U+001C..U+001F are not spaces here
    if char in _WHITESPACE:
        return 2
    if _is_cjk(code):
        return 3
    return 0


def _is_punctuation(char: str) -> bool:
    return char in _ASCII_PUNCTUATION or _category(char).startswith("P")


def normalize(text: str) -> str:
    """BertNormalizer(clean_text, handle_chinese_chars, strip_accents, lowercase)."""
    out = []
    for char in text:
        kind = _char_class(char)
        if kind == 1:
            continue
        if kind == 2:
            out.append(" ")
        elif kind == 3:
            out.append(" " + char + " ")
        else:
            out.append(char)
    text = "".join(out)
    text = "".join(c for c in unicodedata.normalize("NFD", text) if _category(c) != "Mn")
    return "".join(c.lower() for c in text)  # per character: no final-sigma rule


def pre_tokenize(text: str) -> list[str]:
    """BertPreTokenizer: split at whitespace, every punctuation character its own word."""
    words: list[str] = []
    current: list[str] = []
    for char in text:
        if char in _WHITESPACE:
            if current:
                words.append("".join(current))
                current = []
        elif _is_punctuation(char):
            if current:
                words.append("".join(current))
                current = []
            words.append(char)
        else:
            current.append(char)
    if current:
        words.append("".join(current))
    return words


class WordPiece:
    """``WordPiece.from_vocab(lines).encode(text)`` -> int64 ids with ``[CLS]``/``[SEP]``."""

    def __init__(self, vocab: dict[str, int], unk_token: str = "[UNK]", cls_token: str = "[CLS]",
                 sep_token: str = "[SEP]"):
        for token in (unk_token, cls_token, sep_token):
            if token not in vocab:
                raise ValueError(f"the WordPiece vocabulary has no {token} token")
        self.vocab = vocab
        self.unk_id = vocab[unk_token]
        self.cls_id = vocab[cls_token]
        self.sep_id = vocab[sep_token]
        self.id_to_token = {index: token for token, index in vocab.items()}
        specials = [t for t in SPECIAL_TOKENS if t in vocab]
        self._special_re = re.compile("(" + "|".join(re.escape(t) for t in specials) + ")") if specials else None
        self._max_token_chars = max((len(t) for t in vocab), default=1)

    @classmethod
    def from_vocab(cls, lines: Iterable[str]) -> "WordPiece":
        """`lines`: the lines of ``vocab.txt`` (id = line index; a repeated token keeps its last id)."""
        vocab: dict[str, int] = {}
        for index, line in enumerate(lines):
            vocab[line.rstrip("\n")] = index
        return cls(vocab)

    @classmethod
    def from_file(cls, path) -> "WordPiece":
        with open(path, encoding="utf-8") as handle:
            return cls.from_vocab(handle.read().splitlines())

    def _word_ids(self, word: str) -> list[int]:
        if len(word) > MAX_CHARS_PER_WORD:
            return [self.unk_id]
        ids = []
        start = 0
        while start < len(word):
            end = min(len(word), start + self._max_token_chars + len(CONTINUATION))
            found = None
            while end > start:
                piece = word[start:end]
                if start > 0:
                    piece = CONTINUATION + piece
                found = self.vocab.get(piece)
                if found is not None:
                    break
                end -= 1
            if found is None:
                return [self.unk_id]
            ids.append(found)
            start = end
        return ids

    def tokenize_ids(self, text: str) -> list[int]:
        """Ids without ``[CLS]``/``[SEP]``."""
        ids: list[int] = []
        chunks = self._special_re.split(text) if self._special_re is not None else [text]
        for index, chunk in enumerate(chunks):
            if index % 2 == 1:  # a literal special token
                ids.append(self.vocab[chunk])
                continue
            for word in pre_tokenize(normalize(chunk)):
                ids.extend(self._word_ids(word))
        return ids

    def tokens(self, text: str) -> list[str]:
        return [self.id_to_token[i] for i in self.encode(text).tolist()]

    def encode(self, text: str) -> np.ndarray:
        """``[CLS] tokens [SEP]`` ids, int64, shape (L,)."""
        return np.array([self.cls_id, *self.tokenize_ids(text), self.sep_id], dtype=np.int64)
