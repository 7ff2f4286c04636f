"""GPT-SoVITS phone symbol tables (v1: 322 symbols, v2: 732 symbols).

The tables are rebuilt from the rules in the spec (research/gpt_sovits_spec.md §2.1 and
Appendix A), not copied: v1 is the code-point-sorted set of pad, Chinese initials, Chinese
finals x tones 1-5, Japanese phones, punctuation, SP/SP2/SP3/UNK and ARPAbet; v2 appends the
Japanese pitch marks, the Korean jamo (+ 停, 空) and the Cantonese jyutping symbols.
The v2 table's sha256 fingerprint is checked by the tests.
"""

from __future__ import annotations

from functools import lru_cache

PUNCTUATION = ("!", "?", "…", ",", ".", "-")
SPECIAL_SYMBOLS = ("SP", "SP2", "SP3", "UNK")
PAD = "_"

ZH_INITIALS = tuple("AA EE OO b c ch d f g h j k l m n p q r s sh t w x y z zh".split())
ZH_FINALS = tuple(
    "E En a ai an ang ao e ei en eng er i i0 ia ian iang iao ie in ing iong ir iu o ong ou "
    "u ua uai uan uang ui un uo v van ve vn".split()
)
JA_PHONES = tuple(
    "I N U a b by ch cl d dy e f g gy h hy i j k ky m my n ny o p py r ry s sh t ts u v w y z".split()
)

_ARPA_VOWELS = "AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split()
_ARPA_CONSONANTS = "B CH D DH F G HH JH K L M N NG P R S SH T TH V W Y Z ZH".split()
# ER and IH also occur without a stress digit in the table; bare UW does not.
ARPABET = tuple(
    [v + str(s) for v in _ARPA_VOWELS for s in range(3)] + ["ER", "IH"] + _ARPA_CONSONANTS
)

JA_PITCH_MARKS = ("[", "]")
KO_SYMBOLS = tuple("ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎㅏㅐㅓㅔㅗㅜㅡㅣ") + ("停", "空")

# Cantonese: jyutping units prefixed with "Y". Bases that occur without a tone digit
# (initials and a few finals), and finals that occur with each tone 1-6.
_YUE_TONELESS = "a aa ai ak au b c d e f g gw h j k kw l m n ng o oi ok on ou p s t uk w z".split()
_YUE_TONED = (
    "a aa aai aak aam aan aang aap aat aau ai ak am an ang ap at au e ei ek eng eoi eon eot g "
    "i ik im in ing ip it iu k m n o oe oek oeng oi ok on ong ot ou p t u ui uk un ung ut yu yun yut"
).split()

V2_FINGERPRINT = "0771f6cd6f6201e8c2b0de921dc69cc04caf3f346c599d4a41413967d5674da7"


@lru_cache(maxsize=None)
def symbols_v1() -> tuple[str, ...]:
    finals_with_tones = [f + str(t) for t in range(1, 6) for f in ZH_FINALS]
    pool = (
        [PAD] + list(ZH_INITIALS) + finals_with_tones + list(JA_PHONES)
        + list(PUNCTUATION) + list(SPECIAL_SYMBOLS) + list(ARPABET)
    )
    return tuple(sorted(set(pool)))


@lru_cache(maxsize=None)
def symbols_v2() -> tuple[str, ...]:
    cantonese = ["Y" + b for b in _YUE_TONELESS] + [
        "Y" + b + str(t) for b in _YUE_TONED for t in range(1, 7)
    ]
    return (
        symbols_v1() + JA_PITCH_MARKS + tuple(sorted(KO_SYMBOLS)) + tuple(sorted(set(cantonese)))
    )


def symbol_table(version: str = "v2") -> tuple[str, ...]:
    """Symbol list of a model version; the id of a symbol is its index."""
    if version == "v1":
        return symbols_v1()
    if version in ("v2", "v2Pro", "v2ProPlus"):
        return symbols_v2()
    raise ValueError(f"unknown model version {version!r}: expected 'v1' or 'v2'")


@lru_cache(maxsize=None)
def symbol_to_id(version: str = "v2") -> dict[str, int]:
    return {symbol: index for index, symbol in enumerate(symbol_table(version))}
