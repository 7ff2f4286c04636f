"""English text normalisation, behaving like GPT-SoVITS v2 `english.text_normalize`.

Stages (all observable upstream behaviour, including its quirks, which the trained models saw):
CJK sentence marks to ASCII, ordinals written "N. ", arithmetic between operands, negative
numbers, digit grouping commas, clock times, a few unit suffixes, pound/dollar amounts,
decimals, fractions, "1st"-style ordinals, remaining integers (spelled out as `inflect` does, by
`number_words`), accent stripping, removal of everything outside ``A-Za-z '.,?!-``, "i.e."/"e.g.",
a space before every capital that follows a non-space, and collapsing of punctuation runs.
"""

from __future__ import annotations

import re
import unicodedata

from . import number_words
from ...errors import abbreviated
from .errors import FrontendError

# Upstream's mapping table is applied with its keys escaped, so only these literal strings
# are replaced; ';' and ':' themselves are *not* turned into commas (they are deleted later).
_LITERAL_MARKS = {"[;:：，；]": ",", '["’]': "'", "。": ".", "！": "!", "？": "?"}
_LITERAL_MARKS_RE = re.compile("|".join(re.escape(k) for k in _LITERAL_MARKS))

_UNITS = {
    "m": ("meter", "meters"),
    "km": ("kilometer", "kilometers"),
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "ft": ("feet", "feet"),
    "L": ("liter", "liters"),
    "tbsp": ("tablespoon", "tablespoons"),
    "tsp": ("teaspoon", "teaspoons"),
    "h": ("hour", "hours"),
    "min": ("minute", "minutes"),
    "s": ("second", "seconds"),
    "°C": ("degree celsius", "degrees celsius"),
    "°F": ("degree fahrenheit", "degrees fahrenheit"),
}
# The alternation order matters (first alternative that lets `\b` succeed wins).
_UNIT_ALTERNATION = "m|km|km/h|ft|L|tbsp|tsp|h|min|s|°C|°F"

SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹ˣʸⁿ"
_OPERAND = (
    rf"((-?)(?<!\d)((\d+)(\.\d+)?[{SUPERSCRIPTS}]*)|(\.\d+[{SUPERSCRIPTS}]*)|([A-Za-z][{SUPERSCRIPTS}]*))"
)
_ARITHMETIC_RE = re.compile(_OPERAND + r"\s+([\+\-\×÷=])\s+" + _OPERAND)
_OPERATOR_WORDS = {"+": " plus ", "-": " minus ", "×": " times ", "÷": " divided by ", "=": " Equals "}

_ORDINAL_DOT_RE = re.compile(r"\b([0-9]+)\. ")
_NEGATIVE_RE = re.compile(r"(?:^|\s+)(-)(\d+)")
_GROUPED_NUMBER_RE = re.compile(r"([0-9][0-9\,]+[0-9])")
_TIME_RE = re.compile(r"\b([01]?[0-9]|2[0-3]):([0-5][0-9])\b")
_UNIT_RE = re.compile(rf"\b([0-9]+(\.[0-9]+)?({_UNIT_ALTERNATION}))\b")
_POUNDS_BEFORE_RE = re.compile(r"£([0-9\.\,]*[0-9]+)")
_POUNDS_AFTER_RE = re.compile(r"(?<![0-9\.\,])([0-9\.\,]*[0-9]+)£")
_DOLLARS_BEFORE_RE = re.compile(r"\$([0-9\.\,]*[0-9]+)")
_DOLLARS_AFTER_RE = re.compile(r"(?<![(0-9\.\,])([(0-9\.\,]*[0-9]+)\$")  # '(' in the class: upstream quirk
_DECIMAL_RE = re.compile(r"(?<![0-9])([0-9]+\.\s*[0-9]+)")
_FRACTION_RE = re.compile(r"(?<![0-9])([0-9]+/[0-9]+)")
_ORDINAL_SUFFIX_RE = re.compile(r"(?<![0-9])[0-9]+(st|nd|rd|th)")
_INTEGER_RE = re.compile(r"[0-9]+")
_NOT_KEPT_RE = re.compile(r"[^ A-Za-z'.,?!\-]")
_THAT_IS_RE = re.compile(r"(?i)i\.e\.")
_FOR_EXAMPLE_RE = re.compile(r"(?i)e\.g\.")
_CAPITAL_AFTER_NONSPACE_RE = re.compile(r"(?<!^)(?<![\s])([A-Z])")
_PUNCT_RUN_RE = re.compile(r"([!?…,.\-\s])([!?…,.\-])+")


_MAX_DIGITS = 4300  # Python's own limit on int(str): upstream's conversions fail beyond it with a traceback


def _readable(digits: str) -> str:
    if len(digits) > _MAX_DIGITS:
        raise FrontendError(f"a number of {len(digits)} digits is too long to read out")
    return digits


def _int(digits: str) -> int:
    return int(_readable(digits))


def _too_large(number: str) -> str:
    return f"English number too large to read out: {abbreviated(number)} (the largest is 36 digits, decillions)"


def _number_words(number: int, andword: str = "and") -> str:
    try:
        return number_words.cardinal(number, andword)
    except number_words.NumberTooLarge:
        raise FrontendError(_too_large(str(number))) from None


def _ordinal_dot(match: re.Match) -> str:
    return number_words.ordinal_suffix(_readable(match.group(1))) + ", "


def _arithmetic(match: re.Match) -> str:
    return match.group(1) + _OPERATOR_WORDS[match.group(8)] + match.group(9)


def _negative(match: re.Match) -> str:
    # The leading whitespace consumed by the pattern is dropped, as upstream does.
    return ("negative " if match.group(1) else "") + match.group(2)


def _clock_time(match: re.Match) -> str:
    hours, minutes = int(match.group(1)), int(match.group(2))
    period = "a.m." if hours < 12 else "p.m."
    if hours > 12:
        hours -= 12
    hour_words = _number_words(hours)
    if minutes == 0:
        return f"{hour_words} o'clock {period}"
    return f"{hour_words} {_number_words(minutes)} {period}"


def _unit(match: re.Match) -> str:
    unit = match.group(3)
    digits = _int(match.group(1).replace(unit, "").replace(".", ""))
    plural = not (match.group(2) is None and digits == 1)
    return match.group(1).replace(unit, " " + _UNITS[unit][1 if plural else 0])


def _money(amount: str, major: tuple[str, str], minor: tuple[str, str], zero: str) -> str:
    parts = amount.split(".")
    if len(parts) > 2:
        return amount + " " + major[1]
    try:
        whole = _int(parts[0]) if parts[0] else 0
        cents = _int(parts[1].ljust(2, "0")) if len(parts) > 1 and parts[1] else 0
    except FrontendError:
        raise  # a run of digits too long to convert: already one line
    except ValueError as exc:  # e.g. "$,5": upstream fails the same way
        raise FrontendError(f"cannot read the amount {abbreviated(amount, quoted=True)}") from exc
    pieces = []
    if whole:
        pieces.append(f"{whole} {major[0] if whole == 1 else major[1]}")
    if cents:
        pieces.append(f"{cents} {minor[0] if cents == 1 else minor[1]}")
    return " and ".join(pieces) if pieces else zero


def _pounds(match: re.Match) -> str:
    return _money(match.group(1), ("pound", "pounds"), ("penny", "pence"), "zero pounds")


def _dollars(match: re.Match) -> str:
    return _money(match.group(1), ("dollar", "dollars"), ("cent", "cents"), "zero dollars")


def _decimal(match: re.Match) -> str:
    whole, fraction = match.group(1).split(".")[:2]
    return whole + " point " + " ".join(fraction)


def _fraction(match: re.Match) -> str:
    numerator, denominator = (_int(x) for x in match.group(0).split("/"))
    numerator_words = _number_words(numerator)
    if denominator == 2:
        return f"{numerator_words} {'half' if numerator == 1 else 'halves'}"
    if denominator == 1:
        return numerator_words
    denominator_words = number_words.ordinal_of_words(_number_words(denominator))
    if numerator > 1:
        denominator_words += "s"
    return f"{numerator_words} {denominator_words}"


def _ordinal_suffix(match: re.Match) -> str:
    try:
        return number_words.ordinal_number(_readable(match.group(0)))
    except number_words.NumberTooLarge:
        raise FrontendError(_too_large(match.group(0))) from None


def _integer(match: re.Match) -> str:
    number = _int(match.group(0))
    if 1000 < number < 3000:  # read like a year
        if number == 2000:
            return "two thousand"
        if 2000 < number < 2010:
            return "two thousand " + _number_words(number % 100)
        if number % 100 == 0:
            return _number_words(number // 100) + " hundred"
        return number_words.year(number)
    return _number_words(number, andword="")


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def expand(text: str) -> str:
    """Numbers, symbols and character filtering (upstream `en_normalization.expend.normalize`)."""
    text = _ORDINAL_DOT_RE.sub(_ordinal_dot, text)
    while _ARITHMETIC_RE.search(text):
        text = _ARITHMETIC_RE.sub(_arithmetic, text)
    text = _NEGATIVE_RE.sub(_negative, text)
    text = _GROUPED_NUMBER_RE.sub(lambda m: m.group(1).replace(",", ""), text)
    text = _TIME_RE.sub(_clock_time, text)
    text = _UNIT_RE.sub(_unit, text)
    text = _POUNDS_BEFORE_RE.sub(_pounds, text)
    text = _POUNDS_AFTER_RE.sub(_pounds, text)
    text = _DOLLARS_BEFORE_RE.sub(_dollars, text)
    text = _DOLLARS_AFTER_RE.sub(_dollars, text)
    text = _DECIMAL_RE.sub(_decimal, text)
    text = _FRACTION_RE.sub(_fraction, text)
    text = _ORDINAL_SUFFIX_RE.sub(_ordinal_suffix, text)
    text = _INTEGER_RE.sub(_integer, text)
    text = strip_accents(text)
    text = text.replace("%", " percent")
    text = _NOT_KEPT_RE.sub("", text)
    text = _THAT_IS_RE.sub("that is", text)
    text = _FOR_EXAMPLE_RE.sub("for example", text)
    return _CAPITAL_AFTER_NONSPACE_RE.sub(r" \1", text)


def collapse_punctuation_runs(text: str) -> str:
    """A punctuation mark (or space) followed by more marks keeps only the first one."""
    return _PUNCT_RUN_RE.sub(r"\1", text)


def normalize_english(text: str) -> str:
    text = _LITERAL_MARKS_RE.sub(lambda m: _LITERAL_MARKS[m.group()], text)
    return collapse_punctuation_runs(expand(text))
