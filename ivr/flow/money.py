"""Amounts of money: how callers say them (English, Mandarin) and what each currency is called.

`parse_amount` finds the amount and the currency the caller named, if any:
- "$12.50", "twelve dollars fifty", "12 dollars and 5 cents", "fifty cents", "a hundred bucks";
- "twelve fifty" is 12.50: with no currency word, a second number of two digits is the cents;
- 十二块五 12.50 (a digit after 块 is 角), 十二元五角三分, 十二块零五分 12.05, 三毛五, 五分钱, ￥12.5, 一百美元.
"Dollars" and 块/元 mean the local kind (`currency_of`): the slot's currency, else the locale's
(en-US USD, en-CA CAD, zh-CN CNY, zh-TW TWD).
"""

import re
from dataclasses import dataclass
from decimal import Decimal

from ivr.flow.numbers import ZH_NUM_CHARS, en_tokens, number_spans, numbers_said, zh_clean, zh_int, zh_value
from ivr.lang import UnknownLanguage, parse_language

# code: (English unit singular/plural, minor unit singular/plural or None, Mandarin unit, Mandarin minor unit)
CURRENCIES: dict[str, tuple[tuple[str, str], tuple[str, str] | None, str, str | None]] = {
    "USD": (("dollar", "dollars"), ("cent", "cents"), "美元", "美分"),
    "CAD": (("Canadian dollar", "Canadian dollars"), ("cent", "cents"), "加元", "分"),
    "AUD": (("Australian dollar", "Australian dollars"), ("cent", "cents"), "澳元", "分"),
    "NZD": (("dollar", "dollars"), ("cent", "cents"), "新西兰元", "分"),
    "SGD": (("dollar", "dollars"), ("cent", "cents"), "新加坡元", "分"),
    "HKD": (("Hong Kong dollar", "Hong Kong dollars"), ("cent", "cents"), "港元", "仙"),
    "TWD": (("dollar", "dollars"), None, "新台币", None),
    "EUR": (("euro", "euros"), ("cent", "cents"), "欧元", "欧分"),
    "GBP": (("pound", "pounds"), ("penny", "pence"), "英镑", "便士"),
    "CNY": (("yuan", "yuan"), ("fen", "fen"), "元", "分"),
    "JPY": (("yen", "yen"), None, "日元", None),
    "INR": (("rupee", "rupees"), ("paisa", "paise"), "卢比", "派沙"),
}
REGION_CURRENCIES = {"US": "USD", "GB": "GBP", "UK": "GBP", "CA": "CAD", "AU": "AUD", "NZ": "NZD", "IE": "EUR",
                     "IN": "INR", "SG": "SGD", "HK": "HKD", "TW": "TWD", "CN": "CNY", "JP": "JPY"}


def default_currency(language: str) -> str:
    """The currency a caller means by "dollars" or 块 in this locale: en-GB -> GBP, zh-CN -> CNY, en -> USD."""
    try:
        lang = parse_language(language)
    except UnknownLanguage:
        return "USD"
    return REGION_CURRENCIES.get(lang.region) or ("CNY" if lang.base == "zh" else "USD")


@dataclass(frozen=True, slots=True)
class Amount:
    value: Decimal
    currency: str | None     # what the caller named: an ISO code, "$" or "¥" (the local kind), None


_EN_MONEY = {"$": "$", "dollar": "$", "dollars": "$", "buck": "$", "bucks": "$", "€": "EUR", "euro": "EUR",
             "euros": "EUR", "£": "GBP", "pound": "GBP", "pounds": "GBP", "quid": "GBP", "¥": "¥", "yuan": "CNY",
             "rmb": "CNY", "renminbi": "CNY", "kuai": "CNY", "yen": "JPY", "rupee": "INR", "rupees": "INR"}
_EN_MINOR = frozenset({"cent", "cents", "pence", "penny", "pennies"})
_ZH_MONEY = {"美元": "USD", "美金": "USD", "欧元": "EUR", "英镑": "GBP", "港币": "HKD", "港元": "HKD", "日元": "JPY",
             "人民币": "CNY", "块钱": "¥", "块": "¥", "元": "¥", "圆": "¥"}
_ZH_AMOUNT = rf"[{ZH_NUM_CHARS}.点]+"
_ZH_D = "[0-9零〇一二两三四五六七八九]"
_ZH_INT = "[0-9零〇一二两三四五六七八九十]+"
_ZH_MINOR = {"美分": "USD", "欧分": "EUR", "便士": "GBP", "分": None}   # the hundredth, by name
_DOLLARS = ("USD", "CAD", "AUD", "NZD", "SGD", "HKD", "TWD")
_SYMBOLS = ("$", "€", "£", "¥")


def currency_of(named: str | None, local: str) -> str:
    """The ISO code for what the caller named: "$" is the local dollar (else USD), "¥" the local yuan/yen."""
    if named == "$":
        return local if local in _DOLLARS else "USD"
    if named == "¥":
        return local if local in ("CNY", "JPY", "TWD", "HKD") else "CNY"
    return named or local


def parse_amount(text: str, lang: str) -> Amount | None:
    """The amount said and the currency named (None: not named), or None when no amount was said."""
    return _zh_money(text) if lang == "zh" else _en_money(text)


def _en_money(text: str) -> Amount | None:
    """"$12.50", "twelve dollars fifty", "12 dollars and 5 cents", "fifty cents", "twelve fifty"."""
    toks = en_tokens(text)
    spans = number_spans(toks)
    for k, (value, start, end) in enumerate(spans):
        before = toks[start - 1] if start else ""
        after = toks[end] if end < len(toks) else ""
        if before in _SYMBOLS or after in _EN_MONEY:
            stop = end + (after in _EN_MONEY)
            stop += toks[stop : stop + 1] == ["and"]
            nxt = spans[k + 1] if k + 1 < len(spans) else None
            if nxt and nxt[1] == stop and nxt[0] == int(nxt[0]) < 100 and value == int(value):
                value += nxt[0] / 100      # the cents
            return Amount(value, _EN_MONEY[before if before in _SYMBOLS else after])
        if after in _EN_MINOR:
            return Amount(value / 100, None)
    if len(spans) >= 2 and spans[-2][2] == spans[-1][1] and all(v == int(v) for v, _, _ in spans[-2:]) \
            and 10 <= spans[-1][0] <= 99:
        return Amount(spans[-2][0] + spans[-1][0] / 100, None)     # "twelve fifty"
    said = numbers_said(text, "en")
    return Amount(said[0], None) if said else None


def _zh_money(text: str) -> Amount | None:
    """"十二块五" 12.50, "十二元五角三分", "三毛五", "五分钱", "￥12.5", "一百美元"."""
    clean = zh_clean(text)
    if m := re.search(r"([$€£¥])(\d+(?:\.\d+)?)", clean):
        return Amount(Decimal(m[2]), _EN_MONEY[m[1]])
    if (m := re.search(rf"({_ZH_AMOUNT})({'|'.join(_ZH_MONEY)})钱?", clean)) and \
            (value := zh_value(m[1])) is not None:
        code = "CNY" if _ZH_MONEY[m[2]] == "¥" and "人民币" in clean else _ZH_MONEY[m[2]]
        return Amount(value + _zh_minor(clean[m.end():]), code)
    if m := re.search(rf"{_ZH_D}[角毛].*|{_ZH_INT}(?:{'|'.join(_ZH_MINOR)})", clean):
        return Amount(_zh_minor(m[0]), next((c for w, c in _ZH_MINOR.items() if m[0].endswith(w)), None))
    said = numbers_said(text, "zh")
    return Amount(said[0], None) if said else None


def _zh_minor(rest: str) -> Decimal:
    """The 角/分 after 块: "五" .5, "五毛三" .53, "零五分" .05, "50" .50, "50美分" .50."""
    if m := re.match(rf"({_ZH_INT})(?:{'|'.join(_ZH_MINOR)})", rest):
        return Decimal(zh_int(m[1]) or 0) / 100
    if m := re.match(rf"({_ZH_D})[角毛]?(?:({_ZH_D})分?)?", rest):
        return Decimal(zh_int(m[1]) or 0) / 10 + Decimal(zh_int(m[2] or "零") or 0) / 100
    return Decimal(0)
