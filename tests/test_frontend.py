"""Text front-end: symbol tables, own expectations, upstream conformance corpus, isolation."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgevoice.frontend import FrontendError, phonemize
from edgevoice.frontend.symbols import V2_FINGERPRINT, symbol_table

SHARED = Path(__file__).resolve().parents[2] / "shared"
CORPUS_DIR = SHARED / "fixtures" / "frontend"
TINY_DIR = SHARED / "fixtures" / "gpt_sovits" / "fixtures"
OWN_CASES = Path(__file__).resolve().parent / "data" / "frontend_cases.json"


def test_symbol_tables():
    v2 = symbol_table("v2")
    assert len(symbol_table("v1")) == 322 and len(v2) == 732
    assert v2[:322] == symbol_table("v1")
    assert hashlib.sha256("\n".join(v2).encode("utf-8")).hexdigest() == V2_FINGERPRINT
    anchors = {"!": 0, ",": 1, "-": 2, ".": 3, "?": 4, "AA": 5, "SP": 77, "UNK": 86, "_": 95, "…": 321}
    assert all(v2[i] == s for s, i in anchors.items())


def _own_cases():
    return json.loads(OWN_CASES.read_text(encoding="utf-8"))["cases"]


@pytest.mark.parametrize("case", _own_cases(), ids=lambda c: c["name"])
def test_own_expectations(case):
    if case.get("error"):
        with pytest.raises(FrontendError):
            phonemize(case["text"], case["language"])
        return
    result = phonemize(case["text"], case["language"])
    assert result.norm_text == case["norm_text"]
    assert result.phones == case["phones"]
    if "word2ph" in case:
        assert result.word2ph == case["word2ph"]


def _corpus_records():
    if not CORPUS_DIR.is_dir():
        return []
    records = []
    for path in sorted(CORPUS_DIR.glob("gpt_sovits_v2_*.jsonl")):
        records += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return records


def _check_record(record) -> str | None:
    """None when our output matches upstream's, else a one-line description."""
    if record["expected_error"]:
        try:
            result = phonemize(record["text"], record["language"])
        except FrontendError:
            return None
        return f"upstream fails ({record['expected_error']['type']}) but we gave {result.phones}"
    result = phonemize(record["text"], record["language"])
    if result.phone_ids != record["phone_ids"]:
        return f"phones {result.phones} != {record['phones']}"
    if result.norm_text != record["norm_text"]:
        return f"norm_text {result.norm_text!r} != {record['norm_text']!r}"
    if record["word2ph"] is not None and result.word2ph != record["word2ph"]:
        return f"word2ph {result.word2ph} != {record['word2ph']}"
    return None


@pytest.mark.skipif(not CORPUS_DIR.is_dir(), reason=f"conformance corpus not found at {CORPUS_DIR}")
@pytest.mark.parametrize("language", ["en", "zh", "ja"])
def test_conformance_corpus(language):
    records = [r for r in _corpus_records() if r["id"].startswith(language + "-")]
    assert records
    failures = [f"{r['id']} {r['text']!r}: {msg}" for r in records if (msg := _check_record(r))]
    assert not failures, "\n".join(failures)


def test_no_torch_no_nltk_no_download():
    """The front-end runs with torch and nltk made unimportable."""
    code = (
        "import sys\n"
        "for name in ('torch', 'nltk', 'g2p_en', 'transformers'):\n"
        "    sys.modules[name] = None\n"
        "from edgevoice.frontend import phonemize\n"
        "r = phonemize('Dr. Smith paid $3.50 for 2 zorblaxes.', 'en')\n"
        "assert r.phone_ids, r\n"
        "assert sys.modules['torch'] is None and sys.modules['nltk'] is None\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
