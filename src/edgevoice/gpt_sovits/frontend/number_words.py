"""English number words exactly as upstream GPT-SoVITS gets them from `inflect` 7.6 (`number_to_words`,
`ordinal`), for the few ways its English normaliser calls it: cardinals with or without "and", years read in pairs
of digits, ordinals of digits and of words.

Why not `inflect` itself: importing it costs ~1.7 s on a 2-core Zen 4 (typeguard instruments every method at import),
paid by the first sentence with a number in every fresh process or server. The output, commas included (they reach
the phonemes as pauses), is checked against inflect on every number up to 200,000, on random ones up to 10^36, and on
every year and ordinal form (tests/test_number_words.py).
"""

from __future__ import annotations

_UNITS = ("", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_TEENS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ("", "thousand", "million", "billion", "trillion", "quadrillion", "quintillion", "sextillion",
           "septillion", "octillion", "nonillion", "decillion")
# endings whose ordinal is not "+th" (inflect's table; "ty" covers twenty ... ninety)
_ORDINAL_ENDINGS = (("ty", "tieth"), ("one", "first"), ("two", "second"), ("three", "third"), ("five", "fifth"),
                    ("eight", "eighth"), ("nine", "ninth"), ("twelve", "twelfth"))
_SUFFIXES = {1: "st", 2: "nd", 3: "rd", 11: "th", 12: "th", 13: "th"}


class NumberTooLarge(ValueError):
    """Beyond decillions: inflect has no word for the scale."""


def _below_hundred(number: int) -> str:
    tens, units = divmod(number, 10)
    if tens == 1:
        return _TEENS[units]
    return _TENS[tens] + ("-" if tens and units else "") + _UNITS[units]


def _below_thousand(number: int, andword: str) -> str:
    hundreds, rest = divmod(number, 100)
    if not hundreds:
        return _below_hundred(rest)
    return f"{_UNITS[hundreds]} hundred" + (f" {andword} {_below_hundred(rest)}" if rest else "")


def cardinal(number: int, andword: str = "and") -> str:
    """`inflect.engine().number_to_words(number, andword=andword)` for an integer >= 0: groups of thousands joined
    by ", ", and `andword` instead of the comma before a last group that is a single word ("one thousand and
    five", but "one thousand, two hundred and five")."""
    if number < 2:
        return ("zero", "one")[number]
    groups = []
    while number:
        number, group = divmod(number, 1000)
        groups.append(group)
    if len(groups) > len(_SCALES):
        raise NumberTooLarge(f"{len(groups) * 3} digits")
    parts = [_below_thousand(group, andword) + (f" {_SCALES[index]}" if index else "")
             for index, group in reversed(list(enumerate(groups))) if group]
    if len(parts) > 1 and " " not in parts[-1]:
        text = ", ".join(parts[:-1]) + f" {andword} " + parts[-1]
    else:
        text = ", ".join(parts)
    return " ".join(text.split())  # an empty andword leaves two spaces


def year(number: int) -> str:
    """A four-digit year read in pairs, "nineteen eighty-four", "nineteen oh five" (inflect's `group=2`,
    `zero="oh"`, `andword=""`, its ", " between the pairs replaced by a space as upstream does): 1010-9999 with a
    non-zero last pair."""
    high, low = divmod(number, 100)
    if not (10 <= high <= 99 and low):
        raise ValueError(f"not a year read in pairs: {number}")
    return f"{_below_hundred(high)} " + (_below_hundred(low) if low >= 10 else f"oh {_UNITS[low]}")


def ordinal_of_words(words: str) -> str:
    """"twenty-one" -> "twenty-first", "eleven" -> "eleventh" (inflect's `ordinal` of a word)."""
    for ending, replacement in _ORDINAL_ENDINGS:
        if words.endswith(ending):
            return words[: -len(ending)] + replacement
    return words + "th"


def ordinal_suffix(digits: str) -> str:
    """"21" -> "21st", "112" -> "112th" (inflect's `ordinal` of a string of digits)."""
    number = int(digits)
    return digits + _SUFFIXES.get(number % 100, _SUFFIXES.get(number % 10, "th"))


def ordinal_number(text: str) -> str:
    """"21st" (any of st/nd/rd/th after the digits) -> "twenty-first" (inflect's `number_to_words` of it)."""
    return ordinal_of_words(cardinal(int(text[:-2])))
