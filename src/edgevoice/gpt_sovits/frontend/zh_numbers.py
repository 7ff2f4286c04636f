"""Reading Arabic numbers in Chinese, as upstream's normaliser does."""

from __future__ import annotations

DIGIT_CHARS = "零一二三四五六七八九"
# Unit characters by power of ten; larger powers are built recursively (e.g. 十万, 千亿).
_UNIT_POWERS = ((8, "亿"), (4, "万"), (3, "千"), (2, "百"), (1, "十"))


def digits_reading(digits: str, alt_one: bool = False) -> str:
    """Digit by digit ("110" -> 一一零); `alt_one` reads 1 as 幺 (phone numbers)."""
    text = "".join(DIGIT_CHARS[int(d)] for d in digits)
    return text.replace("一", "幺") if alt_one else text


def _cardinal_parts(digits: str, use_zero: bool = True) -> list[str]:
    stripped = digits.lstrip("0")
    if not stripped:
        return []
    if len(stripped) == 1:
        if use_zero and len(stripped) < len(digits):
            return [DIGIT_CHARS[0], DIGIT_CHARS[int(stripped)]]
        return [DIGIT_CHARS[int(stripped)]]
    power, unit = next((p, u) for p, u in _UNIT_POWERS if p < len(stripped))
    return _cardinal_parts(digits[:-power]) + [unit] + _cardinal_parts(digits[-power:])


def cardinal(digits: str) -> str:
    """Integer reading ("105" -> 一百零五, "12" -> 十二)."""
    if not digits:
        return ""
    digits = digits.lstrip("0")
    if not digits:
        return DIGIT_CHARS[0]
    parts = _cardinal_parts(digits)
    if len(parts) >= 2 and parts[0] == "一" and parts[1] == "十":
        parts = parts[1:]
    return "".join(parts)


def number_reading(number: str) -> str:
    """Integer or decimal reading ("3.50" -> 三点五零, ".5" -> 零点五)."""
    integer, _, decimal = number.partition(".")
    text = cardinal(integer)
    # Trailing zeros of the decimal part are dropped except that one zero is kept.
    decimal = decimal.rstrip("0") + "0" if decimal.endswith("0") else decimal.rstrip("0")
    if decimal:
        text = (text or "零") + "点" + digits_reading(decimal)
    return text


def time_part_reading(digits: str) -> str:
    """Minutes/seconds: a leading zero is read ("05" -> 零五)."""
    text = number_reading(digits.lstrip("0"))
    return DIGIT_CHARS[0] + text if digits.startswith("0") else text
