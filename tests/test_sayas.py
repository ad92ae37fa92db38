"""Prompt formatting of slot values (the template filters), English and Mandarin: table tests."""

import datetime as dt
from decimal import Decimal

import pytest

from ivr.flow.money import default_currency
from ivr.flow.sayas import mask, ordinal, say_date, say_digits, say_money, say_number, say_time, zh_number


@pytest.mark.parametrize(("value", "language", "want"), [
    ("481516", "en", "4 8 1 5 1 6"),
    ("481516", "en-US", "4 8 1 5 1 6"),
    ("481516", "zh", "四 八 幺 五 幺 六"),          # 1 as 幺 (yāo), the phone convention
    ("481516", "zh-CN", "四 八 幺 五 幺 六"),
    ("0", "en", "0"),
    ("0720", "zh", "零 七 二 零"),
    ("+8613800138000", "en", "plus 8 6 1 3 8 0 0 1 3 8 0 0 0"),
    ("+86138", "zh", "加 八 六 幺 三 八"),
    (481516, "en", "4 8 1 5 1 6"),
    (" 481516 ", "en", "4 8 1 5 1 6"),
])
def test_say_digits(value, language, want):
    assert say_digits(value, language) == want


def test_say_digits_in_groups():
    assert say_digits("481516", "en", 3) == "4 8 1, 5 1 6"
    assert say_digits("4155550100", "en", 4) == "4 1 5 5, 5 5 0 1, 0 0"
    assert say_digits("481516", "zh", 3) == "四 八 幺，五 幺 六"
    for bad in (-1, "3", 1.5, True):
        with pytest.raises(ValueError, match="say_digits"):
            say_digits("481516", "en", bad)


@pytest.mark.parametrize("value", ["", "48a1", "4 8 1", "12.5", "-5", "+", "４８１", None, 3.5, True, ["4"]])
def test_say_digits_rejects(value):
    with pytest.raises(ValueError, match="say_digits"):
        say_digits(value, "en")


@pytest.mark.parametrize(("value", "en", "zh"), [
    (0, "0", "零"),
    (5, "5", "五"),
    (10, "10", "十"),
    (12, "12", "十二"),
    (20, "20", "二十"),
    (21, "21", "二十一"),
    (100, "100", "一百"),
    (105, "105", "一百零五"),
    (110, "110", "一百一十"),
    (200, "200", "两百"),
    (1001, "1001", "一千零一"),
    (1010, "1010", "一千零一十"),
    (2026, "2026", "两千零二十六"),
    (10000, "10000", "一万"),
    (10005, "10005", "一万零五"),
    (12000, "12000", "一万两千"),
    (20000, "20000", "两万"),
    (100000, "100000", "十万"),
    (1000000, "1000000", "一百万"),
    (100000000, "100000000", "一亿"),
    (120000000, "120000000", "一亿两千万"),
    (100000005, "100000005", "一亿零五"),
    (3.5, "3.5", "三点五"),
    ("3.50", "3.5", "三点五"),
    (Decimal("0.25"), "0.25", "零点二五"),
    ("7", "7", "七"),
    (-5, "-5", "负五"),
    (12.0, "12", "十二"),
])
def test_say_number(value, en, zh):
    assert say_number(value, "en-US") == en
    assert say_number(value, "zh-CN") == zh


@pytest.mark.parametrize("value", ["", "abc", "1,000", None, True, [1], {"n": 1}, float("nan"), float("inf")])
def test_say_number_rejects(value):
    with pytest.raises(ValueError, match="say_number"):
        say_number(value, "en")


def test_zh_number_large():
    assert zh_number(1234567890123) == "一万两千三百四十五亿六千七百八十九万零一百二十三"


@pytest.mark.parametrize(("iso", "en", "zh"), [
    ("2026-11-03", "Tuesday, November 3rd", "11月3日星期二"),
    ("2026-01-01", "Thursday, January 1st", "1月1日星期四"),
    ("2026-03-22", "Sunday, March 22nd", "3月22日星期日"),
    ("2026-03-13", "Friday, March 13th", "3月13日星期五"),
    ("2026-05-11", "Monday, May 11th", "5月11日星期一"),
    ("2026-05-23", "Saturday, May 23rd", "5月23日星期六"),
    ("2028-02-29", "Tuesday, February 29th", "2月29日星期二"),
])
def test_say_date(iso, en, zh):
    assert say_date(iso, "en-US") == en
    assert say_date(iso, "zh-CN") == zh


def test_say_date_with_year_and_date_objects():
    assert say_date("2026-11-03", "en", with_year=True) == "Tuesday, November 3rd, 2026"
    assert say_date("2026-11-03", "zh", True) == "2026年11月3日星期二"
    assert say_date(dt.date(2026, 11, 3), "en") == "Tuesday, November 3rd"


@pytest.mark.parametrize("value", ["2026-02-30", "2026-13-01", "20261103", "11/3/2026", "2026-1-3", "", None, 20261103,
                                   "tomorrow"])
def test_say_date_rejects(value):
    with pytest.raises(ValueError, match="say_date"):
        say_date(value, "en")


@pytest.mark.parametrize(("n", "want"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"),
                                         (13, "13th"), (21, "21st"), (22, "22nd"), (23, "23rd"), (31, "31st")])
def test_ordinal(n, want):
    assert ordinal(n) == want


@pytest.mark.parametrize(("hhmm", "en", "zh"), [
    ("14:30", "2:30 PM", "下午2点30分"),
    ("14:00", "2 PM", "下午2点"),
    ("09:00", "9 AM", "上午9点"),
    ("9:05", "9:05 AM", "上午9点05分"),
    ("00:00", "midnight", "凌晨0点"),
    ("00:05", "12:05 AM", "凌晨0点05分"),
    ("12:00", "noon", "中午12点"),
    ("12:30", "12:30 PM", "中午12点30分"),
    ("13:05", "1:05 PM", "下午1点05分"),
    ("18:00", "6 PM", "晚上6点"),
    ("23:59", "11:59 PM", "晚上11点59分"),
    ("05:59", "5:59 AM", "凌晨5点59分"),
    ("06:00", "6 AM", "上午6点"),
])
def test_say_time(hhmm, en, zh):
    assert say_time(hhmm, "en-US") == en
    assert say_time(hhmm, "zh-CN") == zh


@pytest.mark.parametrize("value", ["24:00", "12:60", "1430", "2:30 PM", "", None, 1430, "ab:cd"])
def test_say_time_rejects(value):
    with pytest.raises(ValueError, match="say_time"):
        say_time(value, "en")


@pytest.mark.parametrize(("value", "language", "want"), [
    ({"amount": "12.50", "currency": "USD"}, "en", "12 dollars and 50 cents"),
    ({"amount": "1.01", "currency": "USD"}, "en", "1 dollar and 1 cent"),
    ({"amount": "0.50", "currency": "USD"}, "en", "50 cents"),
    ({"amount": "0.00", "currency": "USD"}, "en", "0 dollars"),
    ({"amount": "12.00", "currency": "EUR"}, "en", "12 euros"),
    ({"amount": "5.50", "currency": "GBP"}, "en", "5 pounds and 50 pence"),
    ({"amount": "0.01", "currency": "GBP"}, "en", "1 penny"),
    ({"amount": "12.50", "currency": "CNY"}, "en", "12 yuan and 50 fen"),
    ({"amount": "1000", "currency": "JPY"}, "en", "1000 yen"),
    ({"amount": "12.50", "currency": "XYZ"}, "en", "12.50 XYZ"),
    ({"amount": "12.50", "currency": "CNY"}, "zh", "12元5角"),
    ({"amount": "12.53", "currency": "CNY"}, "zh", "12元5角3分"),
    ({"amount": "12.05", "currency": "CNY"}, "zh", "12元零5分"),
    ({"amount": "12.00", "currency": "CNY"}, "zh", "12元"),
    ({"amount": "0.50", "currency": "CNY"}, "zh", "5角"),
    ({"amount": "0.05", "currency": "CNY"}, "zh", "5分"),
    ({"amount": "0", "currency": "CNY"}, "zh", "0元"),
    ({"amount": "12.50", "currency": "USD"}, "zh", "12美元50美分"),
    ({"amount": "100", "currency": "USD"}, "zh", "100美元"),
    ({"amount": "12.50"}, "en", "12 dollars and 50 cents"),     # no currency: the language's
    ({"amount": "12.50"}, "zh", "12元5角"),
    ("7.25", "en", "7 dollars and 25 cents"),
    ("7.25", "zh-CN", "7元2角5分"),
    (3, "en", "3 dollars"),
])
def test_say_money(value, language, want):
    assert say_money(value, language) == want


def test_say_money_currency_argument():
    assert say_money("12.50", "en", "EUR") == "12 euros and 50 cents"
    assert say_money({"amount": "12.50", "currency": "GBP"}, "en", "EUR") == "12 pounds and 50 pence"  # the value's
    assert say_money("12.50", "en-GB") == "12 pounds and 50 pence"


@pytest.mark.parametrize("value", [{"currency": "USD"}, {"amount": "abc"}, "-5", "", None, True, ["12"]])
def test_say_money_rejects(value):
    with pytest.raises(ValueError, match="say_money"):
        say_money(value, "en")


@pytest.mark.parametrize(("value", "keep", "want"), [
    ("4111111111111111", 4, "************1111"),
    ("4111111111111111", 0, "****************"),
    ("12345678", 4, "****5678"),
    ("1234567", 4, "*******"),           # fewer hidden than shown: all masked
    ("1234", 4, "****"),                 # a PIN is masked whole
    ("481516", 2, "****16"),
    ("", 4, ""),
    (4111111111111111, 4, "************1111"),
])
def test_mask(value, keep, want):
    assert mask(value, keep) == want


def test_mask_default_keeps_four():
    assert mask("4111111111111111") == "************1111"


@pytest.mark.parametrize(("value", "keep"), [("1234", -1), ("1234", "4"), (None, 4), (["1"], 4), ("1", True)])
def test_mask_rejects(value, keep):
    with pytest.raises(ValueError, match="mask"):
        mask(value, keep)


@pytest.mark.parametrize(("language", "want"), [
    ("en-US", "USD"), ("en", "USD"), ("en-GB", "GBP"), ("en-CA", "CAD"), ("en-AU", "AUD"), ("zh-CN", "CNY"),
    ("zh", "CNY"), ("zh-TW", "TWD"), ("zh-Hant-TW", "TWD"), ("zh-HK", "HKD"), ("cmn", "CNY"), ("ko-KR", "USD"),
])
def test_default_currency(language, want):
    assert default_currency(language) == want
