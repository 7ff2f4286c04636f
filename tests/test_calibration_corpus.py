"""Checks on the INT8 calibration text corpus (calibration/corpus/*.txt)."""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MIN_COUNTS = {"en": 80, "zh": 70, "ja": 60}
LONG_THRESHOLD = {"en": 100, "zh": 40, "ja": 40}
SHORT_THRESHOLD = 20

CJK = re.compile(r"[\u4e00-\u9fff]")
KANA = re.compile(r"[\u3040-\u309f\u30a0-\u30ff]")
ASCII_ISH = re.compile(r"^[\x20-\x7e\u2014\u2013\u2026\u20ac\u00a3\u2018\u2019\u201c\u201d]+$")


def _load_module():
    try:
        return importlib.import_module("edgevoice_calibration")
    except ImportError:
        spec = importlib.util.spec_from_file_location(
            "edgevoice_calibration", ROOT / "calibration" / "__init__.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault("edgevoice_calibration", module)
        spec.loader.exec_module(module)
        return module


calib = _load_module()


def _sentences(lang: str) -> list[str]:
    return [s for l, s in calib.load_corpus((lang,)) if l == lang]


@pytest.mark.parametrize("lang", sorted(MIN_COUNTS))
def test_counts(lang):
    assert len(_sentences(lang)) >= MIN_COUNTS[lang]


def test_total_and_stable_order():
    first = calib.load_corpus()
    assert len(first) >= sum(MIN_COUNTS.values())
    assert first == calib.load_corpus()
    assert [l for l, _ in first] == sorted(
        (l for l, _ in first), key=("en", "zh", "ja").index
    )
    assert calib.load_corpus("zh") == calib.load_corpus(("zh",))


def test_unknown_language():
    with pytest.raises(ValueError):
        calib.load_corpus(("xx",))


@pytest.mark.parametrize("lang", sorted(MIN_COUNTS))
def test_no_duplicates_no_empty(lang):
    sentences = _sentences(lang)
    assert all(s and s == s.strip() for s in sentences)
    assert not any(s.startswith("#") for s in sentences)
    dupes = {s for s in sentences if sentences.count(s) > 1}
    assert not dupes, dupes


@pytest.mark.parametrize("lang", sorted(MIN_COUNTS))
def test_files_are_clean_utf8(lang):
    raw = (ROOT / "calibration" / "corpus" / f"{lang}.txt").read_bytes()
    text = raw.decode("utf-8")  # raises if not UTF-8
    assert not text.startswith("\ufeff")
    assert "\r" not in text
    assert not any(line.strip() == "" for line in text.splitlines())


def test_script_en():
    for s in _sentences("en"):
        assert ASCII_ISH.match(s), s
        assert re.search(r"[A-Za-z]", s), s


def test_script_zh():
    for s in _sentences("zh"):
        assert CJK.search(s), s
        assert not KANA.search(s), s


def test_script_ja():
    for s in _sentences("ja"):
        assert KANA.search(s), s


@pytest.mark.parametrize("lang", sorted(MIN_COUNTS))
def test_length_spread(lang):
    lengths = [len(s) for s in _sentences(lang)]
    assert sum(n < SHORT_THRESHOLD for n in lengths) >= 3
    assert sum(n > LONG_THRESHOLD[lang] for n in lengths) >= 3


def test_en_has_very_long_sentences():
    assert any(len(s.split()) >= 40 for s in _sentences("en"))


@pytest.mark.parametrize("lang", ["zh", "ja"])
def test_cjk_has_very_long_sentences(lang):
    assert any(len(s) >= 60 for s in _sentences(lang))


@pytest.mark.parametrize("lang", sorted(MIN_COUNTS))
def test_coverage_features(lang):
    text = "\n".join(_sentences(lang))
    assert re.search(r"\d", text)
    assert "%" in text
    assert re.search(r"\d+-\d+-\d+", text)  # phone-like digit string
    if lang == "en":
        assert "?" in text and "!" in text and ";" in text and "..." in text
        assert re.search(r"\b[A-Z]{2,}\b", text)  # acronyms
    else:
        marks = "，。？！（）“”；：《》、" if lang == "zh" else "、。？！（）「」『』"
        for mark in marks:
            assert mark in text, mark
        assert "……" in text
        assert re.search(r"[A-Za-z]{2,}", text)  # embedded Latin words
    if lang == "zh":
        for ch in "一不行长重了":
            assert ch in text, ch
    if lang == "ja":
        assert "ー" in text and "っ" in text and CJK.search(text)
