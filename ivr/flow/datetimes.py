"""Dates and times as callers say them (English, Mandarin) or key them. Pure: `today` is passed in.

The rules, so flows and callers get what they expect:
- A date without a year is the next such date on or after today ("November 3rd", "11/3", 三月五号).
  "11/3" is month/day (US). A day alone ("the 3rd", 五号) is the next 3rd on or after today.
- English weekdays: "friday" and "next friday" are the next Friday strictly after today (who
  means today says "today"); "this friday" is on or after today; "last friday" before today.
- Mandarin weekdays follow the calendar week (Monday first): 周五/星期五 is the next Friday on
  or after today, 这周五/本周五 this week's, 下周五 next week's, 下下周五 the week after, 上周五 last week's.
- A time without am/pm (or 上午/下午...) keeps the hour as said: "half past two" is 02:30, "14:30"
  is 14:30. The flow knows whether a bare "two" means the afternoon for its business.
- A date or time that was said but cannot exist ("February 30th", "25:00") raises ValueError.
"""

import datetime as dt
import re

from ivr.flow.numbers import (
    NUMBER_WORDS,
    UNITS,
    ZERO_LETTERS,
    en_tokens,
    normalize,
    read_cardinal,
    read_ordinal,
    zh_clean,
    zh_int,
)

MONTHS = {"january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "april": 4, "apr": 4, "may": 5, "june": 6,
          "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9, "sep": 9, "sept": 9, "october": 10,
          "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12}
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
               "November", "December")
WEEKDAYS = {"monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6}
RELATIVE_DAYS = (("day after tomorrow", 2), ("day before yesterday", -2), ("tomorrow", 1), ("today", 0),
                 ("tonight", 0), ("yesterday", -1))
ZH_RELATIVE_DAYS = (("大后天", 3), ("后天", 2), ("明天", 1), ("明日", 1), ("今天", 0), ("今日", 0), ("今晚", 0),
                    ("大前天", -3), ("前天", -2), ("昨天", -1))
ZH_WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6}
PM_WORDS = frozenset({"pm", "afternoon", "evening", "tonight", "night"})
TIME_WORDS = NUMBER_WORDS | {"oclock"}      # what may come right before "am" ("I am free" is not a time)
ZH_PM = ("下午", "傍晚", "晚上", "今晚", "夜里", "夜间")
ZH_NIGHT = ("凌晨", "半夜", "夜里", "晚上")
_ZH_NUM = "[0-9零〇一二两三四五六七八九十]+"


def parse_date(text: str, lang: str, today: dt.date) -> dt.date | None:
    """The date said, or None when none was said; ValueError when it cannot exist."""
    return _zh_date(zh_clean(text), today) if lang == "zh" else _en_date(text, today)


def parse_time(text: str, lang: str) -> tuple[int, int] | None:
    """(hour, minute) said, or None; ValueError when it cannot exist."""
    got = _zh_time(zh_clean(text)) if lang == "zh" else _en_time(text)
    if got is not None and not (0 <= got[0] <= 23 and 0 <= got[1] <= 59):
        raise ValueError(f"{got[0]}:{got[1]:02d} is not a time of day")
    return got


def date_from_keys(keys: str, today: dt.date) -> dt.date | None:
    """YYYYMMDD, or MMDD (the next such date on or after today)."""
    if len(keys) not in (4, 8):
        return None
    return make_date(int(keys[:4]) if len(keys) == 8 else None, int(keys[-4:-2]), int(keys[-2:]), today)


def time_from_keys(keys: str) -> tuple[int, int] | None:
    """HHMM (or HMM), 24-hour."""
    if len(keys) not in (3, 4):
        return None
    got = divmod(int(keys), 100)
    if not (got[0] <= 23 and got[1] <= 59):
        raise ValueError(f"{keys} is not a 24-hour time")
    return got


def make_date(year: int | None, month: int, day: int, today: dt.date) -> dt.date:
    """The date, the year inferred as the next occurrence on or after today; ValueError if none exists."""
    if not (1 <= month <= 12 and 1 <= day <= 31):
        raise ValueError(f"month {month} day {day} is not a date")
    for y in [year] if year is not None else range(today.year, today.year + 9):   # Feb 29 may be years away
        try:
            d = dt.date(y, month, day)
        except ValueError:
            continue
        if year is not None or d >= today:
            return d
    raise ValueError(f"{MONTH_NAMES[month - 1]} {day}{'' if year is None else f', {year}'} does not exist")


def _next_day_of_month(day: int, today: dt.date) -> dt.date:
    if not 1 <= day <= 31:
        raise ValueError(f"{day} is not a day of the month")
    year, month = today.year, today.month
    for _ in range(12):
        try:
            d = dt.date(year, month, day)
            if d >= today:
                return d
        except ValueError:
            pass
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    raise ValueError(f"{day} is not a day of the month")


# -- English ------------------------------------------------------------------------------

def _en_date(text: str, today: dt.date) -> dt.date | None:
    norm = normalize(text)
    if m := re.search(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b", norm):
        return make_date(int(m[1]), int(m[2]), int(m[3]), today)
    if m := re.search(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?\b", norm):
        year = int(m[3]) + (2000 if len(m[3]) == 2 else 0) if m[3] else None
        return make_date(year, int(m[1]), int(m[2]), today)
    toks = en_tokens(text)
    for finder in (_month_date, _weekday, _relative, _day_only):
        if (d := finder(toks, today)) is not None:
            return d
    return None


def _read_day(toks: list[str], i: int) -> tuple[int, int] | None:
    if i >= len(toks):
        return None
    got = read_ordinal(toks, i)
    if got is None and (card := read_cardinal(toks, i)) is not None and card[0] == int(card[0]):
        got = int(card[0]), card[1]
    return got if got is not None and 1 <= got[0] <= 31 else None


def _read_year(toks: list[str], i: int) -> int | None:
    """"2026", "two thousand twenty six", "twenty twenty six"."""
    if i >= len(toks) or (got := read_cardinal(toks, i)) is None:
        return None
    value, j = int(got[0]), got[1]
    if 1900 <= value <= 2199:
        return value
    if 19 <= value <= 21 and j < len(toks) and (low := read_cardinal(toks, j)) is not None and low[0] < 100:
        return value * 100 + int(low[0])
    return None


def _month_date(toks: list[str], today: dt.date) -> dt.date | None:
    for m, tok in enumerate(toks):
        if tok not in MONTHS:
            continue
        end = m - (toks[m - 1 : m] == ["of"])                      # [the] 3rd [of] November [2026]
        for s in range(max(0, end - 2), end):
            if (got := _read_day(toks, s)) is not None and got[1] == end:
                return make_date(_read_year(toks, m + 1), MONTHS[tok], got[0], today)
        start = m + 1 + (toks[m + 1 : m + 2] == ["the"])
        if (got := _read_day(toks, start)) is not None:          # November [the] 3rd [2026]
            return make_date(_read_year(toks, got[1]), MONTHS[tok], got[0], today)
    return None


def _weekday(toks: list[str], today: dt.date) -> dt.date | None:
    for i, tok in enumerate(toks):
        if tok in WEEKDAYS:
            prev = toks[i - 1] if i else ""
            ahead = (WEEKDAYS[tok] - today.weekday()) % 7
            if prev == "this":
                return today + dt.timedelta(days=ahead)
            if prev == "last":
                return today - dt.timedelta(days=(today.weekday() - WEEKDAYS[tok]) % 7 or 7)
            return today + dt.timedelta(days=ahead or 7)
    return None


def _relative(toks: list[str], today: dt.date) -> dt.date | None:
    said = f" {' '.join(toks)} "
    for words, days in RELATIVE_DAYS:
        if f" {words} " in said:
            return today + dt.timedelta(days=days)
    for i, tok in enumerate(toks[:-2]):
        if tok == "in":   # "in three days", "in a week"
            got = (1, i + 2) if toks[i + 1] == "a" else read_cardinal(toks, i + 1)
            if got is not None and got[1] < len(toks) and toks[got[1]] in ("day", "days", "week", "weeks"):
                weeks = toks[got[1]].startswith("week")
                return today + dt.timedelta(days=int(got[0]) * (7 if weeks else 1))
    return None


def _day_only(toks: list[str], today: dt.date) -> dt.date | None:
    for i in range(len(toks)):
        if (got := read_ordinal(toks, i)) is not None and (toks[i][0].isdigit() or toks[i - 1 : i] == ["the"]):
            return _next_day_of_month(got[0], today)
    return None


def _en_time(text: str) -> tuple[int, int] | None:
    toks = en_tokens(text)
    if "midnight" in toks:
        return 0, 0
    if "noon" in toks or "midday" in toks:
        return 12, 0
    if m := re.search(r"\b(\d{1,2})[:.](\d{2})(?!\d)", normalize(text)):
        return _with_period(int(m[1]), int(m[2]), toks)
    if (got := _relative_time(toks)) is not None:
        return got
    said = [got for i in range(len(toks)) if (got := _clock_at(toks, i)) is not None]
    marked = [got for got in said if toks[got[2] : got[2] + 1] in (["am"], ["pm"], ["oclock"])]
    return _with_period(*(marked or said)[0][:2], toks) if said else None     # "3 tickets for 2 pm": 2


def _clock_at(toks: list[str], i: int) -> tuple[int, int, int] | None:
    """(hour, minute, index after) of a time said from toks[i]: "1430", "two thirty", "nine oh five", "9"."""
    if (card := read_cardinal(toks, i)) is None or card[0] != int(card[0]):
        return None
    value, j = int(card[0]), card[1]
    if 100 <= value <= 2359 and value % 100 < 60:       # "1430", "fourteen hundred", "230 pm"
        return *divmod(value, 100), j
    if value > 24:
        return None
    if toks[j : j + 1] and toks[j] in ZERO_LETTERS and toks[j + 1 : j + 2] and toks[j + 1] in UNITS:
        return value, UNITS[toks[j + 1]], j + 2               # "nine oh five"
    if j < len(toks) and (low := read_cardinal(toks, j)) is not None and low[0] == int(low[0]) < 60:
        return value, int(low[0]), low[1]
    return value, 0, j


def _relative_time(toks: list[str]) -> tuple[int, int] | None:
    """"half past two", "quarter to three", "ten past four", "twenty five minutes to six"."""
    for k in range(1, len(toks) - 1):
        if toks[k] not in ("past", "after", "to", "till", "til", "before", "of"):
            continue
        before = toks[k - 1]
        if before == "half" and toks[k] in ("past", "after"):
            minutes = 30
        elif before == "quarter":
            minutes = 15
        else:
            end = k - 1 if before in ("minutes", "minute") else k
            minutes = next((int(g[0]) for s in range(max(0, end - 2), end)
                            if (g := read_cardinal(toks, s)) is not None and g[1] == end), None)
            if minutes is None or not (minutes in (5, 10, 20, 25) or (end < k and 0 < minutes < 60)):
                continue
        hour = read_cardinal(toks, k + 1)
        if hour is None or not 0 <= hour[0] <= 23 or hour[0] != int(hour[0]):
            continue
        h = int(hour[0])
        if toks[k] in ("past", "after"):
            return _with_period(h, minutes, toks)
        return _with_period((h - 1) % 24, 60 - minutes, toks)     # "quarter to one" = 00:45, as said
    return None


def _with_period(hour: int, minute: int, toks: list[str]) -> tuple[int, int]:
    """Apply am/pm, "in the morning", "at night"; a bare "am" counts only right after the time."""
    am = "morning" in toks or any(t == "am" and i and (toks[i - 1][0].isdigit() or toks[i - 1] in TIME_WORDS)
                                  for i, t in enumerate(toks))
    pm = any(t in PM_WORDS for t in toks)
    if pm and hour < 12:
        hour += 12
    elif (am and hour == 12) or (hour == 12 and "night" in toks):
        hour = 0
    return hour, minute


# -- Mandarin -----------------------------------------------------------------------------

def _zh_num(text: str | None) -> int | None:
    return zh_int(text) if text else None


def _zh_date(text: str, today: dt.date) -> dt.date | None:
    if m := re.search(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})", text):
        return make_date(int(m[1]), int(m[2]), int(m[3]), today)
    if m := re.search(rf"(?:({_ZH_NUM})年)?({_ZH_NUM})月({_ZH_NUM})[日号]?", text):
        year, month, day = _zh_num(m[1]), _zh_num(m[2]), _zh_num(m[3])
        if month is not None and day is not None:
            return make_date(year + 2000 if year is not None and year < 100 else year, month, day, today)
    if m := re.search(r"(下下|下|这|本|上)?(?:周|星期|礼拜)([一二三四五六日天])", text):
        target = ZH_WEEKDAYS[m[2]]
        if m[1] is None:
            return today + dt.timedelta(days=(target - today.weekday()) % 7)
        weeks = {"下下": 2, "下": 1, "这": 0, "本": 0, "上": -1}[m[1]]
        monday = today - dt.timedelta(days=today.weekday())
        return monday + dt.timedelta(days=7 * weeks + target)
    for word, days in ZH_RELATIVE_DAYS:
        if word in text:
            return today + dt.timedelta(days=days)
    if (m := re.search(rf"({_ZH_NUM})天(?:后|以后|之后)", text)) and (n := zh_int(m[1])) is not None:
        return today + dt.timedelta(days=n)
    if (m := re.search(rf"({_ZH_NUM})[日号]", text)) and (day := zh_int(m[1])) is not None:
        return _next_day_of_month(day, today)
    return None


def _zh_time(text: str) -> tuple[int, int] | None:
    if m := re.search(r"(\d{1,2}):(\d{2})", text):
        hour, minute = int(m[1]), int(m[2])
    elif m := re.search(rf"差({_ZH_NUM})分?({_ZH_NUM})[点时]|({_ZH_NUM})[点时]差({_ZH_NUM})分?", text):
        before, at = (m[1], m[2]) if m[1] else (m[4], m[3])
        h, mins = zh_int(at), zh_int(before)
        if h is None or mins is None or not 0 < mins < 60:
            return None
        hour, minute = (h - 1) % 24, 60 - mins
    elif m := re.search(rf"({_ZH_NUM})[点时](?:钟)?(半|一刻|三刻|({_ZH_NUM})分?)?", text):
        hour = zh_int(m[1])
        if hour is None:
            return None
        extra = m[2] or ""
        minute = {"半": 30, "一刻": 15, "三刻": 45, "": 0}.get(extra)
        if minute is None:
            minute = zh_int(m[3])
            if minute is None:
                return None
    else:
        return None
    if hour < 12 and (any(w in text for w in ZH_PM) or ("中午" in text and hour < 6)):
        hour += 12
    if hour == 24 or (hour == 12 and any(w in text for w in ZH_NIGHT)):
        hour = 0      # 晚上十二点, 24点: midnight
    return hour, minute
