"""Calibration text corpus for INT8 post-training quantisation.

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

__all__ = ["LANGUAGES", "CORPUS_DIR", "load_corpus"]

LANGUAGES: tuple[str, ...] = ("en", "zh", "ja")
CORPUS_DIR: Path = Path(__file__).resolve().parent / "corpus"


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
