"""Pinyin syllable -> (initial, final) symbols of the GPT-SoVITS Chinese phone set.

Upstream looks syllables up in its `opencpop-strict.txt`; that table follows a spelling
rule, which is implemented here instead:
* zero-initial syllables starting with a/o/e get the markers AA/OO/EE and keep the
  whole syllable as final;
* y-/w- syllables: initial y/w, final = the rest, where after y a leading u becomes v
  and "an"/"e" become "En"/"E";
* j/q/x + u... is written with v; zhi/chi/shi/ri take final "ir", zi/ci/si take "i0".
The syllable inventory is every syllable pypinyin knows, minus a few rare ones that
upstream's table lacks (upstream fails on them), plus the j/q/x/y + v spellings.
"""

from __future__ import annotations

from functools import lru_cache

_TWO_LETTER_INITIALS = ("zh", "ch", "sh")
# Syllables pypinyin can produce that upstream's opencpop-strict table does not contain.
_NOT_IN_UPSTREAM_TABLE = {"biang", "bong", "din", "fiao", "hm", "hng", "len", "m", "n", "ng", "nia", "wong", "ê"}


def split_syllable(syllable: str) -> tuple[str, str]:
    """Initial and toneless final symbols of a (normalised) pinyin syllable."""
    first = syllable[0]
    if first in "aoe":
        return {"a": "AA", "o": "OO", "e": "EE"}[first], syllable
    if first == "w":
        return "w", syllable[1:]
    if first == "y":
        rest = syllable[1:]
        if rest[0] in "uv":
            rest = "v" + rest[1:]
        return "y", {"an": "En", "e": "E"}.get(rest, rest)
    initial = syllable[:2] if syllable[:2] in _TWO_LETTER_INITIALS else first
    final = syllable[len(initial):]
    if initial in "jqx" and final.startswith("u"):
        final = "v" + final[1:]
    elif final == "i" and initial in ("zh", "ch", "sh", "r"):
        final = "ir"
    elif final == "i" and initial in ("z", "c", "s"):
        final = "i0"
    return initial, final


@lru_cache(maxsize=1)
def syllable_table() -> dict[str, tuple[str, str]]:
    from pypinyin import Style
    from pypinyin.pinyin_dict import pinyin_dict
    from pypinyin.style import convert

    syllables = set()
    for readings in pinyin_dict.values():
        for reading in readings.split(","):
            syllables.add(convert(reading, Style.NORMAL, strict=True))
    syllables -= _NOT_IN_UPSTREAM_TABLE
    for syllable in list(syllables):
        if syllable[0] in "jqxy" and syllable[1:2] == "u":
            syllables.add(syllable[0] + "v" + syllable[2:])
    return {s: split_syllable(s) for s in syllables}
