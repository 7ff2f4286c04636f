"""Digits to Chinese numerals, as EmotiVoice's `frontend_cn.tn_chinese` does it.

Upstream replaces every run matching ``\\d[\\d.]*`` by the output of its vendored cn2an
``An2Cn().an2cn(run)`` ("low" mode: 零一二…十百千万亿). This module is an independent
implementation of the same mapping (verified against upstream's converter):

* integers are read by 4-digit groups (个, 万, 亿, then 万 again for digits 13-16, so
  10**12 reads 一万亿); a run of zeros between two non-zero digits, within a group or
  across groups, reads as one 零 (``1001`` -> 一千零一, ``10001000`` -> 一千万零一千); leading zeros are
  ignored (``007`` -> 七, ``0`` -> 零); ``一十`` at the very start becomes ``十``
  (``10`` -> 十, ``100010`` -> 十万零一十); at most 16 significant integer digits;
* one decimal point: ``点`` followed by each decimal digit (at most 16 are kept, as
  upstream truncates them); a trailing point reads as nothing (``3.`` -> 三);
* two or more points, or a digit other than ASCII 0-9 (``\\d`` also matches e.g. full-width
  digits, which upstream's converter rejects) raise `TextError`, where upstream raises
  ``ValueError``.
"""

from __future__ import annotations

import re

from ..errors import TextError, abbreviated

DIGIT_RUN_RE = re.compile(r"(\d[\d.]*)")

_DIGITS = "零一二三四五六七八九"
_IN_GROUP_UNITS = ("", "十", "百", "千")  # by position inside a 4-digit group, from the right
_GROUP_UNITS = ("", "万", "亿", "万")  # by group, from the right (upstream has no 兆)
_MAX_INTEGER_DIGITS = 16
_MAX_DECIMAL_DIGITS = 16


def integer_to_chinese(digits: str) -> str:
    """ASCII digit string (leading zeros allowed) -> Chinese numerals."""
    significant = digits.lstrip("0")
    if not significant:
        return "零"
    if len(significant) > _MAX_INTEGER_DIGITS:
        raise TextError(
            f"the number {abbreviated(digits, quoted=True)} has more than {_MAX_INTEGER_DIGITS} digits before the "
            "decimal point (EmotiVoice's number reader does not support it)"
        )
    out: list[str] = []
    zero_pending = False  # zeros seen since the last non-zero digit: read as one 零 before the next
    group_has_digit = False
    for index, digit in enumerate(significant):
        power = len(significant) - 1 - index
        if digit == "0":
            zero_pending = True
        else:
            if zero_pending:
                out.append("零")
                zero_pending = False
            out.append(_DIGITS[int(digit)] + _IN_GROUP_UNITS[power % 4])
            group_has_digit = True
        if power % 4 == 0 and power > 0:  # last digit of a group
            if group_has_digit:
                out.append(_GROUP_UNITS[power // 4])
            elif power == 8 and out:
                out.append("亿")  # 一万亿: the 万 group above an empty 亿 group is read 万亿
            group_has_digit = False
    text = "".join(out)
    if text.startswith("一十"):
        text = text[1:]
    return text


def number_to_chinese(run: str) -> str:
    """One run of ``\\d[\\d.]*`` -> Chinese numerals, like upstream's ``An2Cn().an2cn(run)``."""
    bad = next((c for c in run if c not in "0123456789."), None)
    if bad is not None:
        raise TextError(
            f"the number {abbreviated(run, quoted=True)} contains the digit {bad!r} (U+{ord(bad):04X}); "
            "EmotiVoice's number reader accepts only ASCII digits 0-9"
        )
    parts = run.split(".")
    if len(parts) > 2:
        raise TextError(f"cannot read the number {abbreviated(run, quoted=True)}: it has more than one decimal point")
    text = integer_to_chinese(parts[0])
    if len(parts) == 2 and parts[1]:
        text += "点" + "".join(_DIGITS[int(d)] for d in parts[1][:_MAX_DECIMAL_DIGITS])
    return text


def tn_chinese(text: str) -> str:
    """Replace every digit run of `text` by Chinese numerals (upstream `tn_chinese`)."""
    return DIGIT_RUN_RE.sub(lambda m: number_to_chinese(m.group(1)), text)
