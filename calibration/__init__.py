"""Calibration for INT8 post-training quantisation: the text corpus, how sentences are picked from it and how
recorded items are split into calibration and held-out sets (this module); the family-neutral recorder
(`collect.py`); and what each family synthesises to feed it (`gpt_sovits.py`, `emotivoice.py`).

NNCF's post-training quantisation needs *representative* inputs for every
exported graph (BERT feature extractor, GPT text-to-semantic decoder, SoVITS
vocoder ...).  Rather than feeding random tensors, we run the real PyTorch /
OpenVINO front-end on a fixed set of sentences and record the tensors that
actually reach each graph.  This module ships that sentence set.

The corpus lives in ``corpus/<lang>.txt`` (UTF-8, one sentence per line) and
covers English, Simplified Chinese and Japanese.  It is deliberately varied:
very short to long utterances, questions and exclamations, numbers (dates,
times, decimals, percentages, currency, digit strings), rich punctuation
(full-width for zh/ja), acronyms and embedded Latin words, Chinese polyphonic
characters and tone-sandhi cases, Japanese kana/kanji mixes, long vowels and
small tsu.  All sentences are original; none name real people or contain real
personal contact data.

Blank lines and lines starting with ``#`` are ignored.  This module does not
import torch or any other heavy dependency.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["LANGUAGES", "CORPUS_DIR", "HOLD_OUT_EVERY", "load_corpus", "sample_sentences", "split_items"]

LANGUAGES: tuple[str, ...] = ("en", "zh", "ja")
CORPUS_DIR: Path = Path(__file__).resolve().parent / "corpus"
HOLD_OUT_EVERY = 5  # every 5th recorded item is held out of calibration and used only for the accuracy gate


def _read_language(language: str) -> list[str]:
    path = CORPUS_DIR / f"{language}.txt"
    if not path.is_file():
        raise ValueError(
            f"no calibration corpus for language {language!r} (expected {path}); "
            f"available: {', '.join(LANGUAGES)}"
        )
    sentences: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        sentences.append(line)
    return sentences


def load_corpus(languages=LANGUAGES) -> list[tuple[str, str]]:
    """Return ``(language, sentence)`` pairs in a stable order.

    Languages come in the order given; sentences keep their file order.
    A single language may be passed as a plain string (``"zh"``).
    Raises ``ValueError`` for a language without a corpus file.
    """
    if isinstance(languages, str):
        languages = (languages,)
    pairs: list[tuple[str, str]] = []
    for language in languages:
        pairs.extend((language, s) for s in _read_language(language))
    return pairs


def sample_sentences(count: int | None, sentences: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """`count` sentences spread evenly over `sentences` (default: the calibration corpus, all languages)."""
    sentences = list(sentences) if sentences is not None else load_corpus()
    if count is None or count >= len(sentences):
        return sentences
    picks = np.linspace(0, len(sentences) - 1, max(1, count)).round().astype(int)
    return [sentences[i] for i in dict.fromkeys(picks)]


def split_items(items: list) -> tuple[list, list]:
    """(calibration, held-out). With fewer than HOLD_OUT_EVERY items both are all items (in-sample check)."""
    if len(items) < HOLD_OUT_EVERY:
        return items, items
    held = [item for i, item in enumerate(items) if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1]
    return [item for i, item in enumerate(items) if i % HOLD_OUT_EVERY != HOLD_OUT_EVERY - 1], held
