"""Text as people hand it over: markup, escapes and invisible characters removed; UTF-8 checked with the bad byte's
offset; the characters a front end cannot read named, by rules checked here against the front ends themselves."""

from __future__ import annotations

import io
import unicodedata

import pytest

from edgevoice.errors import TextError
from edgevoice.gpt_sovits import frontend
from edgevoice.textinput import (PreparedText, SHOWN_CHARACTERS, UnreadableTextWarning, check_encoding, decode_utf8,
                                 prepare_text, read_text, spoken, unreadable)


@pytest.mark.parametrize("given, expected", [
    ('<speak>Hello<break time="1s"/>world</speak>', " Hello world "),
    ("un<b>believ</b>able", "unbelievable"),
    ("<p>One.</p><p>Two.</p>", " One.  Two. "),
    ('<prosody rate="slow" pitch=\'+2st\'>slow</prosody> <emphasis level=strong>now</emphasis>', "slow now"),
    ('<?xml version="1.0"?><!DOCTYPE speak><!-- a comment -->Hi', "Hi"),
    ("Fish &amp; chips &lt;b&gt; caf&#233; caf&#xE9; &copy; &bogus; AT&T ?a=1&b=2", "Fish & chips <b> café café © "
                                                                                "&bogus; AT&T ?a=1&b=2"),
    ("a < b, x<y and z>w, I <3 you, <|endoftext|>", "a < b, x<y and z>w, I <3 you, <|endoftext|>"),
    ("\x1b[31mred\x1b[0m and \x1b]0;title\x07plain \x9b1mbold", "red and plain bold"),
    ("&#27;[31mescaped", "escaped"),
    ("tab\there\u00a0no-break\u2009thin\u3000ideographic", "tab here no-break thin\u3000ideographic"),
    ("zero\u200bwidth\ufeffbom soft\u00adhyphen \u202eevil\u202c", "zerowidthbom softhyphen evil"),
    ("one\r\ntwo\rthree\u2028four", "one\ntwo\nthree\nfour"),
    ("bell\x07 null\x00 del\x7f", "bell null del"),
])
def test_prepare_text(given, expected):
    assert prepare_text(given) == expected


def test_prepared_text_is_not_decoded_twice():
    once = prepare_text("&amp;lt;b&amp;gt;")
    assert once == "&lt;b&gt;" and isinstance(once, PreparedText)
    assert prepare_text(once) == "&lt;b&gt;"  # a synthesizer given the CLI's cleaned text leaves it alone
    assert prepare_text(str(once)) == "<b>"  # plain text is cleaned again


def test_invalid_utf8_names_the_byte_offset(tmp_path):
    data = "Grüße ".encode() + b"\xff" + b" world"
    with pytest.raises(TextError, match=r"byte 0xff at byte offset 8"):
        decode_utf8(data, "standard input")
    argument = data.decode("utf-8", "surrogateescape")  # how Python hands such a command-line argument over
    with pytest.raises(TextError, match=r"--text is not valid UTF-8 \(byte 0xff at byte offset 8\)"):
        check_encoding(argument, "--text")
    with pytest.raises(TextError, match="not valid UTF-8"):
        prepare_text(argument)
    with pytest.raises(TextError, match=r"U\+D800 at byte offset 6"):  # a lone surrogate from Python (a probe's)
        prepare_text("Hello \ud800 world")
    path = tmp_path / "t.txt"
    path.write_bytes(data)
    with pytest.raises(TextError, match=rf"{path}: the text is not valid UTF-8 .*offset 8"):
        read_text(path)


def test_read_text_sources(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffHello, 世界.\n".encode())
    assert read_text(path) == "Hello, 世界.\n"  # the byte-order mark is dropped
    assert read_text("-", io.BytesIO(b"from stdin")) == "from stdin"
    with pytest.raises(TextError, match="over 10 bytes"):
        read_text("-", io.BytesIO(b"x" * 11), limit=10)
    with pytest.raises(TextError, match="text file not found"):
        read_text(tmp_path / "absent.txt")
    with pytest.raises(TextError, match="not a regular file"):
        read_text(tmp_path)
    with pytest.raises(TextError, match="must be a string"):
        prepare_text(b"bytes")


def test_unreadable_names_distinct_characters_in_order_and_caps_them():
    found = unreadable("Hi Привет, Привет!", lambda c: c.isascii(), "the test reader")
    assert found.characters == tuple("Привет")
    assert found.message() == "the test reader cannot read 6 different characters (П р и в е т) of this text"
    many = unreadable("абвгдеёжзийклмнопрст", lambda c: False, "r")
    assert len(many.characters) == 20
    assert f"({' '.join('абвгдеёжзийклмнопрст'[:SHOWN_CHARACTERS])} and 8 more)" in many.message()
    assert not unreadable("Hello, world! 42 ... ;-)", str.isascii, "r")
    assert unreadable("no emoji? ° · — “quotes”", str.isascii, "r").characters == ()
    with pytest.warns(UnreadableTextWarning, match=r"cannot read 1 different character \(ж\) of this text"):
        unreadable("ж", lambda c: False, "r").warn()
    with pytest.raises(TextError, match=r"r can read nothing in this text: 2 different characters \(ж ы\)"):
        unreadable("жы!", lambda c: False, "r").refuse_if_nothing_is_read()
    unreadable("жы! a", str.isascii, "r").refuse_if_nothing_is_read()  # something is read: a warning will do


# --------------------------------------------------------------------------------------------- the front ends' rules


def _sample_characters(step: int = 89) -> list[str]:
    """Letters, digits and symbols from every script (every `step`-th code point) plus ones worth naming."""
    picked = [chr(c) for c in range(0x20, 0x30000, step) if spoken(chr(c))]
    return picked + list("éÅßÆøłΩωЖжاא한かカｶ㐀兀鿿😀©½²٣０Ａａ①ⅫñçüαβγΔ々ヶ")


def _phones(text: str, language: str) -> tuple:
    return tuple(frontend.phonemize(text, language).phones)


def test_english_rule_matches_the_front_end():
    base = _phones("Hello world.", "en")
    wrong = [c for c in _sample_characters() if (_phones(f"Hello {c} world.", "en") != base) != frontend.reads(c, "en")]
    assert wrong == []


def test_chinese_rule_matches_the_front_end():
    base = _phones("你好世界。", "zh")
    # ideographs without a reading are dropped although in range; a few variant forms are read though outside it
    known = set("儸兙兡嗧噷撝桛烪瓧瓰瓱瓼甅瞜綵螮覅訢讌貙鰆鷈鷉鷿鸊㠯㵎㼝䠶䰾䳘ｍｓ")
    wrong = []
    for char in _sample_characters():
        try:
            read = _phones(f"你好{char}世界。", "zh") != base
        except TextError:
            continue  # the front end refuses it itself
        if read != frontend.reads(char, "zh") and char not in known:
            wrong.append(char)
    assert wrong == []


def test_japanese_front_end_turns_the_unreadable_into_unknown_phones():
    base = _phones("今日はです。", "ja")
    for char in [c for c in _sample_characters(step=911) if not frontend.reads(c, "ja")]:
        phones = _phones(f"今日は{char}です。", "ja")
        added = [p for p in phones if p not in base and p not in "[]#?"]
        assert set(added) <= {"UNK"}, (char, added)


def test_emotivoice_rule_matches_its_front_end(emotivoice_set):
    from edgevoice.emotivoice.frontend import Frontend
    from edgevoice.emotivoice.synthesizer import _readable

    models = emotivoice_set / "models"
    front = Frontend((models / "data/youdao/text/tokenlist").read_text(encoding="utf-8").splitlines(),
                     models / "lexicon/librispeech-lexicon.txt")
    wrong = []
    for before, after in [("hello ", " world"), ("你好", "世界")]:
        base = front.g2p(before + after)
        for char in _sample_characters():
            try:
                read = front.g2p(before + char + after) != base
            except TextError:
                continue  # digits of other scripts: refused by the number reader itself
            if read != _readable(char):
                wrong.append(char)
    assert wrong == []


def test_unknown_language_is_a_text_error():
    with pytest.raises(TextError, match="unsupported language 'xx'"):
        frontend.reads("a", "xx")
    assert all(unicodedata.category(c)[0] in "LNS" for c in _sample_characters())
