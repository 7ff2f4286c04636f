"""MetaVoice-1B text normalisation and BPE tokenizer against upstream's recorded fixtures.

Reference: ``../shared/fixtures/metavoice`` (made by running metavoiceio/metavoice-src de3fa21
itself; README §2.6, §4.1, §7, §8). Every one of the 35 ``text_tiny`` cases must give upstream's
status, normalised text and ids (raw, stage 1, stage 2) exactly; the tokenizer is also compared
with the real `tiktoken` on the same table.
"""

from __future__ import annotations

import base64
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_dir
from edgevoice.errors import BundleError, EdgevoiceError, TextError
from edgevoice.metavoice.text import BpeTokenizer, normalize_text

STAGE1_OFFSET = 2049
STAGE2_OFFSET = 1025


@pytest.fixture(scope="module")
def metavoice_set() -> Path:
    root = shared_dir() / "fixtures" / "metavoice"
    if not (root / "fixtures" / "text_tiny.npz").is_file():
        pytest.skip(f"MetaVoice fixture set not found at {root}")
    return root


@pytest.fixture(scope="module")
def table(metavoice_set) -> dict:
    return json.loads((metavoice_set / "models" / "tokenizer.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tokenizer(table) -> BpeTokenizer:
    return BpeTokenizer.from_json(table)


@pytest.fixture(scope="module")
def cases(metavoice_set) -> dict:
    with np.load(metavoice_set / "fixtures" / "text_tiny.npz", allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def _row(cases, name: str, i: int) -> list[int]:
    offsets = cases[f"{name}_offsets"]
    return cases[f"{name}_ids" if name != "rejected" else "rejected_codepoints"][offsets[i]:offsets[i + 1]].tolist()


def test_all_text_cases_match_upstream(cases, tokenizer):
    assert len(cases["text"]) == 35
    seen_status = set()
    for i, text in enumerate(cases["text"].tolist()):
        status = int(cases["status"][i])
        seen_status.add(status)
        if status == 1:
            with pytest.raises(TextError) as caught:
                normalize_text(text)
            message = str(caught.value)
            assert "\n" not in message
            named = [int(code, 16) for code in re.findall(r"U\+([0-9A-F]{4,6})", message)]
            assert named == _row(cases, "rejected", i), (i, message)
            with pytest.raises(TextError):
                tokenizer.text_ids(text, STAGE1_OFFSET)
            continue
        norm = normalize_text(text)
        assert norm == str(cases["norm_text"][i]), i
        if status == 2:
            assert "disallowed special token" in str(cases["error"][i])
            with pytest.raises(TextError, match="endoftext") as caught:
                tokenizer.encode(norm)
            assert "\n" not in str(caught.value)
            with pytest.raises(TextError):
                tokenizer.text_ids(text, STAGE2_OFFSET)
            continue
        assert status == 0
        assert tokenizer.encode(norm) == _row(cases, "bpe", i), i
        s1 = tokenizer.text_ids(text, STAGE1_OFFSET)
        assert s1 == _row(cases, "s1", i), i
        assert tokenizer.text_ids(text, STAGE2_OFFSET) == _row(cases, "s2", i), i
        assert tokenizer.decode([t - STAGE1_OFFSET for t in s1]) == str(cases["decoded_stage1"][i]), i
    assert seen_status == {0, 1, 2}


def test_quirks_pinned_by_upstream():
    # the "TM" entry is keyed 2122 decimal (U+084A): the real trademark sign is refused
    assert normalize_text("A\u084aB") == "ATMB"
    with pytest.raises(TextError, match="U\\+2122"):
        normalize_text("MetaVoice\u2122")
    # rejected characters are listed once each, sorted by code point
    with pytest.raises(TextError, match=r"U\+4E16 '世', U\+754C '界'"):
        normalize_text("界世界")
    assert normalize_text("a\xa0b  \xa0c\x1cd") == "a\xa0b c\x1cd"
    assert normalize_text(" \t\r\n* ") == ""


def test_empty_text_is_just_eot(tokenizer):
    assert tokenizer.text_ids("", STAGE1_OFFSET) == [tokenizer.eot_id + STAGE1_OFFSET] == [2561]
    assert tokenizer.text_ids(" \t ", STAGE2_OFFSET) == [1537]
    assert tokenizer.encode("") == []


def test_json_round_trip_and_meta(table, tokenizer):
    again = BpeTokenizer.from_json(tokenizer.to_json())
    assert again.to_json() == tokenizer.to_json()
    meta = {"name": table["name"], "pat_str": table["pat_str"],
            "mergeable_ranks": {base64.b64decode(b): r for b, r in table["mergeable_ranks_base64"]},
            "special_tokens": table["special_tokens"], "offset": STAGE1_OFFSET}
    from_meta = BpeTokenizer.from_meta(meta)
    assert from_meta.offset == STAGE1_OFFSET
    assert from_meta.to_json()["offset"] == STAGE1_OFFSET
    assert from_meta.text_ids("Hello, world!") == tokenizer.text_ids("Hello, world!", STAGE1_OFFSET)
    assert from_meta.n_vocab == 513


def _meta(table, **changes) -> dict:
    meta = {"name": table["name"], "pat_str": table["pat_str"],
            "mergeable_ranks": {base64.b64decode(b): r for b, r in table["mergeable_ranks_base64"]},
            "special_tokens": dict(table["special_tokens"])}
    meta.update(changes)
    return meta


@pytest.mark.parametrize("change, message", [
    ("duplicate_rank", "used twice"),
    ("missing_byte", "single bytes have no rank"),
    ("bad_pattern", "does not compile"),
    ("no_eot", "no <|endoftext|>"),
    ("special_collides", "reuses id"),
    ("negative_rank", "must be an integer"),
    ("str_token", "bytes"),
])
def test_bad_tables_are_refused(table, change, message):
    meta = _meta(table)
    ranks = meta["mergeable_ranks"]
    if change == "duplicate_rank":
        ranks[b"zzzz"] = 300
    elif change == "missing_byte":
        del ranks[b"\x07"]
    elif change == "bad_pattern":
        meta["pat_str"] = "(?P<x"
    elif change == "no_eot":
        meta["special_tokens"] = {"<|other|>": 512}
    elif change == "special_collides":
        meta["special_tokens"] = {"<|endoftext|>": 7}
    elif change == "negative_rank":
        ranks[b"zzzz"] = -1
    elif change == "str_token":
        ranks["zzzz"] = 900
    with pytest.raises(BundleError, match=re.escape(message)) as caught:
        BpeTokenizer.from_meta(meta)
    assert "\n" not in str(caught.value)


def test_bad_json_is_refused(table):
    with pytest.raises(BundleError, match="missing keys"):
        BpeTokenizer.from_json({"name": "x"})
    broken = dict(table, mergeable_ranks_base64=[["not base64!", 1]] + table["mergeable_ranks_base64"])
    with pytest.raises(BundleError, match="not base64"):
        BpeTokenizer.from_json(broken)


def test_decode_refuses_unknown_ids(tokenizer):
    with pytest.raises(EdgevoiceError, match="9999"):
        tokenizer.decode([9999])


def _corpus_strings(count: int, seed: int) -> list[str]:
    """Text shaped like the table's training data (so merges fire), mixed with Latin-1 noise."""
    rng = random.Random(seed)
    source = shared_dir() / "data" / "speech" / "ljspeech" / "metadata.csv"
    if source.is_file():
        words = " ".join(line.split("|")[-1] for line in source.read_text(encoding="utf-8").splitlines()).split(" ")
    else:
        words = ["the", "printing", "Tuesday,", "don't", "1234", "they're", "art"]
    latin1 = [chr(c) for c in range(256)]
    out = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(0, 12)):
            roll = rng.random()
            if roll < 0.7:
                parts.append(rng.choice(words))
            elif roll < 0.85:
                parts.append("".join(rng.choice(latin1) for _ in range(rng.randint(1, 5))))
            else:
                parts.append(rng.choice([" ", "  ", "\t", "\n", "'s", "'ll", "\xa0", "\x1c", "123", "é"]))
        out.append(rng.choice(["", " ", "  "]).join(parts))
    return out


def test_matches_tiktoken_on_random_latin1(table, tokenizer):
    tiktoken = pytest.importorskip("tiktoken", reason="the comparison needs tiktoken (dev extra)")
    reference = tiktoken.Encoding(name=table["name"], pat_str=table["pat_str"],
                                  mergeable_ranks={base64.b64decode(b): r for b, r in table["mergeable_ranks_base64"]},
                                  special_tokens=table["special_tokens"])
    texts = _corpus_strings(400, seed=5) + [chr(c) * 3 for c in range(256)]
    merged = 0
    for text in texts:
        ids = tokenizer.encode(text)
        assert ids == reference.encode(text), repr(text)
        assert tokenizer.decode(ids) == reference.decode(ids)
        merged += sum(1 for i in ids if i >= 256)
    assert merged > 1000  # the texts exercised the learned merges, not only single bytes


def test_matches_tiktoken_hypothesis(table, tokenizer):
    tiktoken = pytest.importorskip("tiktoken", reason="the comparison needs tiktoken (dev extra)")
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    reference = tiktoken.Encoding(name=table["name"], pat_str=table["pat_str"],
                                  mergeable_ranks={base64.b64decode(b): r for b, r in table["mergeable_ranks_base64"]},
                                  special_tokens=table["special_tokens"])
    alphabet = st.sampled_from(list("etaoinshrdlu ETAOIN'.,-0123456789") + [chr(c) for c in range(256)])

    @hypothesis.settings(max_examples=200, deadline=None, derandomize=True, database=None)
    @hypothesis.given(st.text(alphabet=alphabet, max_size=40))
    def check(text):
        if "<|endoftext|>" in text:
            return
        assert tokenizer.encode(text) == reference.encode(text)
        expected = [i + STAGE1_OFFSET for i in reference.encode(normalize_text(text))] + [2561]
        assert tokenizer.text_ids(text, STAGE1_OFFSET) == expected

    check()


def test_a_backtracking_split_pattern_is_a_bundle_error(table, monkeypatch):
    """The split pattern comes from the checkpoint: one that backtracks exponentially is refused, not left running."""
    import edgevoice.metavoice.text as text_module

    crafted = BpeTokenizer.from_json({**table, "pat_str": "(?:a|aa)+$|" + table["pat_str"]})
    monkeypatch.setattr(text_module, "PATTERN_SECONDS", 0.2)
    with pytest.raises(BundleError, match="took over 0.2 s to split"):
        crafted.encode("a" * 60 + "!")
