"""Text front-end: symbol tables, own expectations, upstream conformance corpus, isolation."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgevoice.gpt_sovits.frontend import FrontendError, cut_text, phonemize, prepare_prompt_text, split_target_text
from edgevoice.gpt_sovits.frontend.symbols import V2_FINGERPRINT, symbol_table

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
    """The front-end runs with torch, nltk and g2p_en unimportable and the network cut off."""
    code = (
        "import sys\n"
        "for name in ('torch', 'nltk', 'g2p_en', 'transformers'):\n"
        "    sys.modules[name] = None\n"
        "import socket\n"
        "def no_network(*args, **kwargs):\n"
        "    raise OSError('network use attempted')\n"
        "socket.socket.connect = socket.socket.connect_ex = no_network\n"
        "from edgevoice.gpt_sovits.frontend import phonemize\n"
        "r = phonemize('Dr. Smith paid $3.50 for 2 zorblaxes.', 'en')\n"
        "assert r.phone_ids, r\n"
        "assert phonemize('我们用Zoom开会，花了30%的时间。', 'all_zh').word2ph is None\n"
        "assert phonemize('今日はいい天気ですね。', 'all_ja').phone_ids\n"
        "assert sys.modules['torch'] is None and sys.modules['nltk'] is None\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")


@pytest.mark.skipif(not TINY_DIR.is_dir(), reason=f"tiny GPT-SoVITS fixtures not found at {TINY_DIR}")
@pytest.mark.parametrize("lang_key,language", [("en", "en"), ("zh", "all_zh")])
def test_tiny_fixture_texts(lang_key, language):
    """The prompt path (final mark fix-up) and the target path (preprocess, cut0)."""
    np = pytest.importorskip("numpy")
    data = np.load(TINY_DIR / f"text_{lang_key}_tiny.npz")
    prompt = phonemize(prepare_prompt_text(str(data["prompt_text"]), language), language)
    assert prompt.phone_ids == data["prompt_phones"].tolist()
    assert prompt.norm_text == str(data["prompt_norm_text"])
    pieces = split_target_text(str(data["target_text"]), language, "cut0")
    assert len(pieces) == 1
    target = phonemize(pieces[0], language)
    assert target.phone_ids == data["target_phones"].tolist()
    assert target.norm_text == str(data["target_norm_text"])
    if "target_word2ph" in data.files:
        assert target.word2ph == data["target_word2ph"].tolist()
        assert sum(target.word2ph) == len(target.phone_ids) == data["target_bert"].shape[1]


def test_cut_methods():
    text = "你好。今天天气很好，我们去公园吧！明天呢？也许会下雨。后天晴。"
    assert cut_text(text, "cut0") == [text]
    assert cut_text(text, "cut5") == ["你好。", "今天天气很好，", "我们去公园吧！", "明天呢？", "也许会下雨。", "后天晴。"]
    assert cut_text(text, "cut3") == ["你好", "今天天气很好，我们去公园吧！明天呢？也许会下雨", "后天晴"]
    # six sentences: the last group of four takes the remainder, as upstream slices it
    assert cut_text(text, "cut1") == [text]
    assert cut_text("A. B. C. D. E. F. G. H. I.", "cut1") == ["A. B. C. D.", " E. F. G. H. I."]
    assert cut_text("It costs 3.5 dollars. Yes.", "cut4") == ["It costs 3.5 dollars", " Yes"]
    assert cut_text("Pi is 3.14, roughly.", "cut5") == ["Pi is 3.14,", " roughly."]
    assert cut_text("。。", "cut5") == []
    with pytest.raises(FrontendError):
        cut_text(text, "cut9")


def test_prompt_and_target_paths():
    assert prepare_prompt_text("Hello there", "en") == "Hello there."
    assert prepare_prompt_text("你好", "all_zh") == "你好。"
    assert prepare_prompt_text("Done!", "en") == "Done!"
    # short first sentence gets a leading mark; pieces shorter than 5 chars are merged
    assert split_target_text("嗨，你好", "all_zh", "cut0") == ["。嗨，你好。"]
    assert split_target_text("Hi. Ok. Good morning to you all", "en", "cut5") == ["Hi. Ok.", " Good morning to you all."]
    with pytest.raises(FrontendError):
        split_target_text("?!", "en", "cut0")


def test_auto_and_mixed_languages():
    result = phonemize("我喜欢Apple的手机。今日はいい天気ですね。", "auto")
    assert [s.lang for s in result.segments] == ["zh", "en", "zh", "ja"]
    assert result.word2ph is None and result.segments[0].word2ph == [2, 2, 2]
    assert phonemize("我们用Zoom开会。", "zh").phone_ids == phonemize("我们用Zoom开会。", "all_zh").phone_ids
    with pytest.raises(FrontendError):
        phonemize("안녕하세요", "auto")
    with pytest.raises(FrontendError):
        phonemize("hello", "fr")


def test_version_v1_ids():
    v2 = phonemize("一会儿见。", "all_zh")
    v1 = phonemize("一会儿见。", "all_zh", version="v1")
    assert "er4" in v2.phones and "er5" in v1.phones  # v1 had no erhua merging
    assert all(i < 322 for i in phonemize("こんにちは。", "all_ja", version="v1").phone_ids)
