"""Numbers as ASR writes them, English and Mandarin: pure functions, no I/O.

English text becomes tokens (words, numerals, symbols) that small readers walk: `read_cardinal`
("a hundred and five", "3.5"), `read_ordinal` ("twenty first", "3rd"), `digit_runs` (digit
strings). Mandarin is read per character: `zh_int` ("一百零五", "两千五", "二零二六").

Digit strings in English: digit words, numerals and number words all count ("forty eight" is
48, "eight hundred" 800, "double seven" 77). "oh"/"o" (zero, or a filler) and the homophones
to/too/for/fore/won/ate are weak: they count only beside a spelled digit word, with the other
side a digit too or the edge of the utterance ("for eight one" -> 481; "I want to track order
four eight one" -> 481); homophones never join numerals ("481516 for 2 items"). `strict=True`
drops homophones and keeps "oh" only between digits: a second reading, when the first does not
fit the slot's length.
"""

import re
import unicodedata
from decimal import Decimal
from itertools import groupby, takewhile

UNITS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
         "nine": 9, "niner": 9, "nought": 0, "naught": 0}
TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
         "seventeen": 17, "eighteen": 18, "nineteen": 19}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
        "eighty": 80, "ninety": 90}
SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6}
MULTIPLIERS = {"double": 2, "triple": 3, "treble": 3}
ZERO_LETTERS = frozenset({"oh", "o"})
HOMOPHONES = {"to": "two", "too": "two", "for": "four", "fore": "four", "won": "one", "ate": "eight"}
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
            "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
            "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
            "twentieth": 20, "thirtieth": 30}
FILLERS = frozenset({"um", "umm", "uh", "uhh", "uhm", "er", "erm", "ah", "hmm", "hm", "mm"})
NUMBER_WORDS = frozenset(UNITS) | frozenset(TEENS) | frozenset(TENS)

_TOKEN = re.compile(r"\d+(?:[.,:/-]\d+)*(?:st|nd|rd|th)?|[a-z]+(?:'[a-z]+)?|[$€£¥+]")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def normalize(text: str) -> str:
    """NFKC (full-width to ASCII), lower case, plain apostrophes, "p.m." -> "pm", "o'clock" -> "oclock"."""
    text = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'")
    text = re.sub(r"\b([ap])\.\s?m\b\.?", r"\1m", text)
    return text.replace("o'clock", "oclock")


def en_tokens(text: str) -> list[str]:
    """Words, numerals ("481-516", "2:30", "3rd", "1,000" -> "1000") and symbols; fillers dropped."""
    text = re.sub(r"^\W*(?:(?:um|uh|er|ah)\W+)*oh[,.!?]", " ", normalize(text))  # "Oh, 481.": "oh" as a word
    out = []
    for tok in _TOKEN.findall(text):
        if _THOUSANDS.fullmatch(tok):
            tok = tok.replace(",", "")
        if tok not in FILLERS:
            out.append(tok)
    return out


def is_numeral(tok: str) -> bool:
    return tok[:1].isdigit()


def numeral_value(tok: str) -> Decimal | None:
    """"12", "3.5" -> a number; "3rd", "481-516", "2:30" -> None (not one quantity)."""
    return Decimal(tok) if re.fullmatch(r"\d+(\.\d+)?", tok) else None


def _numeral_digits(tok: str) -> str:
    """"481-516" -> "481516", "3rd" -> "3"."""
    return re.sub(r"\D", "", re.sub(r"(st|nd|rd|th)$", "", tok))


def _digit_of(tok: str) -> str | None:
    """One digit said alone: "seven", "7", "oh"."""
    if tok in UNITS:
        return str(UNITS[tok])
    if tok in ZERO_LETTERS:
        return "0"
    return tok if len(tok) == 1 and tok.isdigit() else None


def read_cardinal(toks: list[str], i: int) -> tuple[Decimal, int] | None:
    """The number said as one quantity from toks[i]: (value, index after it), or None."""
    n = len(toks)
    tok = toks[i]
    if is_numeral(tok):
        value = numeral_value(tok)
        if value is None:
            return None
        if i + 1 < n and toks[i + 1] in SCALES:       # "5 hundred", "1.5 million"
            return value * SCALES[toks[i + 1]], i + 2
        return value, i + 1
    total = current = 0
    last = None    # what the previous word was: unit, teen, tens, hundred, scale
    j = i
    while j < n:
        w = toks[j]
        nxt = toks[j + 1] if j + 1 < n else ""
        if w == "a" and last is None and nxt in SCALES:
            current, last = 1, "unit"
        elif w in UNITS and (last is None or (last in ("tens", "hundred", "scale") and UNITS[w] > 0)):
            current, last = current + UNITS[w], "unit"
        elif w in TEENS and last in (None, "hundred", "scale"):
            current, last = current + TEENS[w], "teen"
        elif w in TENS and last in (None, "hundred", "scale"):
            current, last = current + TENS[w], "tens"
        elif w == "hundred" and last in ("unit", "teen", "tens") and 0 < current < 100:
            current, last = current * 100, "hundred"      # "twelve hundred" = 1200
        elif w in ("thousand", "million") and last in ("unit", "teen", "tens", "hundred") and current:
            total, current, last = total + current * SCALES[w], 0, "scale"
        elif not (w == "and" and last in ("hundred", "scale") and nxt in NUMBER_WORDS):
            break
        j += 1
    if last is None and tok != "point":
        return None
    value = Decimal(total + current)
    if toks[j : j + 1] == ["point"]:
        frac = list(takewhile(lambda d: d is not None, (_digit_of(t) for t in toks[j + 1 :])))
        if frac:
            return Decimal(f"{int(value)}.{''.join(frac)}"), j + 1 + len(frac)
    if toks[j : j + 3] == ["and", "a", "half"]:
        return value + Decimal("0.5"), j + 3
    return (value, j) if last is not None else None


def read_ordinal(toks: list[str], i: int) -> tuple[int, int] | None:
    """"third", "twenty first", "3rd", "21st" from toks[i]: (value, index after), or None."""
    tok = toks[i]
    if re.fullmatch(r"\d+(st|nd|rd|th)", tok):
        return int(tok[:-2]), i + 1
    if tok in ORDINALS:
        return ORDINALS[tok], i + 1
    if tok in TENS and i + 1 < len(toks) and ORDINALS.get(toks[i + 1], 10) < 10:
        return TENS[tok] + ORDINALS[toks[i + 1]], i + 2
    return None


def number_spans(toks: list[str]) -> list[tuple[Decimal, int, int]]:
    """Every number in the tokens as (value, start, end), left to right."""
    spans: list[tuple[Decimal, int, int]] = []
    for i in range(len(toks)):
        if (not spans or i >= spans[-1][2]) and (got := read_cardinal(toks, i)) is not None:
            spans.append((got[0], i, got[1]))
    return spans


def numbers_said(text: str, lang: str) -> list[Decimal]:
    """Numbers said, most likely (last) first; adjacent ones join as digits ("one two three")."""
    if lang == "zh":
        return [v for v, _, _ in reversed(zh_number_spans(zh_clean(text)))]
    groups: list[list[Decimal]] = []
    last_end = -1
    for value, start, end in number_spans(en_tokens(text)):
        groups[-1:] = [[*groups[-1], value]] if start == last_end else [*groups[-1:], [value]]
        last_end = end
    out = []
    for group in reversed(groups):
        if len(group) == 1 or any(v != int(v) for v in group):
            out.append(group[-1])
        else:
            out.append(Decimal("".join(str(int(v)) for v in group)))
    return out


def digits_of(toks: list[str]) -> str:
    """The digit string a run of digit tokens says."""
    out = []
    i = 0
    while i < len(toks):
        tok = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        if tok in MULTIPLIERS and (_digit_of(nxt) is not None or is_numeral(nxt)):
            said = _numeral_digits(nxt) if is_numeral(nxt) else _digit_of(nxt) or ""
            out.append(said[:1] * (MULTIPLIERS[tok] - 1) + said)   # whisper writes "double seven three" "Double 73"
            i += 2
        elif tok in ZERO_LETTERS:
            out.append("0")
            i += 1
        elif is_numeral(tok) and nxt not in SCALES:
            out.append(_numeral_digits(tok))
            i += 1
        elif (got := read_cardinal(toks, i)) is not None:
            end = got[1]
            if (end - 2 > i and toks[end - 2] == "hundred" and toks[end - 1] in UNITS and end < len(toks)
                    and _digit_of(toks[end]) is not None):
                # "one eight hundred five five five": digits go on one by one, so "hundred" ends the number
                got = read_cardinal(toks[: end - 1], i) or got
            out.append(str(int(got[0])))
            i = got[1]
        else:
            i += 1
    return "".join(out)


def _strong(toks: list[str], i: int) -> bool:
    """A token that surely belongs to a digit string here."""
    tok = toks[i]
    prev = toks[i - 1] if i > 0 else ""
    nxt = toks[i + 1] if i + 1 < len(toks) else ""
    if is_numeral(tok) or tok in NUMBER_WORDS:
        return True
    if tok in SCALES:
        return is_numeral(prev) or prev in NUMBER_WORDS or prev == "a"
    if tok in MULTIPLIERS:
        return _digit_of(nxt) is not None or is_numeral(nxt)
    if tok == "a":
        return nxt in SCALES
    return tok == "and" and prev in SCALES and nxt in NUMBER_WORDS


def digit_runs(toks: list[str], strict: bool = False) -> list[tuple[int, str]]:
    """Each digit string said in the tokens as (start index, digits), left to right."""
    n = len(toks)
    keep = [_strong(toks, i) for i in range(n)]
    weak = [not keep[i] and (toks[i] in ZERO_LETTERS or toks[i] in HOMOPHONES) for i in range(n)]
    for is_weak, group in groupby(range(n), key=lambda k: weak[k]):
        at = list(group)
        homophone = any(toks[k] in HOMOPHONES for k in at)
        if not is_weak or (strict and homophone):
            continue
        sides = []      # what is next to the weak words: a digit, the edge of the utterance, or other words
        for k in (at[0] - 1, at[-1] + 1):
            edge = k < 0 or k >= n
            sides.append("edge" if edge else "digit" if keep[k] and not (homophone and is_numeral(toks[k])) else "")
        if sides == ["digit", "digit"] or (not strict and "digit" in sides and "" not in sides):
            keep[at[0] : at[-1] + 1] = [True] * len(at)
    runs = []
    for kept, group in groupby(range(n), key=lambda k: keep[k]):
        at = list(group)
        if kept and (digits := digits_of([HOMOPHONES.get(toks[k], toks[k]) for k in at])):
            runs.append((at[0], digits))
    return runs


# -- Mandarin -----------------------------------------------------------------------------

ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "幺": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
             "八": 8, "九": 9}
ZH_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10**4, "亿": 10**8}
# Words with a number character that say no number ("查一下" = "look it up").
ZH_NOT_NUMBERS = ("一下", "一些", "一样", "一直", "一起", "一定", "一般", "一遍", "一会", "万一", "唯一", "统一",
                  "一共", "一点儿", "一点点", "早一点", "晚一点", "快一点", "慢一点", "多一点", "少一点")
ZH_NUM_CHARS = "0-9零〇一幺二两三四五六七八九十百千万亿"
_ZH_RUN = re.compile(rf"[{ZH_NUM_CHARS}]+(?:[-,，、][{ZH_NUM_CHARS}]+)*")   # "138-0013", "四八幺，五幺六"
_ZH_NUMBER = re.compile(rf"[{ZH_NUM_CHARS}]+(?:[.点][0-9零〇一幺二两三四五六七八九]+)?")


def zh_clean(text: str) -> str:
    """NFKC (full-width digits to ASCII), no spaces, words like 一下 that hide a 一 become a space."""
    text = "".join(unicodedata.normalize("NFKC", text).split())
    for word in ZH_NOT_NUMBERS:
        text = text.replace(word, " ")
    return text


def zh_digit(ch: str) -> int | None:
    return int(ch) if ch.isascii() and ch.isdigit() else ZH_DIGITS.get(ch)


def zh_int(text: str) -> int | None:
    """"一百零五" 105, "两千零二十六" 2026, "一百五" 150 (colloquial), "二零二六" 2026, "3万" 30000."""
    items = re.findall(r"\d+|.", text)
    if not items:
        return None
    if all(x.isdigit() or x in ZH_DIGITS for x in items):
        return int("".join(x if x.isdigit() else str(ZH_DIGITS[x]) for x in items))
    total = section = 0
    number: int | None = None
    prev_unit = 0            # the unit just before the pending digit (for "一百五" = 150)
    for x in items:
        if x.isdigit() or x in ZH_DIGITS:
            if number is not None:
                return None  # two digits in a row inside a unit number: "三百二五"
            number = int(x) if x.isdigit() else ZH_DIGITS[x]
            if number == 0:
                number, prev_unit = None, 0
        elif x in "十百千":
            if number is None and x != "十":
                return None
            section += (1 if number is None else number) * ZH_UNITS[x]
            number, prev_unit = None, ZH_UNITS[x]
        elif x in "万亿":
            section += number or 0
            if total + section == 0:
                return None
            total = (total + section) * ZH_UNITS[x] if x == "亿" else total + section * ZH_UNITS[x]
            section, number, prev_unit = 0, None, ZH_UNITS[x]
        else:
            return None
    if number is not None:
        section += number * max(1, prev_unit // 10)
    return total + section


def zh_value(text: str) -> Decimal | None:
    """A Mandarin or numeral quantity, with 点 or . as the decimal point: "三点五" 3.5."""
    whole, sep, frac = text.replace("点", ".").partition(".")
    integer = zh_int(whole) if whole else 0
    if integer is None:
        return None
    if not sep:
        return Decimal(integer)
    digits = "".join(str(zh_digit(c)) for c in frac if zh_digit(c) is not None)
    return Decimal(f"{integer}.{digits}") if digits and len(digits) == len(frac) else None


def zh_number_spans(text: str) -> list[tuple[Decimal, int, int]]:
    """Every quantity in cleaned Mandarin text as (value, start, end)."""
    found = ((zh_value(m.group()), m.start(), m.end()) for m in _ZH_NUMBER.finditer(text))
    return [(v, start, end) for v, start, end in found if v is not None]


def zh_digit_runs(text: str) -> list[tuple[int, str]]:
    """Digit strings in cleaned Mandarin text: "四八幺五一六" "481516", "四百八十一" "481"."""
    runs = []
    for m in _ZH_RUN.finditer(text):
        run = re.sub("[-,，、]", "", m.group())
        value = zh_int(run) if any(c in ZH_UNITS for c in run) else None   # 四百八十一: said as a number
        digits = str(value) if value is not None else "".join(str(zh_digit(c)) for c in run if c not in ZH_UNITS)
        runs.append((m.start(), digits))
    return [r for r in runs if r[1]]
