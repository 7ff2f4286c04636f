"""g2p_en 2.1.0 without NLTK downloads, shared by the families' English front ends: the tokenizer upstream's
NLTK TweetTokenizer amounts to on normalised text, and g2p_en's neural grapheme-to-phoneme model run in numpy from
the weights its pip package ships."""

from __future__ import annotations

import importlib.metadata
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import TextError

_TOKEN_RE = re.compile(
    r"""
    (?<!@)[a-z0-9]+(?:[.\-][a-z0-9]+){0,126}[.](?:[a-z]{2,13})\b/?(?!@)  # naked domain
    | [^\W\d_](?:[^\W\d_]|['\-_])+[^\W\d_]   # word with inner apostrophes or hyphens
    | [\w_]+                                 # plain word
    | \.(?:[^\S\r\n]*\.)+                    # spaced ellipsis
    | \S                                     # any other single mark
    """,
    re.VERBOSE | re.IGNORECASE,
)
_LONG_REPEAT_RE = re.compile(r"([^A-Za-z0-9])\1{3,}")


def tokenize(text: str) -> list[str]:
    return _TOKEN_RE.findall(_LONG_REPEAT_RE.sub(r"\1\1\1", text))


def package_dir(name: str) -> Path:
    """Folder of an installed package, found from its metadata (the package is not imported)."""
    try:
        folder = Path(importlib.metadata.distribution(name).locate_file(name))
    except importlib.metadata.PackageNotFoundError as exc:
        raise TextError(
            f"the English front-end needs the '{name}' package: pip install {name}"
        ) from exc
    if not folder.is_dir():
        raise TextError(f"the '{name}' package has no data folder at {folder}: reinstall it")
    return folder


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
    return NeuralG2p(package_dir("g2p_en") / "checkpoint20.npz")
