"""Typed slots from messy ASR text and keypad keys: table tests, English and Mandarin. Pure, no models.

TODAY is Wednesday 2026-03-04, so "friday" is 2026-03-06 and "november third" is this year's.
"""

import datetime as dt
import json

import pytest

from ivr.flow import numbers, sayas
from ivr.flow.slots import (
    SLOT_TYPES,
    SlotError,
    SlotSpec,
    SlotValue,
    check_spec,
    fills,
    hint_phrases,
    parse_keys,
    parse_speech,
)

TODAY = dt.date(2026, 3, 4)   # a Wednesday


def speech(kind: str, text: str, language: str = "en-US", today: dt.date = TODAY, **spec):
    got = parse_speech(SlotSpec("x", kind, **spec), text, language, today)
    if isinstance(got, SlotValue):
        assert got.source == "speech"
        json.dumps(got.value)           # every value is JSON-able
        return got.value
    assert isinstance(got, SlotError)
    return got.reason


def keys(kind: str, pressed: str, language: str = "en-US", **spec):
    got = parse_keys(SlotSpec("x", kind, **spec), pressed, language, TODAY)
    if isinstance(got, SlotValue):
        assert got.source == "keys"
        return got.value
    return got.reason


# -- digits -------------------------------------------------------------------------------

DIGITS_EN = [
    ("four eight one five one six", "481516"),
    ("481516", "481516"),
    ("481-516", "481516"),
    ("4 8 1 5 1 6.", "481516"),
    ("4, 8, 1, 5, 1, 6.", "481516"),
    ("It's 481516", "481516"),
    ("It's 481516.", "481516"),
    ("um it's 481516 thanks", "481516"),
    ("Um, it's four eight one five one six, thanks.", "481516"),
    ("my order number is four eight one five one six", "481516"),
    ("My order number is 481 516.", "481516"),
    ("4 eight 1 five 1 6", "481516"),
    ("FOUR EIGHT ONE FIVE ONE SIX", "481516"),
    ("４８１５１６", "481516"),                        # full-width, as some ASR writes it
    ("double seven", "77"),
    ("double 7", "77"),
    ("Double 739", "7739"),                           # whisper's way of writing "double seven three nine"
    ("triple five", "555"),
    ("four double one five triple six", "4115666"),
    ("oh four eight", "048"),
    ("zero zero seven", "007"),
    ("double oh seven", "007"),
    ("five oh one oh oh", "50100"),
    ("forty eight one", "481"),                       # tens words read as two digits: "forty eight" = 48
    ("forty eight fifteen sixteen", "481516"),
    ("twenty", "20"),
    ("nineteen eighty four", "1984"),
    ("one hundred and five", "105"),
    ("a hundred", "100"),
    ("eight hundred", "800"),
    ("one eight hundred five five five one two one two", "18005551212"),
    ("seven niner", "79"),
    ("4th", "4"),
    # homophones: only next to spelled digits, never eaten out of ordinary words
    ("I want to track order four eight one", "481"),
    ("for eight one five one six", "481516"),
    ("four eight one to five", "48125"),
    ("one to three", "123"),
    ("I'd like to check on four eight one", "481"),
    ("481516 for 2 items", "2"),                      # no length: the last digit string
    ("oh it's four eight one", "481"),                # "oh" the interjection
    ("Oh, 481.", "481"),
    ("four eight one, no sorry, four eight two", "482"),
]


@pytest.mark.parametrize(("text", "want"), DIGITS_EN)
def test_digits_english(text, want):
    assert speech("digits", text) == want


DIGITS_ZH = [
    ("四八一五一六", "481516"),
    ("四 八 一 五 一 六", "481516"),
    ("幺三八", "138"),
    ("两两零", "220"),
    ("〇一二", "012"),
    ("零一二", "012"),
    ("４８１", "481"),
    ("481516", "481516"),
    ("我的订单号是四八一五一六", "481516"),
    ("我想查一下订单四八一五一六", "481516"),      # 一下 is no digit
    ("订单号481516谢谢", "481516"),
    ("四百八十一", "481"),
    ("嗯四八一", "481"),
]


@pytest.mark.parametrize(("text", "want"), DIGITS_ZH)
def test_digits_mandarin(text, want):
    assert speech("digits", text, "zh-CN") == want


@pytest.mark.parametrize(("text", "language"), [
    ("no", "en-US"), ("yes", "en-US"), ("hello", "en-US"), ("I want to track my order", "en-US"),
    ("for", "en-US"), ("to", "en-US"), ("oh", "en-US"), ("oh no", "en-US"), ("I'm going to", "en-US"),
    ("double", "en-US"), ("", "en-US"), ("   ", "en-US"), ("...", "en-US"),
    ("不是", "zh-CN"), ("你好", "zh-CN"), ("查一下", "zh-CN"), ("一下", "zh-CN"),
])
def test_digits_no_value(text, language):
    assert speech("digits", text, language) == "no_value"


@pytest.mark.parametrize(("text", "spec", "want"), [
    ("four eight one", {"length": 6}, "too_short"),
    ("four eight one five one six seven", {"length": 6}, "too_long"),
    ("four eight one five one six", {"length": 6}, "481516"),
    ("four eight one", {"min_length": 4}, "too_short"),
    ("four eight one five", {"min_length": 4, "max_length": 6}, "4815"),
    ("1234567", {"max_length": 6}, "too_long"),
    # several candidates: the one that fits the length wins
    ("481516 for 2 items", {"length": 6}, "481516"),
    ("Oh, 481.", {"length": 3}, "481"),
    ("oh four eight one", {"length": 3}, "481"),
    ("oh four eight one", {"length": 4}, "0481"),
    ("for eight one five one", {"length": 5}, "48151"),
    ("order for eight one five", {"length": 3}, "815"),
    ("it's four eight one and then five one six", {"length": 6}, "too_short"),
    ("my number is four eight one five one six and the other is 12", {"length": 6}, "481516"),
    # whisper sometimes says it twice
    ("four eight one five one six four eight one five one six", {"length": 6}, "481516"),
    ("four eight one five one six four eight one five one six", {}, "481516481516"),
])
def test_digits_length(text, spec, want):
    assert speech("digits", text, **spec) == want


# -- number -------------------------------------------------------------------------------

NUMBERS = [
    ("twenty one", "en-US", 21),
    ("twenty-one", "en-US", 21),
    ("one hundred and five", "en-US", 105),
    ("one hundred five", "en-US", 105),
    ("two thousand twenty six", "en-US", 2026),
    ("two thousand and twenty six", "en-US", 2026),
    ("twenty twenty six", "en-US", 2026),
    ("three point five", "en-US", 3.5),
    ("three point one four", "en-US", 3.14),
    ("point five", "en-US", 0.5),
    ("two and a half", "en-US", 2.5),
    ("a hundred", "en-US", 100),
    ("a thousand", "en-US", 1000),
    ("twelve hundred", "en-US", 1200),
    ("five hundred thousand", "en-US", 500000),
    ("two million", "en-US", 2000000),
    ("1,000", "en-US", 1000),
    ("3.5", "en-US", 3.5),
    ("42", "en-US", 42),
    ("zero", "en-US", 0),
    ("I need two tickets", "en-US", 2),
    ("for two people", "en-US", 2),
    ("um, 7 please", "en-US", 7),
    ("one two three", "en-US", 123),
    ("5 hundred", "en-US", 500),
    ("一百零五", "zh-CN", 105),
    ("二十一", "zh-CN", 21),
    ("十二", "zh-CN", 12),
    ("十", "zh-CN", 10),
    ("三点五", "zh-CN", 3.5),
    ("零点五", "zh-CN", 0.5),
    ("两千零二十六", "zh-CN", 2026),
    ("一万", "zh-CN", 10000),
    ("一万五", "zh-CN", 15000),
    ("一百五", "zh-CN", 150),
    ("两千五", "zh-CN", 2500),
    ("一千零五十", "zh-CN", 1050),
    ("一亿两千万", "zh-CN", 120000000),
    ("两张", "zh-CN", 2),
    ("我要三个", "zh-CN", 3),
    ("３", "zh-CN", 3),
    ("12.5", "zh-CN", 12.5),
]


@pytest.mark.parametrize(("text", "language", "want"), NUMBERS)
def test_number(text, language, want):
    got = speech("number", text, language)
    assert got == want and type(got) is type(want)


@pytest.mark.parametrize(("text", "language"), [
    ("nothing", "en-US"), ("none", "en-US"), ("for", "en-US"), ("oh", "en-US"), ("hundred", "en-US"),
    ("不知道", "zh-CN"), ("你好", "zh-CN"),
])
def test_number_no_value(text, language):
    assert speech("number", text, language) == "no_value"


@pytest.mark.parametrize(("text", "want"), [
    ("five", 5), ("ten", 10), ("one", 1), ("eleven", "out_of_range"), ("zero", "out_of_range"),
    ("two or maybe twenty", 2),      # the last one in range
])
def test_number_range(text, want):
    assert speech("number", text, min=1, max=10) == want


# -- yes / no -----------------------------------------------------------------------------

YES_NO_EN = [
    *[(t, True) for t in ("yes", "Yes.", "yeah", "yep", "yup", "correct", "right", "that's right", "That’s right.",
                          "sure", "affirmative", "yes it is", "yes please", "okay", "absolutely", "of course",
                          "uh-huh", "all right", "yes that's correct", "no problem", "I think so")],
    *[(t, False) for t in ("no", "No.", "nope", "nah", "wrong", "incorrect", "no it's not", "that's not right",
                           "not correct", "it isn't", "no that's wrong", "I don't think so", "uh-uh", "negative",
                           "yes... no, not correct", "that is not correct")],
    *[(t, "no_value") for t in ("maybe", "I'm not sure", "I don't know", "hello", "four eight one", "what",
                                "agent please", "", "i'm not really sure", "not a clue", "hard to say")],
    *[(t, True) for t in ("aye", "spot on", "that's the one", "you got it", "yeh please", "no problem no problem")],
    *[(t, True) for t in ("definitely that one no doubt", "no doubt about it", "without a doubt")],   # no doubt: a yes
    # "not sure" by its sound, as a recognizer writes it; "no it isn't" is no "no idea" (N IT)
    *[(t, "no_value") for t in ("i'm knot sure to be honest", "i cannot remember", "i'm nut certain")],
    ("no it isn't", False),
    # a short hedged answer is unsure; a longer sentence keeps its answer
    *[(t, "no_value") for t in ("kind of but not really", "well sort of", "yeah kinda", "more or less")],
    ("yes please it's kind of urgent", True), ("no not really kind of the opposite", False),
    ("yes that kind of thing", True), ("yes it's that sort of", True),     # a noun's "kind of" hedges nothing
]


@pytest.mark.parametrize(("text", "want"), YES_NO_EN)
def test_yes_no_english(text, want):
    assert speech("yes_no", text) == want


YES_NO_ZH = [
    *[(t, True) for t in ("是", "是的", "对", "对的", "好", "好的", "没错", "正确", "嗯呐", "可以", "对，没错", "行",
                          "是啊是啊没毛病", "对这是我的")],
    *[(t, False) for t in ("不是", "不对", "错", "错了", "不", "不要", "不是的", "没有", "嗯不对", "这不是我的")],
    *[(t, "no_value") for t in ("不知道", "不确定", "你好", "查订单", "你们这是哪家公司", "是不是查订单")],
    ("yes", True),     # English words in a Mandarin call still count
    # whole short answers by sound: homophones a recognizer writes, dialects (Cantonese, Wu, Sichuan, Henan)
    *[(t, True) for t in ("事的", "四的四的", "队的", "系啊", "系呀 就系呢个", "中", "要得", "对头对头莫得错",
                          "就是这个", "要的", "我要", "对 对 对 是的 信号不好 对的", "嗯 是的",
                          "对对对就是这个莫错", "是嘅就是这个冇错", "没有错", "中中中就办这个")],   # 莫 冇: 没; 嘅: 的
    # one yes, then a negation, is a no (the words decide)
    *[(t, False) for t in ("部队", "步对", "布是", "唔系", "冇", "勿是个", "木有", "嗯 不对", "对 不是这个",
                           "不是 我要查余额", "是的 我不要了", "行 别发了", "是 我没收到",
                           "哪是这个", "这哪里是我要的", "不办这个")],      # a rhetorical 哪(里)是: not so
    # 不 in a verb's potential complement (睡不着, 收不到, 打不通) tells what happened: not a negation of the answer
    *[(t, True) for t in ("对 我这边收不到短信", "嗯 就是这个意思我半夜睡不着", "可以 就是一直打不通")],
    *[(t, False) for t in ("我不上班", "对 还不到")],     # after a pronoun or an adverb 不 still negates
    # a 要 in a request, 好 meaning "very", 我是想 ..., thinking it over: neither
    *[(t, "no_value") for t in ("我要查余额", "我需要人工", "今天好热啊", "我是想查个话费的", "我再想想", "等一下",
                                "这个不好说", "让我想一想", "我要，查余额", "四四四四", "死", "美", "找不到",
                                "不一定", "这个嘛 我也说不上来", "嗯 这个嘛", "呃 那个 怎么说呢", "还行吧", "还好",
                                "周末天气咋样你知道不")],    # a clause-final 不 that asks: no negation
    *[(t, True) for t in ("嗯 是的", "嗯对", "是的 还有个事")],
    # a hum alone answers nothing: callers hum to think as often as to agree, and a recognizer writes one for a breath
    *[(t, "no_value") for t in ("嗯", "嗯嗯", "恩", "嗯 呃", "嗯嗯嗯")],
    # "I don't know" by its sound, as a recognizer writes it (不指导: 不知道); 那不准 "that's not right" stays a no
    *[(t, "no_value") for t in ("这个嘛我也不指导", "说不谆", "我也布清楚")],
    ("那不准", False),
    # hedges ("more or less", "seems so", "probably"): unsure; 差不多's 不 negates nothing; a clause that answers, or
    # another negation, still decides
    *[(t, "no_value") for t in ("差不多吧", "差不多吧 好像是", "好像是", "大概吧", "估计是吧", "好像是又好像不是",
                                "嗯嗯那个我想一下")],
    *[(t, True) for t in ("对 差不多一个星期了", "对的 大概三天前买的", "好像是吧 对")],
    *[(t, False) for t in ("好像不是", "大概不是", "不是 差不多吧")],
    # a sentence that ends asking with 吗 answers nothing, unless a clause before it answers
    *[(t, "no_value") for t in ("我从头再来一遍可以吗", "可以吗", "对吗", "是吗", "我想换个套餐行吗", "对吗？", "是吗?",
                                "嗯 对吗", "嗯 可以吗")],
    ("好的 可以吗", True),
    # a hum before a hedge answers nothing; 想一下子 is "at once", not "let me think"
    *[(t, "no_value") for t in ("嗯 差不多吧", "嗯，好像是吧", "嗯 好像是")],
    ("我想一下子全办了 对", True),
]


@pytest.mark.parametrize(("text", "want"), YES_NO_ZH)
def test_yes_no_mandarin(text, want):
    assert speech("yes_no", text, "zh-CN") == want


# -- date ---------------------------------------------------------------------------------

DATES_EN = [
    ("today", "2026-03-04"),
    ("tomorrow", "2026-03-05"),
    ("the day after tomorrow", "2026-03-06"),
    ("yesterday", "2026-03-03"),
    ("friday", "2026-03-06"),
    ("monday", "2026-03-09"),
    ("wednesday", "2026-03-11"),               # a weekday alone is strictly after today
    ("this wednesday", "2026-03-04"),
    ("next friday", "2026-03-06"),
    ("next wednesday", "2026-03-11"),
    ("last monday", "2026-03-02"),
    ("on Friday please", "2026-03-06"),
    ("november third", "2026-11-03"),
    ("November 3rd", "2026-11-03"),
    ("november 3", "2026-11-03"),
    ("3rd of november", "2026-11-03"),
    ("the third of November", "2026-11-03"),
    ("3 November", "2026-11-03"),
    ("november the third", "2026-11-03"),
    ("Nov 3", "2026-11-03"),
    ("November twenty-first", "2026-11-21"),
    ("november twenty first", "2026-11-21"),
    ("November 3rd, 2027", "2027-11-03"),
    ("november third twenty twenty seven", "2027-11-03"),
    ("the twenty first of december two thousand twenty seven", "2027-12-21"),
    ("march first", "2027-03-01"),               # passed this year: next year's
    ("march fourth", "2026-03-04"),              # today counts
    ("may fifth", "2026-05-05"),
    ("11/3", "2026-11-03"),                      # US month/day
    ("11/3/2027", "2027-11-03"),
    ("11/3/27", "2027-11-03"),
    ("2026-11-03", "2026-11-03"),
    ("It's on 2026-11-03.", "2026-11-03"),
    ("the 3rd", "2026-04-03"),
    ("the twentieth", "2026-03-20"),
    ("in three days", "2026-03-07"),
    ("in a week", "2026-03-11"),
    ("in two weeks", "2026-03-18"),
]


@pytest.mark.parametrize(("text", "want"), DATES_EN)
def test_date_english(text, want):
    assert speech("date", text) == want


DATES_ZH = [
    ("今天", "2026-03-04"),
    ("明天", "2026-03-05"),
    ("后天", "2026-03-06"),
    ("大后天", "2026-03-07"),
    ("昨天", "2026-03-03"),
    ("下周一", "2026-03-09"),
    ("下星期一", "2026-03-09"),
    ("下礼拜一", "2026-03-09"),
    ("下周五", "2026-03-13"),                     # next calendar week's Friday
    ("周五", "2026-03-06"),
    ("星期五", "2026-03-06"),
    ("星期三", "2026-03-04"),                     # on or after today
    ("星期天", "2026-03-08"),
    ("周日", "2026-03-08"),
    ("这周一", "2026-03-02"),                     # this calendar week's, even if past
    ("本周五", "2026-03-06"),
    ("下下周三", "2026-03-18"),
    ("上周五", "2026-02-27"),
    ("三月五号", "2026-03-05"),
    ("3月5日", "2026-03-05"),
    ("３月５日", "2026-03-05"),
    ("2026年3月5日", "2026-03-05"),
    ("二零二七年一月一日", "2027-01-01"),
    ("27年1月1日", "2027-01-01"),
    ("十一月三号", "2026-11-03"),
    ("三月一号", "2027-03-01"),
    ("十二月三十一日", "2026-12-31"),
    ("五号", "2026-03-05"),
    ("三号", "2026-04-03"),
    ("三天后", "2026-03-07"),
    ("我想改到下周一", "2026-03-09"),
    ("2026-11-03", "2026-11-03"),
]


@pytest.mark.parametrize(("text", "want"), DATES_ZH)
def test_date_mandarin(text, want):
    assert speech("date", text, "zh-CN") == want


@pytest.mark.parametrize(("text", "language", "want"), [
    ("february thirtieth", "en-US", "invalid"),
    ("2026-02-30", "en-US", "invalid"),
    ("13/45", "en-US", "invalid"),
    ("april thirty first", "en-US", "invalid"),
    ("二月三十号", "zh-CN", "invalid"),
    ("十三月一号", "zh-CN", "invalid"),
    ("nothing", "en-US", "no_value"),
    ("I may call later", "en-US", "no_value"),    # "may" is a month only next to a day
    ("你好", "zh-CN", "no_value"),
    ("four eight one", "en-US", "no_value"),
])
def test_date_errors(text, language, want):
    assert speech("date", text, language) == want


def test_date_year_rolls_over_and_leap_day():
    new_years_eve = dt.date(2026, 12, 30)
    assert speech("date", "january fifth", today=new_years_eve) == "2027-01-05"
    assert speech("date", "一月五号", "zh-CN", today=new_years_eve) == "2027-01-05"
    assert speech("date", "tomorrow", today=new_years_eve) == "2026-12-31"
    assert speech("date", "the 2nd", today=new_years_eve) == "2027-01-02"
    assert speech("date", "february twenty ninth") == "2028-02-29"     # the next Feb 29 that exists


# -- time ---------------------------------------------------------------------------------

TIMES_EN = [
    ("two thirty pm", "14:30"),
    ("2:30 p.m.", "14:30"),
    ("2:30 PM", "14:30"),
    ("2.30pm", "14:30"),
    ("2pm", "14:00"),
    ("2 p.m.", "14:00"),
    ("14:30", "14:30"),
    ("half past two", "02:30"),                  # no am/pm: the hour as said
    ("half past two in the afternoon", "14:30"),
    ("quarter past nine", "09:15"),
    ("quarter to three", "02:45"),
    ("a quarter to three pm", "14:45"),
    ("ten past four", "04:10"),
    ("twenty five minutes to six", "05:35"),
    ("noon", "12:00"),
    ("twelve noon", "12:00"),
    ("midnight", "00:00"),
    ("nine o'clock in the morning", "09:00"),
    ("9 in the morning", "09:00"),
    ("nine in the evening", "21:00"),
    ("eleven at night", "23:00"),
    ("twelve at night", "00:00"),
    ("seven thirty tonight", "19:30"),
    ("3 in the afternoon", "15:00"),
    ("nine oh five", "09:05"),
    ("two fifteen", "02:15"),
    ("twelve thirty am", "00:30"),
    ("12:30 a.m.", "00:30"),
    ("fourteen hundred", "14:00"),
    ("at 2", "02:00"),
    ("I am free at two", "02:00"),               # "am" only counts right after a time
    ("um, around 3 pm", "15:00"),
    ("I need 3 tickets for 2 pm", "14:00"),       # the number marked as a time wins
    ("around 5 o'clock", "05:00"),
    ("2 30", "02:30"),
]


@pytest.mark.parametrize(("text", "want"), TIMES_EN)
def test_time_english(text, want):
    assert speech("time", text) == want


TIMES_ZH = [
    ("下午两点半", "14:30"),
    ("三点十五分", "03:15"),
    ("三点十五", "03:15"),
    ("上午九点", "09:00"),
    ("早上八点半", "08:30"),
    ("晚上八点", "20:00"),
    ("中午十二点", "12:00"),
    ("中午一点", "13:00"),
    ("凌晨两点", "02:00"),
    ("晚上十二点", "00:00"),
    ("夜里十一点", "23:00"),
    ("14:30", "14:30"),
    ("１４：３０", "14:30"),
    ("十四点三十分", "14:30"),
    ("14点30分", "14:30"),
    ("两点零五分", "02:05"),
    ("三点一刻", "03:15"),
    ("三点三刻", "03:45"),
    ("差五分三点", "02:55"),
    ("三点差五分", "02:55"),
    ("8点钟", "08:00"),
    ("明天下午三点", "15:00"),
]


@pytest.mark.parametrize(("text", "want"), TIMES_ZH)
def test_time_mandarin(text, want):
    assert speech("time", text, "zh-CN") == want


@pytest.mark.parametrize(("text", "language", "want"), [
    ("25:00", "en-US", "invalid"),
    ("14:75", "en-US", "invalid"),
    ("二十五点", "zh-CN", "invalid"),
    ("whenever", "en-US", "no_value"),
    ("随便", "zh-CN", "no_value"),
    ("晚一点吧", "zh-CN", "no_value"),           # "a bit later": 一点 is no one o'clock here
])
def test_time_errors(text, language, want):
    assert speech("time", text, language) == want


# -- money --------------------------------------------------------------------------------

def usd(amount: str) -> dict:
    return {"amount": amount, "currency": "USD"}


def cny(amount: str) -> dict:
    return {"amount": amount, "currency": "CNY"}


MONEY = [
    ("$12.50", "en-US", usd("12.50")),
    ("$12", "en-US", usd("12.00")),
    ("$1,000", "en-US", usd("1000.00")),
    ("12.50 dollars", "en-US", usd("12.50")),
    ("twelve dollars fifty", "en-US", usd("12.50")),
    ("twelve dollars and fifty cents", "en-US", usd("12.50")),
    ("12 dollars and 5 cents", "en-US", usd("12.05")),
    ("twelve fifty", "en-US", usd("12.50")),      # a second two-digit number is the cents
    ("twelve", "en-US", usd("12.00")),
    ("12.5", "en-US", usd("12.50")),
    ("a hundred bucks", "en-US", usd("100.00")),
    ("one hundred and twenty dollars", "en-US", usd("120.00")),
    ("fifty cents", "en-US", usd("0.50")),
    ("it's about $30, I think", "en-US", usd("30.00")),
    ("twenty euros", "en-US", {"amount": "20.00", "currency": "EUR"}),
    ("€20", "en-US", {"amount": "20.00", "currency": "EUR"}),
    ("five pounds fifty", "en-GB", {"amount": "5.50", "currency": "GBP"}),
    ("ten dollars", "en-CA", {"amount": "10.00", "currency": "CAD"}),   # the locale's dollars
    ("十二块五", "zh-CN", cny("12.50")),
    ("十二元五角", "zh-CN", cny("12.50")),
    ("十二块五毛", "zh-CN", cny("12.50")),
    ("十二块五毛三", "zh-CN", cny("12.53")),
    ("十二元五角三分", "zh-CN", cny("12.53")),
    ("十二块零五分", "zh-CN", cny("12.05")),
    ("十二块钱", "zh-CN", cny("12.00")),
    ("一百块", "zh-CN", cny("100.00")),
    ("两块钱", "zh-CN", cny("2.00")),
    ("12块50", "zh-CN", cny("12.50")),
    ("12.5元", "zh-CN", cny("12.50")),
    ("￥12.5", "zh-CN", cny("12.50")),
    ("¥12.5", "zh-CN", cny("12.50")),
    ("人民币一百元", "zh-CN", cny("100.00")),
    ("三毛五", "zh-CN", cny("0.35")),
    ("五毛", "zh-CN", cny("0.50")),
    ("五分钱", "zh-CN", cny("0.05")),
    ("十二点五", "zh-CN", cny("12.50")),
    ("一百美元", "zh-CN", usd("100.00")),
    ("一百块", "zh-TW", {"amount": "100.00", "currency": "TWD"}),
]


@pytest.mark.parametrize(("text", "language", "want"), MONEY)
def test_money(text, language, want):
    assert speech("money", text, language) == want


@pytest.mark.parametrize(("text", "language", "spec", "want"), [
    ("twenty euros", "en-US", {"currency": "USD"}, "wrong_currency"),
    ("一百美元", "zh-CN", {"currency": "CNY"}, "wrong_currency"),
    ("twenty dollars", "en-US", {"currency": "CAD"}, {"amount": "20.00", "currency": "CAD"}),
    ("一百块", "zh-CN", {"currency": "CNY"}, cny("100.00")),
    ("twelve", "en-US", {"currency": "EUR"}, {"amount": "12.00", "currency": "EUR"}),
    ("$500", "en-US", {"max": 100}, "out_of_range"),
    ("$5", "en-US", {"min": 10, "max": 100}, "out_of_range"),
    ("$50", "en-US", {"min": 10, "max": 100}, usd("50.00")),
    ("nothing at all", "en-US", {}, "no_value"),
    ("不知道", "zh-CN", {}, "no_value"),
])
def test_money_rules(text, language, spec, want):
    assert speech("money", text, language, **spec) == want


# -- phone and text -----------------------------------------------------------------------

PHONES = [
    ("+86 138 0013 8000", "en-US", "+8613800138000"),
    ("(415) 555-0100", "en-US", "4155550100"),
    ("415-555-0100", "en-US", "4155550100"),
    ("four one five five five five oh one oh oh", "en-US", "4155550100"),
    ("four one five, five five five, zero one hundred", "en-US", "4155550100"),
    ("plus eighty six one three eight oh oh one three eight oh oh oh", "en-US", "+8613800138000"),
    ("my number is 415 555 0100 thanks", "en-US", "4155550100"),
    ("one eight hundred five five five one two one two", "en-US", "18005551212"),
    ("nine one one", "en-US", "911"),
    ("幺三八零零幺三八零零零", "zh-CN", "13800138000"),
    ("我的电话是13800138000", "zh-CN", "13800138000"),
    ("+86 138 0013 8000", "zh-CN", "+8613800138000"),
    ("加八六幺三八零零幺三八零零零", "zh-CN", "+8613800138000"),
    ("12", "en-US", "too_short"),
    ("1234567890123456", "en-US", "too_long"),
    ("call me back", "en-US", "no_value"),
]


@pytest.mark.parametrize(("text", "language", "want"), PHONES)
def test_phone(text, language, want):
    assert speech("phone", text, language) == want


def test_phone_length_bounds():
    assert speech("phone", "four one five five five five oh one oh oh", min_length=11) == "too_short"
    assert speech("phone", "five five five oh one oh oh", max_length=7) == "5550100"


@pytest.mark.parametrize(("text", "want"), [
    ("  hello   world ", "hello world"), ("我要投诉", "我要投诉"), ("", "no_value"), ("  \n ", "no_value"),
])
def test_text(text, want):
    assert speech("text", text) == want


def test_value_records_what_was_heard():
    got = parse_speech(SlotSpec("order", "digits", length=6), " It's 481516 ", "en-US", TODAY)
    assert got == SlotValue("481516", "speech", "It's 481516")


# -- keys ---------------------------------------------------------------------------------

KEYS = [
    ("digits", "481516", {"length": 6}, "481516"),
    ("digits", "481516#", {"length": 6}, "481516"),
    ("digits", "4815", {"length": 6}, "too_short"),
    ("digits", "4815169", {"length": 6}, "too_long"),
    ("digits", "48*516", {}, "invalid"),
    ("digits", "#", {}, "no_value"),
    ("digits", "", {}, "no_value"),
    ("yes_no", "1", {}, True),
    ("yes_no", "2", {}, False),
    ("yes_no", "3", {}, "invalid"),
    ("yes_no", "12", {}, "invalid"),
    ("number", "12*50", {}, 12.5),
    ("number", "12", {}, 12),
    ("number", "*5", {}, 0.5),
    ("number", "12*", {}, 12),
    ("number", "1*2*3", {}, "invalid"),
    ("number", "*", {}, "invalid"),
    ("number", "11", {"max": 10}, "out_of_range"),
    ("money", "12*50", {}, usd("12.50")),
    ("money", "12*5", {}, usd("12.50")),
    ("money", "1250", {}, usd("1250.00")),
    ("money", "12*5", {"currency": "CNY"}, cny("12.50")),
    ("money", "1*234", {}, usd("1.23")),
    ("date", "20261103", {}, "2026-11-03"),
    ("date", "1103", {}, "2026-11-03"),
    ("date", "0301", {}, "2027-03-01"),
    ("date", "0230", {}, "invalid"),
    ("date", "123", {}, "invalid"),
    ("date", "2026*11", {}, "invalid"),
    ("time", "1430", {}, "14:30"),
    ("time", "0930", {}, "09:30"),
    ("time", "930", {}, "09:30"),
    ("time", "2460", {}, "invalid"),
    ("time", "12", {}, "invalid"),
    ("phone", "4155550100", {}, "4155550100"),
    ("phone", "12", {}, "too_short"),
    ("text", "123#", {}, "123"),
]


@pytest.mark.parametrize(("kind", "pressed", "spec", "want"), KEYS)
def test_keys(kind, pressed, spec, want):
    assert keys(kind, pressed, **spec) == want


def test_keys_mandarin_currency_default():
    assert keys("money", "12*5", "zh-CN") == cny("12.50")


# -- what prompts say reads back as the same value ------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 2, 7, 10, 11, 20, 21, 99, 100, 101, 105, 110, 111, 200, 999, 1000, 1001, 1010,
                               1100, 2026, 9999, 10000, 10001, 10100, 12000, 20000, 99999, 100000, 1234567])
def test_say_number_reads_back_in_mandarin(n):
    assert speech("number", sayas.say_number(n, "zh"), "zh-CN") == n


@pytest.mark.parametrize("value", ["481516", "0123456789", "111", "7"])
@pytest.mark.parametrize("language", ["en-US", "zh-CN"])
def test_say_digits_reads_back(value, language):
    assert speech("digits", sayas.say_digits(value, language), language) == value
    assert speech("digits", sayas.say_digits(value, language, 3), language) == value


@pytest.mark.parametrize("iso", ["2026-11-03", "2026-03-04", "2027-01-01", "2026-12-31"])
@pytest.mark.parametrize("language", ["en-US", "zh-CN"])
def test_say_date_reads_back(iso, language):
    assert speech("date", sayas.say_date(iso, language, with_year=True), language) == iso
    assert speech("date", sayas.say_date(iso, language), language) == iso


@pytest.mark.parametrize("hhmm", ["00:00", "00:05", "06:15", "09:00", "11:59", "12:00", "12:30", "13:05", "14:30",
                                  "18:00", "23:59"])
@pytest.mark.parametrize("language", ["en-US", "zh-CN"])
def test_say_time_reads_back(hhmm, language):
    assert speech("time", sayas.say_time(hhmm, language), language) == hhmm


@pytest.mark.parametrize("amount", ["0.05", "0.50", "1.00", "1.01", "12.05", "12.50", "12.53", "100.00", "1234.99"])
@pytest.mark.parametrize(("language", "currency"), [("en-US", "USD"), ("zh-CN", "CNY"), ("en-GB", "GBP"),
                                                    ("zh-CN", "USD")])
def test_say_money_reads_back(amount, language, currency):
    said = sayas.say_money({"amount": amount, "currency": currency}, language)
    assert speech("money", said, language) == {"amount": amount, "currency": currency}


# -- spec checks, hints, early end --------------------------------------------------------

@pytest.mark.parametrize(("spec", "want"), [
    (SlotSpec("order", "digits", length=6), []),
    (SlotSpec("amount", "money", min=1, max=500, currency="USD"), []),
    (SlotSpec("phone", "phone", min_length=7, max_length=15), []),
    (SlotSpec("order", "digit"), ["unknown type 'digit': did you mean 'digits'?"]),
    (SlotSpec("ok", "yesno"), ["unknown type 'yesno': did you mean 'yes_no'?"]),
    (SlotSpec("x", "colour"), ["unknown type 'colour': types: digits, number, yes_no, date, time, money, phone, text"]),
    (SlotSpec("order", "digits", length=0), ["length must be >= 1"]),
    (SlotSpec("order", "digits", length="6"), ["length must be a whole number, not '6'"]),  # type: ignore[arg-type]
    (SlotSpec("order", "digits", length=True), ["length must be a whole number, not True"]),  # type: ignore[arg-type]
    (SlotSpec("order", "digits", min_length=6, max_length=3), ["min_length 6 > max_length 3"]),
    (SlotSpec("order", "digits", length=6, max_length=8), ["give either length or min_length/max_length, not both"]),
    (SlotSpec("n", "number", min=5, max=1), ["min 5 > max 1"]),
    (SlotSpec("n", "number", min="5"), ["min must be a number, not '5'"]),  # type: ignore[arg-type]
    (SlotSpec("t", "text", length=3), ["length applies only to digits and phone slots"]),
    (SlotSpec("d", "digits", max=3), ["max applies only to number and money slots"]),
    (SlotSpec("m", "money", currency="usd"), ["currency must be a 3-letter ISO 4217 code like USD or CNY, not 'usd'"]),
    (SlotSpec("n", "number", currency="USD"), ["currency applies only to money slots"]),
    (SlotSpec("", "digits"), ["the slot needs a name"]),
])
def test_check_spec(spec, want):
    assert check_spec(spec) == want


def test_only_type_problems_mention_type():
    # The flow loader points problems that mention "type" at the `type:` key.
    bad = SlotSpec("x", "digits", length=0, min=5, max=1, currency="usd")
    assert check_spec(bad) and not any("type" in p for p in check_spec(bad))


@pytest.mark.parametrize("kind", SLOT_TYPES)
@pytest.mark.parametrize("language", ["en-US", "zh-CN"])
def test_hint_phrases(kind, language):
    hints = hint_phrases(SlotSpec("x", kind), language)
    assert len(hints) == len(set(hints))
    assert all(isinstance(h, str) and h for h in hints)
    assert bool(hints) == (kind != "text")


def test_hint_phrases_content():
    digits_en = hint_phrases(SlotSpec("x", "digits"), "en-US")
    assert {"zero", "nine", "oh", "double", "triple"} <= set(digits_en)
    assert "zero one two three four five six seven eight nine oh" in digits_en   # digits follow digits (vosk)
    assert {"零", "幺", "两", "九"} <= set(hint_phrases(SlotSpec("x", "digits"), "zh-CN"))
    assert {"yes", "no", "correct"} <= set(hint_phrases(SlotSpec("x", "yes_no"), "en-US"))
    assert {"是", "不是", "对"} <= set(hint_phrases(SlotSpec("x", "yes_no"), "zh-CN"))
    assert {"euros", "cents"} <= set(hint_phrases(SlotSpec("x", "money", currency="EUR"), "en-US"))
    assert {"june", "july", "friday", "third"} <= set(hint_phrases(SlotSpec("x", "date"), "en-US"))
    assert "plus" in hint_phrases(SlotSpec("x", "phone"), "en-US")


@pytest.mark.parametrize(("spec", "text", "want"), [
    (SlotSpec("x", "digits", length=6), "four eight one", False),
    (SlotSpec("x", "digits", length=6), "four eight one five one six", True),
    (SlotSpec("x", "digits"), "four eight one five one six", False),       # could go on
    (SlotSpec("x", "digits", max_length=4), "four eight one five", True),
    (SlotSpec("x", "yes_no"), "yes", True),
    (SlotSpec("x", "yes_no"), "um", False),
    (SlotSpec("x", "number"), "twenty", False),
    (SlotSpec("x", "phone", max_length=10), "four one five five five five oh one oh oh", True),
])
def test_fills(spec, text, want):
    assert fills(spec, text, "en-US", TODAY) is want


# -- the number readers underneath --------------------------------------------------------

@pytest.mark.parametrize(("text", "want"), [
    ("一百零五", 105), ("两千零二十六", 2026), ("一百五", 150), ("二零二六", 2026), ("3万", 30000), ("十", 10),
    ("零", 0), ("一万零五", 10005), ("十万", 100000), ("三百二五", None), ("万", None), ("百", None), ("", None),
])
def test_zh_int(text, want):
    assert numbers.zh_int(text) == want


def test_unknown_type_raises():
    with pytest.raises(ValueError, match="unknown slot type"):
        parse_speech(SlotSpec("x", "colour"), "red", "en-US", TODAY)
    with pytest.raises(ValueError, match="unknown slot type"):
        parse_keys(SlotSpec("x", "colour"), "1", "en-US", TODAY)


# -- robustness: whatever ASR or a keypad sends, the answer is a value or a reason ----------

_WORDS = tuple(" ".join((
    "zero one two five nine ten twelve twenty forty hundred thousand a and point oh o double triple to for "
    "won the of on next last friday november may first third 21st today tomorrow yes no not isn't right "
    "am pm p.m. o'clock half quarter past noon dollars cents $ € ¥ + plus 481516 481-516 2:30 11/3 "
    "2026-02-30 3.5 1,000 , . ? - ( ) um it's 零 〇 幺 两 三 八 十 百 万 点 块 毛 分 月 号 周 下 今天 下午 半 差 "
    "是 不 对 嗯 一下 ：４ ￥ 美分 9999999999999999999",
)).split())


@pytest.mark.parametrize("language", ["en-US", "zh-CN"])
def test_random_input_never_raises(language):
    import random
    rng = random.Random(7)
    for _ in range(400):
        text = rng.choice(("", " ")).join(rng.choice(_WORDS) for _ in range(rng.randint(1, 8)))
        pressed = "".join(rng.choice("0123456789*#") for _ in range(rng.randint(0, 10)))
        for kind in SLOT_TYPES:
            spec = SlotSpec("x", kind, length=6 if kind == "digits" else None)
            assert isinstance(parse_speech(spec, text, language, TODAY), SlotValue | SlotError), text
            assert isinstance(parse_keys(spec, pressed, language, TODAY), SlotValue | SlotError), pressed


def test_huge_and_long_input():
    assert speech("money", "9999999999999999999 dollars") == "out_of_range"
    assert speech("number", "9" * 400) == "out_of_range"
    assert speech("date", "in 9999999999 days") == "invalid"
    assert speech("digits", "one " * 5000, max_length=20) == "too_long"
    assert keys("money", "9" * 30) == "out_of_range"


def test_other_languages_read_numerals():
    assert speech("digits", "481516", "ko-KR") == "481516"
    assert speech("number", "12", "de-DE") == 12


# -- real recognizer output: piper speaks through a phone line, whisper tiny.en transcribes ---

REAL_SPEECH = [
    ("digits", "four eight one five one six", {"length": 6}, "481516"),
    ("digits", "my order number is four eight one five one six", {"length": 6}, "481516"),
    ("digits", "double seven three nine", {}, "7739"),
    ("time", "two thirty p.m.", {}, "14:30"),
    ("time", "quarter to three", {}, "02:45"),
    ("date", "November third", {}, "2026-11-03"),
    ("date", "next Friday", {}, "2026-03-06"),
    ("date", "the twenty first of December", {}, "2026-12-21"),
    ("money", "twelve dollars and fifty cents", {}, usd("12.50")),
    ("money", "a hundred bucks", {}, usd("100.00")),
    ("yes_no", "yes, that's right", {}, True),
    ("yes_no", "no, it's not", {}, False),
    ("number", "one hundred and five", {}, 105),
    ("number", "three point five", {}, 3.5),
]


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "said", "spec", "want"), REAL_SPEECH)
def test_real_whisper_output(whisper_asr, line_audio, kind, said, spec, want):
    slot = SlotSpec("x", kind, **spec)
    audio = line_audio([("pause", 200), ("say", said), ("pause", 300)])
    session = whisper_asr.session(hint_phrases(slot, "en-US"))   # as the interpreter asks for a slot
    session.feed(audio)
    heard = session.finish().text
    got = parse_speech(slot, heard, "en-US", TODAY)
    assert isinstance(got, SlotValue) and got.value == want, f"whisper heard {heard!r}: {got}"
