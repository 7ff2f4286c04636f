"""Japanese G2P, behaving like GPT-SoVITS v2 `japanese.g2p` (phones with prosody marks).

pyopenjtalk's full-context labels give the phones; ESPnet-style prosody marks are added
(``[`` pitch rise, ``]`` pitch fall, ``#`` accent-phrase boundary, ``_`` pause, final ``?``
for questions). ``#`` is not in the v2 table, so it becomes ``UNK`` like upstream.

Dictionary: pyopenjtalk would download its dictionary on first use; we never let it. We
use ``$OPEN_JTALK_DICT_DIR`` or Debian's ``open-jtalk-mecab-naist-jdic`` package
(``/var/lib/mecab/dic/open-jtalk/naist-jdic``) and fail with an explanation otherwise.
Upstream's Japanese user dictionary is not loaded (its file is empty at the pinned commit).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from .errors import FrontendError

DEBIAN_DICT_DIR = Path("/var/lib/mecab/dic/open-jtalk/naist-jdic")
DICT_ENV = "OPEN_JTALK_DICT_DIR"

_JA_CHAR = r"A-Za-z\d\u3005\u3040-\u30ff\u4e00-\u9fff\uff11-\uff19\uff21-\uff3a\uff41-\uff5a\uff66-\uff9d"
_JA_CHAR_RE = re.compile(f"[{_JA_CHAR}]")
_NON_JA_CHAR_RE = re.compile(f"[^{_JA_CHAR}]")
_MARK_RUN_RE = re.compile(r"([!?…,.\-])([!?…,.\-])+")
_MARK_MAP = {"：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",", "...": "…"}

_P3_RE = re.compile(r"\-(.*?)\+")
_E3_RE = re.compile(r"!(\d+)_")
_A1_RE = re.compile(r"/A:([0-9\-]+)\+")
_A2_RE = re.compile(r"\+(\d+)\+")
_A3_RE = re.compile(r"\+(\d+)/")
_F1_RE = re.compile(r"/F:(\d+)_")


def find_dictionary() -> Path:
    candidates = []
    if os.environ.get(DICT_ENV):
        candidates.append(Path(os.environ[DICT_ENV]))
    candidates.append(DEBIAN_DICT_DIR)
    for folder in candidates:
        if (folder / "sys.dic").is_file():
            return folder
    raise FrontendError(
        "Japanese needs the Open JTalk dictionary: install it with "
        "'apt-get install -y open-jtalk-mecab-naist-jdic' or set "
        f"{DICT_ENV} to a folder holding sys.dic (looked in: {', '.join(map(str, candidates))})"
    )


@lru_cache(maxsize=1)
def _openjtalk():
    dictionary = str(find_dictionary())
    os.environ[DICT_ENV] = dictionary  # read by pyopenjtalk at import
    try:
        import pyopenjtalk
    except ImportError as exc:
        raise FrontendError("Japanese needs the 'pyopenjtalk' package: pip install pyopenjtalk==0.4.1") from exc
    pyopenjtalk.OPEN_JTALK_DICT_DIR = dictionary.encode("utf-8")  # never the download path
    return pyopenjtalk


def _feature(regex: re.Pattern, label: str) -> int:
    match = regex.search(label)
    return int(match.group(1)) if match else -50


def prosody_phones(text: str) -> list[str]:
    """Phones and prosody marks of a run of Japanese characters (with ^ and $/? ends)."""
    jtalk = _openjtalk()
    labels = jtalk.make_label(jtalk.run_frontend(text))
    phones: list[str] = []
    for n, label in enumerate(labels):
        phone = _P3_RE.search(label).group(1)
        if phone in "AEIOU":  # unvoiced vowel: written lower case (substring test as upstream)
            phone = phone.lower()
        if phone == "sil":
            if n == 0:
                phones.append("^")
            elif n == len(labels) - 1:
                ending = _feature(_E3_RE, label)
                if ending == 0:
                    phones.append("$")
                elif ending == 1:
                    phones.append("?")
            continue
        if phone == "pau":
            phones.append("_")
            continue
        phones.append(phone)
        a1, a2, a3 = _feature(_A1_RE, label), _feature(_A2_RE, label), _feature(_A3_RE, label)
        f1 = _feature(_F1_RE, label)
        a2_next = _feature(_A2_RE, labels[n + 1])
        if a3 == 1 and a2_next == 1 and phone in "aeiouAEIOUNcl":
            phones.append("#")
        elif a1 == 0 and a2_next == a2 + 1 and a2 != f1:
            phones.append("]")
        elif a2 == 1 and a2_next == 2:
            phones.append("[")
    return phones


def normalize_japanese(text: str) -> str:
    return _MARK_RUN_RE.sub(r"\1", text)


def g2p_japanese(norm_text: str) -> list[str]:
    text = norm_text.replace("％", "パーセント").lower()
    runs = _NON_JA_CHAR_RE.split(text)
    marks = _NON_JA_CHAR_RE.findall(text)
    phones: list[str] = []
    for index, run in enumerate(runs):
        if _JA_CHAR_RE.match(run):
            phones += prosody_phones(run)[1:-1]
        if index < len(marks) and marks[index] != " ":
            phones.append(marks[index])
    return [_MARK_MAP.get(p, p) for p in phones]


def clean_japanese(text: str) -> tuple[list[str], None, str]:
    norm_text = normalize_japanese(text)
    return g2p_japanese(norm_text), None, norm_text
