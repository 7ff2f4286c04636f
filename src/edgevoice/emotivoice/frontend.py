"""EmotiVoice's text front-end: text -> upstream's phoneme string -> token ids.

Reproduces ``frontend.g2p_cn_en(text, g2p, lexicon)`` of netease-youdao/EmotiVoice (bc2de8c)
followed by ``[token2id[ph] for ph in phonemes.split()]`` (``inference_am_vocoder_joint``):

1. `numerals.tn_chinese`: every digit run becomes Chinese numerals, in any language;
2. the text is cut into runs of non-ideographs and runs of ideographs (``[\\u4e00-\\u9fa5]``)
   that also take the Chinese punctuation and spaces following them; ideograph runs go to
   `zh.g2p_cn` (without its ``<sos/eos>``), the other runs (except a lone space) to
   `en.get_eng_phoneme` (skipped when it gives nothing);
3. ``eng_cn_sp`` at an English -> Chinese switch, ``cn_eng_sp`` at Chinese -> English unless
   the last token contains ``sp``; a final token containing ``sp`` is dropped; the whole is
   wrapped in ``<sos/eos>``.

Upstream failures become `TextError` with a one-line message: a symbol missing from the
model's ``tokenlist`` (upstream ``KeyError``, e.g. ``呣`` -> ``em2``) and numbers its cn2an
cannot read (``1.2.3``).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import TextError
from .en import get_eng_phoneme, parse_lexicon, read_lexicon
from .numerals import tn_chinese
from .zh import CHINESE_PUNCTUATION, g2p_cn, warm_up

IDEOGRAPHS = "\u4e00-\u9fa5"
# upstream `frontend.re_english_word`: a run of non-ideographs, or ideographs together with
# the Chinese punctuation and spaces after them (the first branch wins at a non-ideograph)
_PART_RE = re.compile(f"([^{IDEOGRAPHS}]+|[ {CHINESE_PUNCTUATION}{IDEOGRAPHS}]+)")
_IDEOGRAPH_RE = re.compile(f"[{IDEOGRAPHS}]")

SOS_EOS = "<sos/eos>"


def contains_chinese(text: str) -> bool:
    return _IDEOGRAPH_RE.search(text) is not None


class Frontend:
    """Text -> (phoneme string, token ids) for one EmotiVoice model.

    `tokenlist`: the lines of ``data/youdao/text/tokenlist`` (id = line index, lines stripped);
    `lexicon_path`: the English lexicon (``lexicon/librispeech-lexicon.txt``), or give its
    contents as `lexicon_text` instead.
    """

    def __init__(self, tokenlist: list[str], lexicon_path: Path | str | None = None, *,
                 lexicon_text: str | None = None):
        if (lexicon_path is None) == (lexicon_text is None):
            raise ValueError("give exactly one of lexicon_path and lexicon_text")
        self.symbols = [line.strip() for line in tokenlist]
        # upstream: {line.strip(): index} - a repeated symbol keeps its last index
        self.token2id = {symbol: index for index, symbol in enumerate(self.symbols)}
        self.lexicon = read_lexicon(Path(lexicon_path)) if lexicon_text is None else parse_lexicon(lexicon_text)

    @classmethod
    def from_files(cls, tokenlist_path: Path | str, lexicon_path: Path | str) -> "Frontend":
        lines = Path(tokenlist_path).read_text(encoding="utf-8").splitlines()
        return cls(lines, lexicon_path)

    @staticmethod
    def warm_up() -> None:
        """Load jieba's dictionary and the pinyin tables now instead of on the first Chinese text."""
        warm_up()

    def g2p(self, text: str) -> str:
        """Upstream ``g2p_cn_en(text, g2p, lexicon)``: the phoneme string with ``<sos/eos>``."""
        text = tn_chinese(text)
        tokens = [SOS_EOS]
        chartype = ""
        for part in _PART_RE.split(text):
            if part in ("", " "):
                continue
            # upstream also sends digit runs to g2p_cn; none are left after tn_chinese
            if contains_chinese(part):
                if chartype == "en":
                    tokens.append("eng_cn_sp")
                phones = g2p_cn(part)[1:-1]
                chartype = "cn"
            else:
                if chartype == "cn" and "sp" not in tokens[-1]:
                    tokens.append("cn_eng_sp")  # added even if the part then gives no phones
                phones = get_eng_phoneme(part, self.lexicon)
                if not phones:
                    continue
                chartype = "en"
            tokens.extend(phones)
        tokens = " ".join(tokens).split()
        if "sp" in tokens[-1]:
            tokens.pop()
        tokens.append(SOS_EOS)
        return " ".join(tokens)

    def ids(self, phonemes: str) -> list[int]:
        ids = []
        for symbol in phonemes.split():
            index = self.token2id.get(symbol)
            if index is None:
                raise TextError(
                    f"the text gives the phone {symbol!r}, which this EmotiVoice model's symbol table "
                    f"(tokenlist, {len(self.symbols)} symbols) does not have"
                )
            ids.append(index)
        return ids

    def phonemes(self, text: str) -> tuple[str, list[int]]:
        """Text -> (upstream's phoneme string, token ids)."""
        phonemes = self.g2p(text)
        return phonemes, self.ids(phonemes)


# --- splitting long text ---------------------------------------------------------------

_SENTENCE_END = "。！？!?；;…"
_CLAUSE_END = "，、,：:—"
_CLOSERS = "”’」』》〉】）)]}\"'"
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "no", "mt"}
_SPOKEN_RE = re.compile(rf"[0-9A-Za-z{IDEOGRAPHS}\u00c0-\u024f]")


def _sentence_ends(text: str) -> list[int]:
    """Indices just after each sentence end (closing quotes/brackets stay with the sentence)."""
    ends = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        is_end = False
        if c == "\n":
            is_end = True
        elif c in _SENTENCE_END:
            is_end = True
        elif c == "." and (i + 1 == n or text[i + 1].isspace() or text[i + 1] in _CLOSERS):
            word = re.search(r"[A-Za-z.]*$", text[:i]).group(0).lower()
            initial = len(word) == 1 and word.isalpha()  # "J. Smith"
            dotted = "." in word  # "U.S.", "e.g."
            is_end = word not in _ABBREVIATIONS and not initial and not dotted
        if is_end:
            j = i + 1
            while j < n and (text[j] in _SENTENCE_END or text[j] in _CLOSERS or text[j] == "."):
                j += 1
            ends.append(j)
            i = j
        else:
            i += 1
    return ends


def _cut_long(piece: str, max_chars: int) -> list[str]:
    """A piece over `max_chars`: cut after clause punctuation, else at a space, else hard."""
    out = []
    while len(piece) > max_chars:
        window = piece[:max_chars]
        cut = max((window.rfind(c) for c in _CLAUSE_END), default=-1) + 1
        if cut <= 0:
            cut = window.rfind(" ") + 1
        if cut <= 0:
            cut = max_chars
        while cut < len(piece) and piece[cut] in _CLOSERS:
            cut += 1
        head, piece = piece[:cut].strip(), piece[cut:].strip()
        if head:
            out.append(head)
    if piece.strip():
        out.append(piece.strip())
    return out


def split_sentences(text: str, max_chars: int = 120) -> list[str]:
    """Cut long text into sentences of at most `max_chars` characters for synthesis.

    Splits after Chinese and English sentence-final punctuation (``。！？；…`` and ``.!?;``, an
    English full stop only before a space or the end and not after a common abbreviation, an
    initial or a dotted acronym, so ``4.99``, ``Mr. Smith`` and ``the U.S. team`` stay whole)
    and at line breaks; closing quotes and brackets stay with their sentence. A sentence longer than `max_chars` is cut after
    clause punctuation (``，、,：:``), else at the last space, else hard. Pieces with nothing
    to pronounce (only punctuation) are appended to the previous piece.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    pieces: list[str] = []
    start = 0
    for end in _sentence_ends(text) + [len(text)]:
        sentence = text[start:end].strip()
        start = end
        if not sentence:
            continue
        for piece in _cut_long(sentence, max_chars):
            if pieces and _SPOKEN_RE.search(piece) is None and len(pieces[-1]) + len(piece) <= max_chars:
                pieces[-1] += piece
            else:
                pieces.append(piece)
    return pieces
