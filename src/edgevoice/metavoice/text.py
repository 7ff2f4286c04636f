"""MetaVoice-1B text input: upstream's ``normalize_text`` and its tiktoken BPE tokenizer, torch- and
tiktoken-free.

Upstream (metavoiceio/metavoice-src ``fam/llm/utils.py``, ``fam/quantiser/text/tokenise.py``):

1. ``normalize_text``: a 27-entry translate table (curly quotes, dashes, ellipsis, primes, ...),
   then any code point >= 256 is refused (the model's BPE was trained on Latin-1 text);
   ``\\t \\n \\r *`` become spaces, the text is stripped and runs of two or more whitespace
   characters collapse to one space.
2. ``TrainedBPETokeniser.encode``: ``tiktoken.Encoding(...).encode(text)`` (which refuses text
   containing a special token), ``<|endoftext|>`` appended, then the stage's offset added to
   every id (stage 1: 2049, stage 2: 1025 in the released checkpoints).

`BpeTokenizer` re-implements tiktoken's byte-pair encoding: split the text with ``pat_str``
(the `regex` module, as tiktoken's fancy-regex understands ``\\p{L}`` and look-ahead), then
inside each piece merge the adjacent pair whose concatenation has the lowest rank until no pair
is in the table.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Iterable, Mapping

import regex

from edgevoice.errors import BundleError, TextError

__all__ = ["TextError", "BpeTokenizer", "normalize_text", "EOT_TOKEN"]

EOT_TOKEN = "<|endoftext|>"

# Upstream's table, entry for entry. The "TM" key is 2122 *decimal* (U+084A MANDAIC LETTER AIN),
# not 0x2122: upstream therefore rejects "™" and turns U+084A into "TM"; kept to match it.
_TRANSLATE = {
    0x1FEF: "'", 0x1FFD: "'", 0x1FFE: "'",
    0x2010: "-", 0x2011: "-", 0x2012: "-", 0x2013: "-", 0x2014: "-", 0x2015: "-",
    0x2016: "||", 0x2018: "'", 0x2019: "'", 0x201A: ",", 0x201B: "`", 0x201C: '"', 0x201D: '"',
    0x201E: ",,", 0x201F: '"', 0x2024: ".", 0x2025: "..", 0x2026: "...",
    0x2032: "'", 0x2033: '"', 0x2035: "'", 0x2036: '"',
    0xB4: "'",
    2122: "TM",
}
FIRST_UNSUPPORTED = 256
_SPACED = str.maketrans({"\t": " ", "\n": " ", "\r": " ", "*": " "})
# Python's `re` (not `regex`): its \s is str.isspace(), which is what upstream's re.sub matched
_MULTI_SPACE = re.compile(r"\s\s+")

# Limits on a tokenizer table read from a bundle or checkpoint (real tables: ~100k-200k ranks,
# tokens up to a few hundred bytes), so that a corrupt file fails early with a clear message.
MAX_RANKS = 1 << 21
MAX_TOKEN_BYTES = 4096
MAX_SPECIAL_TOKENS = 4096
MAX_PATTERN_CHARS = 10_000
# The split pattern comes from the checkpoint: a crafted one can backtrack exponentially ("(?:a|aa)+$" took 4 s for
# 34 characters, and doubles with each). GPT-2's splits a whole 20,000-character text in milliseconds, so a text
# that takes longer than this is refused rather than left to pin a core.
PATTERN_SECONDS = 2.0
MAX_ID = (1 << 31) - 1


def normalize_text(text: str) -> str:
    """Upstream's ``normalize_text``; `TextError` for characters the BPE cannot take (>= U+0100)."""
    text = text.translate(_TRANSLATE)
    unsupported = sorted({char for char in text if ord(char) >= FIRST_UNSUPPORTED})
    if unsupported:
        # upstream lists a Python set (order varies between runs); sorted by code point here
        names = ", ".join(f"U+{ord(char):04X} {char!r}" for char in unsupported)
        raise TextError(f"MetaVoice only reads Latin-1 text; unsupported characters: {names}")
    return _MULTI_SPACE.sub(" ", text.translate(_SPACED).strip())


def _table_error(message: str) -> BundleError:
    return BundleError(f"MetaVoice BPE tokenizer table: {message}")


def _check_id(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise _table_error(f"{what} must be an integer in [0, {MAX_ID}], got {value!r}")
    return value


class BpeTokenizer:
    """tiktoken's byte-level BPE over a ``{token bytes: rank}`` table plus special tokens.

    ``offset`` is the model's id offset stored with the table (None when the table has none);
    `text_ids` adds it.
    """

    def __init__(self, name: str, pat_str: str, mergeable_ranks: Mapping[bytes, int],
                 special_tokens: Mapping[str, int], offset: int | None = None):
        if not isinstance(name, str):
            raise _table_error(f"name must be a string, got {type(name).__name__}")
        self.name = name
        self.pat_str = pat_str
        self._pattern = self._compile(pat_str)
        self._ranks = self._check_ranks(mergeable_ranks)
        self._special = self._check_special(special_tokens, self._ranks)
        if offset is not None:
            _check_id(offset, "offset")
        self.offset = offset
        self._decoder = {rank: token for token, rank in self._ranks.items()}
        self._decoder.update((index, token.encode("utf-8")) for token, index in self._special.items())

    @staticmethod
    def _compile(pat_str) -> regex.Pattern:
        if not isinstance(pat_str, str) or not pat_str or len(pat_str) > MAX_PATTERN_CHARS:
            raise _table_error(f"pat_str must be a non-empty string of at most {MAX_PATTERN_CHARS} characters")
        try:
            return regex.compile(pat_str)
        except regex.error as exc:
            raise _table_error(f"pat_str does not compile ({exc})") from None

    @staticmethod
    def _check_ranks(mergeable_ranks) -> dict[bytes, int]:
        if not isinstance(mergeable_ranks, Mapping):
            raise _table_error(f"mergeable_ranks must be a mapping, got {type(mergeable_ranks).__name__}")
        if not 256 <= len(mergeable_ranks) <= MAX_RANKS:
            raise _table_error(f"{len(mergeable_ranks)} ranks (expected 256 to {MAX_RANKS})")
        ranks: dict[bytes, int] = {}
        seen: set[int] = set()
        for token, rank in mergeable_ranks.items():
            if not isinstance(token, bytes) or not 1 <= len(token) <= MAX_TOKEN_BYTES:
                raise _table_error(f"token {token!r:.60} is not 1 to {MAX_TOKEN_BYTES} bytes")
            _check_id(rank, f"rank of {token!r:.60}")
            if rank in seen:
                raise _table_error(f"rank {rank} is used twice (ranks must be unique)")
            seen.add(rank)
            ranks[token] = rank
        # every byte must be a token by itself, or some pieces could not be encoded at all
        missing = [value for value in range(256) if bytes((value,)) not in ranks]
        if missing:
            raise _table_error(f"{len(missing)} single bytes have no rank (first: 0x{missing[0]:02x})")
        return ranks

    @staticmethod
    def _check_special(special_tokens, ranks: dict[bytes, int]) -> dict[str, int]:
        if not isinstance(special_tokens, Mapping) or len(special_tokens) > MAX_SPECIAL_TOKENS:
            raise _table_error(f"special_tokens must be a mapping of at most {MAX_SPECIAL_TOKENS} entries")
        used = set(ranks.values())
        special: dict[str, int] = {}
        for token, index in special_tokens.items():
            if not isinstance(token, str) or not token:
                raise _table_error(f"special token {token!r:.60} is not a non-empty string")
            _check_id(index, f"id of special token {token!r:.60}")
            if index in used:
                raise _table_error(f"special token {token!r:.60} reuses id {index}")
            used.add(index)
            special[token] = index
        if EOT_TOKEN not in special:
            raise _table_error(f"no {EOT_TOKEN} special token")
        return special

    # --- construction from the checkpoint's dict and the bundle's JSON form ---

    @classmethod
    def from_meta(cls, meta: Mapping) -> "BpeTokenizer":
        """From a checkpoint's ``meta["tokenizer"]`` (``mergeable_ranks`` maps bytes to int)."""
        missing = [key for key in ("name", "pat_str", "mergeable_ranks", "special_tokens") if key not in meta]
        if missing:
            raise _table_error(f"missing keys {missing}")
        return cls(meta["name"], meta["pat_str"], meta["mergeable_ranks"], meta["special_tokens"],
                   meta.get("offset"))

    @classmethod
    def from_json(cls, data: Mapping) -> "BpeTokenizer":
        """From the JSON form `to_json` writes (token bytes as base64); other keys are ignored."""
        if not isinstance(data, Mapping):
            raise _table_error(f"expected a JSON object, got {type(data).__name__}")
        missing = [key for key in ("name", "pat_str", "mergeable_ranks_base64", "special_tokens") if key not in data]
        if missing:
            raise _table_error(f"missing keys {missing}")
        return cls(data["name"], data["pat_str"], _ranks_from_base64(data["mergeable_ranks_base64"]),
                   data["special_tokens"], data.get("offset"))

    def to_json(self) -> dict:
        """JSON-serialisable form (ranks in rank order, token bytes as base64)."""
        ranks = sorted(self._ranks.items(), key=lambda item: item[1])
        out = {"name": self.name, "pat_str": self.pat_str,
               "mergeable_ranks_base64": [[base64.b64encode(token).decode("ascii"), rank] for token, rank in ranks],
               "special_tokens": dict(self._special)}
        if self.offset is not None:
            out["offset"] = self.offset
        return out

    # --- encoding ---

    @property
    def eot_id(self) -> int:
        """Raw id of ``<|endoftext|>`` (no offset)."""
        return self._special[EOT_TOKEN]

    @property
    def n_vocab(self) -> int:
        """One more than the largest id (ranks and special tokens)."""
        return max(self._decoder) + 1

    def encode(self, text: str) -> list[int]:
        """Raw BPE ids, as ``tiktoken.Encoding.encode(text)`` with its default special-token check."""
        found = [(text.find(token), token) for token in self._special if token in text]
        if found:
            raise TextError(f"text contains the special token {min(found)[1]!r}, which is not allowed in input text")
        try:
            pieces = [match.group() for match in self._pattern.finditer(_encodable(text), timeout=PATTERN_SECONDS)]
        except TimeoutError:
            raise _table_error(f"its pat_str took over {PATTERN_SECONDS:g} s to split a text of {len(text)} "
                               "characters (a pattern that backtracks without end)") from None
        ids: list[int] = []
        for piece in pieces:
            ids.extend(self._piece_ids(piece.encode("utf-8")))
        return ids

    def _piece_ids(self, piece: bytes) -> list[int]:
        ranks = self._ranks
        whole = ranks.get(piece)
        if whole is not None:
            return [whole]
        none = MAX_ID + 1  # "this pair is not a token"
        # token j is piece[bounds[j]:bounds[j + 1]]; pair_rank[j] ranks tokens j and j + 1 joined
        bounds = list(range(len(piece) + 1))
        pair_rank = [ranks.get(piece[j:j + 2], none) for j in range(len(piece) - 1)]
        while pair_rank:
            best = min(pair_rank)
            if best == none:
                break
            j = pair_rank.index(best)  # the leftmost of equal ranks, as tiktoken
            del bounds[j + 1]
            del pair_rank[j]
            if j > 0:
                pair_rank[j - 1] = ranks.get(piece[bounds[j - 1]:bounds[j + 1]], none)
            if j < len(pair_rank):
                pair_rank[j] = ranks.get(piece[bounds[j]:bounds[j + 2]], none)
        return [ranks[piece[bounds[j]:bounds[j + 1]]] for j in range(len(bounds) - 1)]

    def decode(self, ids: Iterable[int]) -> str:
        """Raw ids (no offset) back to text; invalid UTF-8 becomes U+FFFD, as tiktoken."""
        chunks = []
        for index in ids:
            token = self._decoder.get(int(index))
            if token is None:
                raise TextError(f"token id {int(index)} is not in the MetaVoice tokenizer")
            chunks.append(token)
        return b"".join(chunks).decode("utf-8", errors="replace")

    def text_ids(self, text: str, offset: int | None = None) -> list[int]:
        """normalize_text + encode + ``<|endoftext|>``, each id plus `offset` (default: the table's own).

        Upstream's ``TrainedBPETokeniser(**meta["tokenizer"]).encode(normalize_text(text))``.
        """
        if offset is None:
            offset = self.offset if self.offset is not None else 0
        return [index + offset for index in self.encode(normalize_text(text)) + [self.eot_id]]


def _encodable(text: str) -> str:
    """`text` with lone surrogates replaced by U+FFFD (tiktoken's own fallback; UTF-8 refuses them)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _ranks_from_base64(pairs) -> dict[bytes, int]:
    if not isinstance(pairs, list) or len(pairs) > MAX_RANKS:
        raise _table_error(f"mergeable_ranks_base64 must be a list of at most {MAX_RANKS} [base64, rank] pairs")
    ranks: dict[bytes, int] = {}
    for pair in pairs:
        if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], str):
            raise _table_error(f"entry {pair!r:.60} is not a [base64, rank] pair")
        try:
            token = base64.b64decode(pair[0], validate=True)
        except (binascii.Error, ValueError):
            raise _table_error(f"entry {pair[0]!r:.60} is not base64") from None
        if token in ranks:
            raise _table_error(f"token {token!r:.60} appears twice")
        ranks[token] = pair[1]
    return ranks
