"""The English number words GPT-SoVITS's normaliser needs, against inflect (what upstream calls) on every number
up to 200,000, random ones up to 10^36, every year read in pairs and every ordinal form; and the normaliser itself
never imports inflect."""

from __future__ import annotations

import random
import subprocess
import time
import sys

import pytest

from edgevoice.gpt_sovits.frontend import number_words

inflect = pytest.importorskip("inflect", reason="the comparison needs inflect (the dev extra)")
ENGINE = inflect.engine()


def _random_numbers(count: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(10 ** rng.randint(1, 36)) for _ in range(count)]


NUMBERS = list(range(200_001)) + _random_numbers(20_000, 1) + [10 ** k for k in range(36)] \
    + [10 ** k + 1 for k in range(36)] + [10 ** 36 - 1]


@pytest.mark.parametrize("andword", ["and", ""])
def test_cardinals_match_inflect(andword):
    for number in NUMBERS:
        assert number_words.cardinal(number, andword) == ENGINE.number_to_words(number, andword=andword), number


def test_years_match_inflect_in_pairs():
    for number in range(1010, 10_000):
        if number % 100:
            expected = ENGINE.number_to_words(number, andword="", zero="oh", group=2).replace(", ", " ")
            assert number_words.year(number) == expected, number


def test_ordinals_match_inflect():
    for number in list(range(20_001)) + _random_numbers(5_000, 2):
        digits = str(number)
        assert number_words.ordinal_suffix(digits) == ENGINE.ordinal(digits), digits
        assert number_words.ordinal_of_words(number_words.cardinal(number)) == \
            ENGINE.ordinal(ENGINE.number_to_words(number)), number
        for suffix in ("st", "nd", "rd", "th"):  # upstream's pattern takes any suffix after any digits
            assert number_words.ordinal_number(digits + suffix) == ENGINE.number_to_words(digits + suffix), digits
    assert number_words.ordinal_number("007th") == ENGINE.number_to_words("007th")


def test_beyond_decillions_is_refused_as_inflect_does():
    with pytest.raises(inflect.NumOutOfRangeError):
        ENGINE.number_to_words(10 ** 36)
    with pytest.raises(number_words.NumberTooLarge):
        number_words.cardinal(10 ** 36)


def test_the_normaliser_reads_numbers_without_importing_inflect():
    code = ("import sys; from edgevoice.gpt_sovits.frontend.en_normalize import normalize_english; "
            "print(normalize_english('On 3/4 of the 21st day of 1984, at 7:05, 1205 people paid $3.50.')); "
            "print('inflect' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[1] == "False"
    assert "three fourths" in out[0] and "twenty-first" in out[0] and "nineteen eighty-four" in out[0]


@pytest.mark.parametrize("text", ["1" * 4200 + "x£", "1" * 4200 + "y$", "9" * 4200 + " z", "1" * 4200 + "kg",
                                  "7" * 4200 + "th", "1" * 4200 + "/3"])
def test_long_digit_runs_fail_fast_with_one_line(text):
    """Upstream's currency, decimal, fraction and arithmetic patterns backtrack over a digit run at every start
    (20 s for 2,000 digits before an unmatched '£'); ours start only where a run starts: the same matches."""
    from edgevoice.gpt_sovits.frontend.en_normalize import normalize_english
    from edgevoice.gpt_sovits.frontend.errors import FrontendError

    started = time.perf_counter()
    with pytest.raises(FrontendError, match="too large to read out|too long to read out") as error:
        normalize_english(text)
    assert time.perf_counter() - started < 2.0
    assert "\n" not in str(error.value) and len(str(error.value)) < 200


def test_python_refuses_what_upstream_converts_beyond_4300_digits():
    from edgevoice.gpt_sovits.frontend.en_normalize import normalize_english
    from edgevoice.gpt_sovits.frontend.errors import FrontendError

    with pytest.raises(FrontendError, match="5000 digits is too long"):
        normalize_english("1" * 5000)
