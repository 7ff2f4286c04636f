"""EmotiVoice text front-end and style-BERT WordPiece tokenizer against upstream's fixtures.

Reference: ``../shared/fixtures/emotivoice`` (made by running netease-youdao/EmotiVoice bc2de8c
itself, see its README §4.1, §7 items 1-6 and §8).

Corpus differences: none. All 100 sentences of ``frontend_tiny.jsonl`` give upstream's exact
phoneme string and token ids, and the two sentences where upstream fails (``zh-018``: 呣 ->
``em2``, a symbol missing from ``tokenlist``; ``zh-029``: ``1.2.3``, which cn2an rejects)
raise `TextError`. `KNOWN_DIFFERENCES` below is where a sentence that differs would have to be
listed with its reason (also in docs/emotivoice.md, "Front-end differences"); it is empty.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_dir
from edgevoice.emotivoice import en, numerals, zh
from edgevoice.emotivoice.frontend import Frontend, split_sentences
from edgevoice.emotivoice.wordpiece import WordPiece
from edgevoice.errors import TextError

SRC = Path(__file__).resolve().parents[1] / "src"

# id -> why our phonemes differ from upstream's (none do).
KNOWN_DIFFERENCES: dict[str, str] = {}


@pytest.fixture(scope="module")
def emotivoice_set() -> Path:
    root = shared_dir() / "fixtures" / "emotivoice"
    if not (root / "fixtures" / "frontend_tiny.jsonl").is_file():
        pytest.skip(f"EmotiVoice fixture set not found at {root}")
    return root


@pytest.fixture(scope="module")
def corpus(emotivoice_set):
    lines = (emotivoice_set / "fixtures" / "frontend_tiny.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def frontend(emotivoice_set):
    models = emotivoice_set / "models"
    tokenlist = (models / "data" / "youdao" / "text" / "tokenlist").read_text(encoding="utf-8").splitlines()
    start = time.perf_counter()
    fe = Frontend(tokenlist, models / "lexicon" / "librispeech-lexicon.txt")
    init_seconds = time.perf_counter() - start
    assert init_seconds < 3.0, f"Frontend construction took {init_seconds:.2f} s"
    return fe


def _upstream_phonemes(frontend, text):
    try:
        return frontend.g2p(text)
    except TextError:
        return None


# --- the corpus -----------------------------------------------------------------------

def test_corpus_phonemes_and_ids(frontend, corpus):
    matched, differing = 0, []
    for entry in corpus:
        got = _upstream_phonemes(frontend, entry["text"])
        if got == entry["phonemes"]:
            matched += 1
            if entry["expected_error"] is None:
                assert frontend.ids(got) == entry["token_ids"], entry["id"]
                assert got.split() == entry["tokens"], entry["id"]
        else:
            differing.append(entry["id"])
    assert sorted(differing) == sorted(KNOWN_DIFFERENCES), f"unexpected differences: {differing}"
    assert matched / len(corpus) >= 0.98
    assert len(corpus) == 100


def test_corpus_phonemes_method(frontend, corpus):
    for entry in corpus:
        if entry["expected_error"] is None and entry["id"] not in KNOWN_DIFFERENCES:
            phonemes, ids = frontend.phonemes(entry["text"])
            assert (phonemes, ids) == (entry["phonemes"], entry["token_ids"]), entry["id"]


def test_corpus_expected_errors(frontend, corpus):
    errors = {entry["id"]: entry for entry in corpus if entry["expected_error"]}
    assert set(errors) == {"zh-018", "zh-029"}
    with pytest.raises(TextError, match="'em2'") as unknown:
        frontend.phonemes(errors["zh-018"]["text"])
    with pytest.raises(TextError, match=r"1\.2\.3") as number:
        frontend.phonemes(errors["zh-029"]["text"])
    for exc in (unknown, number):
        assert "\n" not in str(exc.value)
    # upstream gets as far as the phoneme string for zh-018 (the KeyError is in the id lookup)
    assert frontend.g2p(errors["zh-018"]["text"]) == errors["zh-018"]["phonemes"]


def test_corpus_text_normalisation(corpus):
    for entry in corpus:
        if entry["tn_text"] is None:
            with pytest.raises(TextError):
                numerals.tn_chinese(entry["text"])
        else:
            assert numerals.tn_chinese(entry["text"]) == entry["tn_text"], entry["id"]


def test_corpus_g2p_en_calls(corpus):
    """Every word upstream sent to g2p_en gets g2p_en's output (normalisation, tokenizer,
    homographs with tag NN, CMU dictionary, neural network)."""
    calls = [(word, out) for entry in corpus for word, out in entry["g2p_en_calls"]]
    assert len(calls) > 50
    for word, expected in calls:
        assert en.g2p_en(word) == expected, word


# --- English details ------------------------------------------------------------------

def test_lexicon_keeps_first_line_per_lower_cased_word():
    lexicon = en.parse_lexicon("READ\tR IY1 D\nread\tR EH1 D\r\nLive\tL IH1 V\n\nODD  AA1 D \n")
    assert lexicon["read"] == ["R", "IY1", "D"]
    assert lexicon["live"] == ["L", "IH1", "V"]
    assert lexicon["odd"] == ["AA1", "D", ""]  # re.split(r"\s+") keeps a trailing empty field
    assert lexicon[""] == []


def test_get_eng_phoneme_quirks():
    lexicon = {"hello": ["HH", "AH0", "L", "OW1"], "world": ["W", "ER1", "L", "D"]}
    # lexicon word -> engsp1; punctuation replaces the last token with engsp4; trailing engsp dropped
    assert en.get_eng_phoneme("hello, world.", lexicon) == [
        "[HH]", "[AH0]", "[L]", "[OW1]", "engsp4", "[W]", "[ER1]", "[L]", "[D]"]
    # a g2p_en word gets no engsp1, so the comma eats its last phone
    got = en.get_eng_phoneme("Zorblax, hello", lexicon)
    zorblax = ["[" + p + "]" for p in en.g2p_en("Zorblax")]
    assert got == zorblax[:-1] + ["engsp4", "[HH]", "[AH0]", "[L]", "[OW1]"]
    # ';' and '+' are separators; g2p_en drops ';' entirely (empty result)
    assert en.get_eng_phoneme("hello;world", lexicon) == ["[HH]", "[AH0]", "[L]", "[OW1]", "engsp1", "[W]", "[ER1]",
                                                          "[L]", "[D]"]
    assert en.get_eng_phoneme("!!!", lexicon) == []


def test_g2p_en_normalisation_and_homograph():
    assert en.g2p_en("café") == ["K", "AH0", "F", "EY1"]
    assert en.g2p_en("!") == ["!"]
    assert en.g2p_en(";") == []
    # homograph table, tag NN: 'read' has pron1 for VBD... -> the other reading for a noun tag
    pron1, pron2, pos = en.homographs()["read"]
    assert en.g2p_en("read") == (pron1 if "NN".startswith(pos) else pron2)


# --- Chinese details ------------------------------------------------------------------

@pytest.mark.parametrize("syllable, expected", [
    ("zi3", ("z", "ii3")), ("chi1", ("ch", "iii1")), ("ri4", ("r", "ii4")),
    ("ya1", ("", "ia1")), ("you3", ("", "iou3")), ("yi1", ("", "i1")), ("ying2", ("", "ing2")),
    ("yu3", ("", "v3")), ("yuan2", ("", "van2")), ("yun2", ("", "vn2")),
    ("yue4", ("y", "ve4")),  # upstream's 'yue ' typo: not rewritten to 've'
    ("wu3", ("", "u3")), ("wo3", ("", "uo3")), ("wei4", ("", "uei4")),
    ("ju4", ("j", "v4")), ("quan2", ("q", "van2")), ("xue2", ("x", "ve2")),
    ("gui4", ("g", "uei4")), ("liu4", ("l", "iou4")), ("chun1", ("ch", "uen1")), ("lve4", ("l", "ve4")),
    ("er2", ("", "er2")), ("huar1", ("h", "uar1")), ("n2", ("", "en2")), ("m2", ("", "em2")), ("ng5", ("", "eng5")),
])
def test_split_py(syllable, expected):
    assert zh.split_py(syllable) == expected


@pytest.mark.parametrize("syllable", ["hm5", "hng1", "5", "r5"])
def test_split_py_failures_are_text_errors(syllable):
    with pytest.raises(TextError, match="pinyin syllable"):
        zh.split_py(syllable)


def test_g2p_cn_punctuation_and_isolation():
    from pypinyin.constants import PHRASES_DICT
    from pypinyin_dict.phrase_pinyin_data import cc_cedict

    size_before = len(PHRASES_DICT)
    assert zh.g2p_cn("你好，世界。") == ["<sos/eos>", "n", "i3", "sp0", "h", "ao3", "sp3", "sh", "iii4", "sp0", "j",
                                      "ie4", "sp3", "<sos/eos>"]
    # CC-CEDICT is used privately: pypinyin's global phrase table is left as it was
    assert len(PHRASES_DICT) == size_before
    cc_only = next(word for word in cc_cedict.phrases_dict if word not in PHRASES_DICT)
    assert cc_only not in PHRASES_DICT
    assert zh.engines_init_seconds() > 0


# --- numerals -------------------------------------------------------------------------

@pytest.mark.parametrize("digits, expected", [
    ("0", "零"), ("7", "七"), ("10", "十"), ("11", "十一"), ("20", "二十"), ("100", "一百"), ("101", "一百零一"),
    ("110", "一百一十"), ("1000", "一千"), ("1001", "一千零一"), ("1010", "一千零一十"), ("10000", "一万"),
    ("10001", "一万零一"), ("100010", "十万零一十"), ("101000", "十万零一千"), ("10001000", "一千万零一千"),
    ("100000000", "一亿"), ("100000005", "一亿零五"), ("1000000000000", "一万亿"),
    ("1000000050000", "一万亿零五万"), ("2024", "二千零二十四"), ("13800138000", "一百三十八亿零一十三万八千"),
    ("007", "七"), ("000", "零"), ("00100", "一百"),
    ("4.99", "四点九九"), ("0.5", "零点五"), ("199.5", "一百九十九点五"), ("3.", "三"), ("1.000", "一点零零零"),
    ("007.50", "七点五零"), ("9999999999999999", "九千九百九十九万九千九百九十九亿九千九百九十九万九千九百九十九"),
])
def test_number_to_chinese(digits, expected):
    assert numerals.number_to_chinese(digits) == expected


def test_number_errors():
    with pytest.raises(TextError, match="more than one decimal point"):
        numerals.number_to_chinese("1.2.3")
    with pytest.raises(TextError, match="16 digits"):
        numerals.number_to_chinese("12345678901234567")
    with pytest.raises(TextError, match="ASCII digits"):
        numerals.tn_chinese("价格是１２元")  # full-width digits match \d; upstream's cn2an rejects them
    assert numerals.number_to_chinese("0.12345678901234567890") == "零点" + "一二三四五六七八九零一二三四五六"


def test_tn_chinese_in_any_language():
    assert numerals.tn_chinese("I have 3 apples and 12 oranges.") == "I have 三 apples and 十二 oranges."
    assert numerals.tn_chinese("He was born in 1990.") == "He was born in 一千九百九十"  # the '.' is read with it
    assert numerals.tn_chinese("10,000") == "十,零"


# --- front-end edge cases -------------------------------------------------------------

def test_frontend_edge_cases(frontend):
    assert frontend.g2p("") == "<sos/eos> <sos/eos>"
    assert frontend.g2p("   ") == "<sos/eos> <sos/eos>"
    assert frontend.g2p("😊") == "<sos/eos> <sos/eos>"
    phonemes, ids = frontend.phonemes("我喜欢Python。")
    assert phonemes.split()[:4] == ["<sos/eos>", "uo3", "sp1", "x"]
    assert ids[0] == frontend.token2id["<sos/eos>"] and len(ids) == len(phonemes.split())
    # text mode lines: the tokenlist's ids are line indices
    assert frontend.symbols[frontend.token2id["sp1"]] == "sp1"


def test_frontend_from_lexicon_text(emotivoice_set, frontend):
    models = emotivoice_set / "models"
    tokenlist = (models / "data" / "youdao" / "text" / "tokenlist").read_text(encoding="utf-8").splitlines()
    text = (models / "lexicon" / "librispeech-lexicon.txt").read_text(encoding="utf-8")
    other = Frontend(tokenlist, lexicon_text=text)
    assert other.lexicon == frontend.lexicon
    with pytest.raises(ValueError):
        Frontend(tokenlist)


def test_phonemize_speed(frontend, corpus):
    frontend.warm_up()
    frontend.g2p("Zorblax 你好")  # loads the CMU dictionary once
    texts = [entry["text"] for entry in corpus if entry["expected_error"] is None]
    start = time.perf_counter()
    for text in texts:
        frontend.g2p(text)
    per_sentence = (time.perf_counter() - start) / len(texts)
    assert per_sentence < 0.05, f"{per_sentence * 1000:.1f} ms per sentence"


def test_runtime_imports_no_torch_nltk(emotivoice_set):
    script = (
        "import sys\n"
        "for name in ('torch', 'transformers', 'nltk', 'g2p_en'):\n"
        "    sys.modules[name] = None\n"
        "from pathlib import Path\n"
        "from edgevoice.emotivoice.frontend import Frontend\n"
        "from edgevoice.emotivoice.wordpiece import WordPiece\n"
        "root = Path(sys.argv[1]) / 'models'\n"
        "fe = Frontend.from_files(root / 'data/youdao/text/tokenlist', root / 'lexicon/librispeech-lexicon.txt')\n"
        "print(fe.phonemes('他说Hello Zorblax之后就走了。')[0])\n"
        "print(WordPiece.from_file(root / 'WangZeJun/simbert-base-chinese/vocab.txt').encode('Happy 开心').tolist())\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(emotivoice_set)], capture_output=True, text=True,
                            timeout=120, env={"PYTHONPATH": str(SRC), "PATH": ""})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "eng_cn_sp zh iii1" in result.stdout


# --- splitting long text --------------------------------------------------------------

def test_split_sentences():
    text = "Mr. Smith paid 4.99 dollars. Then he left! 他说：“明天见。”然后走了……好吧。\nNext line"
    assert split_sentences(text) == ["Mr. Smith paid 4.99 dollars.", "Then he left!", "他说：“明天见。”",
                                     "然后走了……", "好吧。", "Next line"]
    assert split_sentences("The U.S. team won. Yes.") == ["The U.S. team won.", "Yes."]
    assert split_sentences("") == [] and split_sentences("  \n ") == []
    long_zh = "今天天气很好，我们去公园散步吧，" * 8
    pieces = split_sentences(long_zh, max_chars=40)
    assert all(len(p) <= 40 for p in pieces) and "".join(pieces) == long_zh
    words = split_sentences("word " * 50, max_chars=30)
    assert all(len(p) <= 30 for p in words) and " ".join(words).split() == ["word"] * 50
    assert split_sentences("a" * 70, max_chars=30) == ["a" * 30, "a" * 30, "a" * 10]
    assert split_sentences("Hello. !!! ok") == ["Hello.!!!", "ok"]


# --- WordPiece ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def simbert_dir(emotivoice_set) -> Path:
    return emotivoice_set / "models" / "WangZeJun" / "simbert-base-chinese"


@pytest.fixture(scope="module")
def wordpiece(simbert_dir):
    return WordPiece.from_vocab((simbert_dir / "vocab.txt").read_text(encoding="utf-8").splitlines())


def test_wordpiece_equals_fixtures(wordpiece, emotivoice_set):
    with np.load(emotivoice_set / "fixtures" / "style_tiny.npz") as data:
        for kind in ("prompt", "content"):
            texts = data[f"{kind}texts"].tolist()
            assert len(texts) >= 6
            for index, text in enumerate(texts):
                expected = data[f"{kind}{index:02d}_input_ids"][0]
                ids = wordpiece.encode(text)
                assert ids.dtype == np.int64
                np.testing.assert_array_equal(ids, expected, err_msg=text)
                assert wordpiece.tokens(text) == data[f"{kind}{index:02d}_tokens"].tolist()
    assert wordpiece.tokens("有点害怕😨") == ["[CLS]", "有", "点", "害", "[UNK]", "[UNK]", "[SEP]"]


TRICKY = [
    "", " ", "Angry and loud!", "有点害怕😨", "Café déjà vu, naïve façade", "ΣΊΣΥΦΟΣ ΟΔΟΣ", "İstanbul", "Straße ﬁne",
    "ＨＡＰＰＹ　开心", "①②Ⅻ", "e\u0301t\u00e9", "tab\there\nnew\rline\x0bvt\x0cff\x85nel\x1cfs", "zero\u200bwidth\ufeffbom",
    "nul\x00l", "bad\ufffdchar", "private\ue000use", "unassigned\u0378x", "\U0002B820\U0002B920\U00020000",
    "hello,world!!?", "a.b-c_d/e\\f", "$100 + 5% = ?", "“引号”和（括号）", "混合mixed文本text123", "happy" * 30,
    "x" * 100, "y" * 101, "unhappiness saddened", "[CLS] hello [SEP] [MASK]x[mask] [PAD][UNK]", "👍🏽🫠🇨🇳",
    "HeLLo WoRLD", "co-operate don't", "\u3000\u00a0\u2009spaces\u2028\u2029",
]


def test_wordpiece_equals_transformers(wordpiece, simbert_dir):
    transformers = pytest.importorskip("transformers")
    # from_pretrained on the folder, as upstream's AutoTokenizer; (BertTokenizerFast(vocab_file=...)
    # silently ignores the file in transformers 5)
    reference = transformers.BertTokenizerFast.from_pretrained(str(simbert_dir))
    rng = random.Random(11)
    alphabet = list("abcdefghijklmnopqrstuvwxyzABCXYZ019 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\t\n") + list(
        "你好开心怕，。！？“”（）…") + ["é", "Ö", "ß", "Σ", "İ", "ﬁ", "😨", "\u200b", "\x00", "\u3000", "[MASK]", "happy",
                                     "sad", "ing", "a" * 101]
    texts = TRICKY + ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20))) for _ in range(1500)]
    expected = reference(texts)["input_ids"]
    for text, ids in zip(texts, expected):
        assert wordpiece.encode(text).tolist() == ids, repr(text)


def test_a_long_number_is_refused_in_a_short_line():
    from edgevoice.emotivoice.numerals import tn_chinese
    from edgevoice.errors import TextError

    with pytest.raises(TextError, match=r"\(1000 characters\) has more than 16 digits") as error:
        tn_chinese("1" * 1000)
    assert len(str(error.value)) < 200
