"""Chinese text normalisation, behaving like GPT-SoVITS v2 `chinese2.text_normalize`.

Upstream uses PaddleSpeech's rule-based normaliser: sentence split, traditional ->
simplified, full-width -> half-width, then dates, times, ranges, temperatures, units,
arithmetic, powers, fractions, percentages, phone numbers, signed/decimal numbers,
quantities and digit strings are verbalised; Greek letters, circled digits and operators are
spelt out; finally punctuation is mapped to ``! ? … , . -`` and everything else that is
not a CJK ideograph is dropped. The rules below reproduce that behaviour.
"""

from __future__ import annotations

import re
import string
from functools import lru_cache
from pathlib import Path

from .zh_numbers import (
    cardinal,
    digits_reading,
    number_reading,
    time_part_reading,
)

_DATA_DIR = Path(__file__).resolve().parent / "data"

_SENTENCE_END_RE = re.compile(r"([：、，；。？！,;?!][”’]?)")
_SPLIT_DROPPED_RE = re.compile(r"[——《》【】<>{}()（）#&@“”^_|\\]")
_FULL_TO_HALF = {ord(c) + 65248: ord(c) for c in string.ascii_letters + string.digits}
_FULL_TO_HALF[0x3000] = ord(" ")

_SUP = "⁰¹²³⁴⁵⁶⁷⁸⁹ˣʸⁿ"
_SUP_VALUES = dict(zip(_SUP, "0123456789xyn"))
_OPERAND = rf"((-?)(?<!\d)((\d+)(\.\d+)?[{_SUP}]*)|(\.\d+[{_SUP}]*)|([A-Za-z][{_SUP}]*))"
_ARITHMETIC_RE = re.compile(_OPERAND + r"([\+\-\×÷=])" + _OPERAND)
_OPERATOR_WORDS = {"+": "加", "-": "减", "×": "乘", "÷": "除", "=": "等于"}
_POWER_RE = re.compile(rf"[{_SUP}]+")

_DATE_RE = re.compile(r"(\d{4}|\d{2})年((0?[1-9]|1[0-2])月)?(((0?[1-9])|((1|2)[0-9])|30|31)([日号]))?")
_DATE_NUMERIC_RE = re.compile(r"(\d{4})([- /.])(0[1-9]|1[012])\2(0[1-9]|[12][0-9]|3[01])")
_CLOCK = r"([0-1]?[0-9]|2[0-3]):([0-5][0-9])(:([0-5][0-9]))?"
_TIME_RE = re.compile(_CLOCK)
_TIME_RANGE_RE = re.compile(_CLOCK + r"(~|-)" + _CLOCK)

_RANGE_UNITS = r"(%|°C|℃|度|摄氏度|cm2|cm²|cm3|cm³|cm|db|ds|kg|km|m2|m²|m³|m3|ml|m|mm|s)"
_SIGNED = r"((-?)(?<!\d)((\d+)(\.\d+)?)|(\.(\d+)))"
_TO_RANGE_RE = re.compile(_SIGNED + _RANGE_UNITS + "[~]" + _SIGNED + _RANGE_UNITS)
_TEMPERATURE_RE = re.compile(r"(-?)(?<!\d)(\d+(\.\d+)?)(°C|℃|度|摄氏度)")
# Unit suffixes replaced anywhere in the sentence, in this order (so "cm2" before "cm", "m").
_MEASURES = (
    ("cm2", "平方厘米"), ("cm²", "平方厘米"), ("cm3", "立方厘米"), ("cm³", "立方厘米"),
    ("cm", "厘米"), ("db", "分贝"), ("ds", "毫秒"), ("kg", "千克"), ("km", "千米"),
    ("m2", "平方米"), ("m²", "平方米"), ("m³", "立方米"), ("m3", "立方米"), ("ml", "毫升"),
    ("m", "米"), ("mm", "毫米"), ("s", "秒"),
)
_FRACTION_RE = re.compile(r"(-?)(?<!\d)(\d+)/(\d+)")
_PERCENT_RE = re.compile(r"(-?)(?<!\d)(\d+(\.\d+)?)%")
_MOBILE_RE = re.compile(r"(?<!\d)((\+?86 ?)?1([38]\d|5[0-35-9]|7[678]|9[89])\d{8})(?!\d)")
_LANDLINE_RE = re.compile(r"(?<!\d)((0(10|2[1-3]|[3-9]\d{2})-?)?[1-9]\d{6,7})(?!\d)")
_SERVICE_NUMBER_RE = re.compile(r"(400)(-)?\d{3}(-)?\d{4}")
_RANGE_RE = re.compile(r"(?<![\d\+\-\×÷=])((-?)((\d+)(\.\d+)?))[-~]((-?)((\d+)(\.\d+)?))(?![\d\+\-\×÷=])")
_NEGATIVE_RE = re.compile(r"(-)(\d+)")
_VERSION_RE = re.compile(r"(?<!\d)((\d+)(\.\d+)(\.\d+)?(\.\d+)+)")
_DECIMAL_RE = re.compile(r"(-?)(?<!\d)((\d+)(\.\d+))|(\.(\d+))")
_MEASURE_WORDS = (
    "(处|台|架|枚|趟|幅|平|方|堵|间|床|株|批|项|例|列|篇|栋|注|亩|封|艘|把|目|套|段|人|所|朵|匹|张|座|回|场|尾|条|个|"
    "首|阙|阵|网|炮|顶|丘|棵|只|支|袭|辆|挑|担|颗|壳|窠|曲|墙|群|腔|砣|座|客|贯|扎|捆|刀|令|打|手|罗|坡|山|岭|江|溪|"
    "钟|队|单|双|对|出|口|头|脚|板|跳|枝|件|贴|针|线|管|名|位|身|堂|课|本|页|家|户|层|丝|毫|厘|分|钱|两|斤|担|铢|石|"
    "钧|锱|忽|(千|毫|微)克|毫|厘|(公)分|分|寸|尺|丈|里|寻|常|铺|程|(千|分|厘|毫|微)米|米|撮|勺|合|升|斗|石|盘|碗|碟|"
    "叠|桶|笼|盆|盒|杯|钟|斛|锅|簋|篮|盘|桶|罐|瓶|壶|卮|盏|箩|箱|煲|啖|袋|钵|年|月|日|季|刻|时|周|天|秒|分|小时|旬|"
    "纪|岁|世|更|夜|春|夏|秋|冬|代|伏|辈|丸|泡|粒|颗|幢|堆|条|根|支|道|面|片|张|颗|块|元|(亿|千万|百万|万|千|百)|"
    "(亿|千万|百万|万|千|百|美|)元|(亿|千万|百万|万|千|百|十|)吨|(亿|千万|百万|万|千|百|)块|角|毛|分)"
)
_QUANTITY_RE = re.compile(r"(?<!\d)(\d+)([多余几\+])?" + _MEASURE_WORDS)
_DIGIT_STRING_RE = re.compile(r"\d{3}\d*")
_NUMBER_RE = re.compile(r"(-?)((\d+)(\.\d+)?)|(\.(\d+))")

SPELLED_SYMBOLS = {
    "/": "每", "①": "一", "②": "二", "③": "三", "④": "四", "⑤": "五", "⑥": "六", "⑦": "七",
    "⑧": "八", "⑨": "九", "⑩": "十", "α": "阿尔法", "β": "贝塔", "γ": "伽玛", "Γ": "伽玛",
    "δ": "德尔塔", "Δ": "德尔塔", "ε": "艾普西龙", "ζ": "捷塔", "η": "依塔", "θ": "西塔",
    "Θ": "西塔", "ι": "艾欧塔", "κ": "喀帕", "λ": "拉姆达", "Λ": "拉姆达", "μ": "缪", "ν": "拗",
    "ξ": "克西", "Ξ": "克西", "ο": "欧米克伦", "π": "派", "Π": "派", "ρ": "肉", "ς": "西格玛",
    "Σ": "西格玛", "σ": "西格玛", "τ": "套", "υ": "宇普西龙", "φ": "服艾", "Φ": "服艾", "χ": "器",
    "ψ": "普赛", "Ψ": "普赛", "ω": "欧米伽", "Ω": "欧米伽", "+": "加", "-": "减", "×": "乘",
    "÷": "除", "=": "等",
}
_POST_DROPPED_RE = re.compile(r"[-——《》【】<=>{}()（）#&@“”^_|\\]")

# Sentence-mark mapping of chinese2.replace_punctuation (applied as one alternation).
_MARKS = {
    "：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",",
    "、": ",", "...": "…", "$": ".", "/": ",", "—": "-", "~": "…", "～": "…",
}
_MARKS_RE = re.compile("|".join(re.escape(k) for k in _MARKS))
_NOT_HAN_OR_MARK_RE = re.compile(r"[^\u4e00-\u9fa5!?…,.\-]+")
_MARK_RUN_RE = re.compile(r"([!?…,.\-])([!?…,.\-])+")


@lru_cache(maxsize=1)
def _traditional_to_simplified() -> dict[int, str]:
    table = {}
    for line in (_DATA_DIR / "zh_t2s.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            table[ord(line[0])] = line[1]
    return table


def _date(m: re.Match) -> str:
    text = digits_reading(m.group(1)) + "年"
    if m.group(3):
        text += cardinal(m.group(3)) + "月"
    if m.group(5):
        text += cardinal(m.group(5)) + m.group(9)
    return text


def _numeric_date(m: re.Match) -> str:
    return f"{digits_reading(m.group(1))}年{cardinal(m.group(3))}月{cardinal(m.group(4))}日"


def _clock_reading(hour: str, minute: str, second: str | None, half_if: str) -> str:
    text = number_reading(hour) + "点"
    if minute.lstrip("0"):
        # Upstream tests the *first* minute for "half" in both ends of a range.
        text += "半" if int(half_if) == 30 else time_part_reading(minute) + "分"
    if second and second.lstrip("0"):
        text += time_part_reading(second) + "秒"
    return text


def _time(m: re.Match) -> str:
    text = _clock_reading(m.group(1), m.group(2), m.group(4), m.group(2))
    if m.re is _TIME_RANGE_RE:
        text += "至" + _clock_reading(m.group(6), m.group(7), m.group(9), m.group(2))
    return text


def _temperature(m: re.Match) -> str:
    unit = "摄氏度" if m.group(4) == "摄氏度" else "度"
    return ("零下" if m.group(1) else "") + number_reading(m.group(2)) + unit


def _arithmetic(m: re.Match) -> str:
    return m.group(1) + _OPERATOR_WORDS[m.group(8)] + m.group(9)


def _power(m: re.Match) -> str:
    return "的" + "".join(_SUP_VALUES[c] for c in m.group(0)) + "次方"


def _fraction(m: re.Match) -> str:
    return ("负" if m.group(1) else "") + number_reading(m.group(3)) + "分之" + number_reading(m.group(2))


def _percent(m: re.Match) -> str:
    return ("负" if m.group(1) else "") + "百分之" + number_reading(m.group(2))


def _mobile(m: re.Match) -> str:
    return "，".join(digits_reading(part, alt_one=True) for part in m.group(0).strip("+").split())


def _landline(m: re.Match) -> str:
    return "，".join(digits_reading(part, alt_one=True) for part in m.group(0).split("-"))


def _signed_number(m: re.Match) -> str:
    if m.group(5):
        return number_reading(m.group(5))
    return ("负" if m.group(1) else "") + number_reading(m.group(2))


def _range(m: re.Match) -> str:
    first = _NUMBER_RE.sub(_signed_number, m.group(1))
    second = _NUMBER_RE.sub(_signed_number, m.group(6))
    return f"{first}到{second}"


def _negative(m: re.Match) -> str:
    return ("负" if m.group(1) else "") + number_reading(m.group(2))


def _version(m: re.Match) -> str:
    return "".join("点" if c == "." else number_reading(c) for c in m.group(1))


def _quantity(m: re.Match) -> str:
    number = number_reading(m.group(1))
    if number == "二":
        number = "两"
    extra = "多" if m.group(2) == "+" else (m.group(2) or "")
    return number + extra + m.group(3)


def _split_sentences(text: str) -> list[str]:
    text = _SPLIT_DROPPED_RE.sub("", text.replace(" ", ""))
    text = _SENTENCE_END_RE.sub(r"\1\n", text).strip()
    return [s.strip() for s in re.split(r"\n+", text)]


def _normalize_sentence(sentence: str) -> str:
    sentence = sentence.translate(_traditional_to_simplified()).translate(_FULL_TO_HALF)
    sentence = _DATE_RE.sub(_date, sentence)
    sentence = _DATE_NUMERIC_RE.sub(_numeric_date, sentence)
    sentence = _TIME_RANGE_RE.sub(_time, sentence)
    sentence = _TIME_RE.sub(_time, sentence)
    sentence = _TO_RANGE_RE.sub(lambda m: m.group(0).replace("~", "至"), sentence)
    sentence = _TEMPERATURE_RE.sub(_temperature, sentence)
    for notation, reading in _MEASURES:
        sentence = sentence.replace(notation, reading)
    while _ARITHMETIC_RE.search(sentence):
        sentence = _ARITHMETIC_RE.sub(_arithmetic, sentence)
    sentence = _POWER_RE.sub(_power, sentence)
    sentence = _FRACTION_RE.sub(_fraction, sentence)
    sentence = _PERCENT_RE.sub(_percent, sentence)
    sentence = _MOBILE_RE.sub(_mobile, sentence)
    sentence = _LANDLINE_RE.sub(_landline, sentence)
    sentence = _SERVICE_NUMBER_RE.sub(_landline, sentence)
    sentence = _RANGE_RE.sub(_range, sentence)
    sentence = _NEGATIVE_RE.sub(_negative, sentence)
    sentence = _VERSION_RE.sub(_version, sentence)
    sentence = _DECIMAL_RE.sub(_signed_number, sentence)
    sentence = _QUANTITY_RE.sub(_quantity, sentence)
    sentence = _DIGIT_STRING_RE.sub(lambda m: digits_reading(m.group(0), alt_one=True), sentence)
    sentence = _NUMBER_RE.sub(_signed_number, sentence)
    for symbol, reading in SPELLED_SYMBOLS.items():
        sentence = sentence.replace(symbol, reading)
    return _POST_DROPPED_RE.sub("", sentence)


def _map_marks(sentence: str) -> str:
    sentence = sentence.replace("嗯", "恩").replace("呣", "母")
    sentence = _MARKS_RE.sub(lambda m: _MARKS[m.group()], sentence)
    return _NOT_HAN_OR_MARK_RE.sub("", sentence)


def normalize_chinese(text: str) -> str:
    """Normalised text: CJK ideographs and ``! ? … , . -`` only, one phone group per character."""
    text = "".join(_map_marks(_normalize_sentence(s)) for s in _split_sentences(text))
    return _MARK_RUN_RE.sub(r"\1", text)
