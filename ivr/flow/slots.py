"""Typed slots: what a caller said (ASR text) or keyed, as a value a flow can use. Pure functions.

`parse_speech`/`parse_keys` return a `SlotValue` or a `SlotError` (a reason code, not an
exception: not understanding a caller is normal). Numbers, amounts, dates and times are read
by `numbers`, `money` and `datetimes`; the rules worth knowing:
- digits/phone: when a sentence holds several digit strings, the last one that fits the
  length bounds wins ("four eight one, no, four eight two" -> 482); if none fits, the error
  says why the last one does not. Homophones ("for", "to") see `numbers`.
- number: adjacent spoken numbers join as digits ("one two three" -> 123, "twenty twenty
  six" -> 2026); of several separate numbers the last one in range wins.
- money: see `money` for what is heard; keys "12*50" are 12.50 and "1250" is 1250.00. A
  currency the caller names that is not the slot's `currency` is `wrong_currency`; "dollars"
  and 块/元 are the slot's (or the locale's) own currency. Amounts are strings with 2 decimals.
- yes_no: negation wins ("yes... no, not correct" -> False); "not sure", 不知道 -> no_value.
"""

import datetime as dt
import difflib
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from pypinyin import lazy_pinyin

from ivr.flow import datetimes, foreign, money, nlu, numbers
from ivr.lang import is_mandarin

SLOT_TYPES = ("digits", "number", "yes_no", "date", "time", "money", "phone", "text")
REASONS = ("no_value", "too_short", "too_long", "out_of_range", "invalid", "wrong_currency")
PHONE_LENGTH = (3, 15)     # digits, E.164 allows at most 15
MAX_TEXT_CHARS = 1000      # an utterance is a few dozen words; more is noise, not worth parsing
MAX_NUMBER = Decimal(10) ** 15
_LENGTH_TYPES = ("digits", "phone")
_RANGE_TYPES = ("number", "money")
_FIELDS = (*((k, int, _LENGTH_TYPES, "a whole number") for k in ("length", "min_length", "max_length")),
           *((k, int | float, _RANGE_TYPES, "a number") for k in ("min", "max")))


@dataclass(frozen=True, slots=True)
class SlotSpec:
    name: str
    type: str
    length: int | None = None        # digits: exact length
    min_length: int | None = None    # digits/phone
    max_length: int | None = None
    min: float | None = None         # number/money range (inclusive)
    max: float | None = None
    currency: str | None = None      # money default currency, e.g. "USD", "CNY"


@dataclass(frozen=True, slots=True)
class SlotValue:
    value: str | int | float | bool | dict   # JSON-able; see the module doc
    source: str                               # "speech" | "keys"
    heard: str                                # the text or keys that were parsed


@dataclass(frozen=True, slots=True)
class SlotError:
    """Why the input did not fill the slot: one of REASONS, and a detail for logs and traces."""

    reason: str
    detail: str = ""


def lang_of(language: str) -> str:
    """"zh-CN", "cmn" -> "zh" (ivr.lang); everything else reads as English (numerals work in any language)."""
    return "zh" if is_mandarin(language) else "en"


def parse_speech(spec: SlotSpec, text: str, language: str, today: dt.date) -> SlotValue | SlotError:
    """The slot's value in ASR text, or why there is none."""
    heard = " ".join((text or "").split())[:MAX_TEXT_CHARS]
    if not heard:
        return SlotError("no_value", "nothing was heard")
    lang = lang_of(language)
    kind = spec.type
    if kind == "text":
        return SlotValue(heard, "speech", heard)
    if kind in _LENGTH_TYPES:
        got = _pick_digits(spec, _speech_digit_runs(heard, lang))
    elif kind == "number":
        got = _pick_number(spec, numbers.numbers_said(heard, lang))
    elif kind == "money":
        got = _money(spec, money.parse_amount(heard, lang), language)
    elif kind == "yes_no":
        got = _yes_no(heard, lang)
    elif kind in ("date", "time"):
        got = _date_or_time(kind, lambda: datetimes.parse_date(heard, lang, today) if kind == "date"
                            else datetimes.parse_time(heard, lang))
    else:
        raise ValueError(f"unknown slot type {kind!r}")
    return got if isinstance(got, SlotError) else SlotValue(got, "speech", heard)


def parse_keys(spec: SlotSpec, keys: str, language: str, today: dt.date) -> SlotValue | SlotError:
    """The slot's value in keypad keys (a trailing # terminator is ignored), or why there is none."""
    heard = (keys or "").strip().rstrip("#")[:MAX_TEXT_CHARS]
    if not heard:
        return SlotError("no_value", "no keys")
    kind = spec.type
    got: object
    if kind == "text":
        got = heard
    elif kind == "yes_no":
        got = {"1": True, "2": False}.get(heard, SlotError("invalid", "press 1 for yes, 2 for no"))
    elif kind in ("number", "money"):
        if not re.fullmatch(r"\d*\*?\d*", heard) or not any(c.isdigit() for c in heard):
            return SlotError("invalid", "digits with * as the decimal point")
        amount = Decimal(heard.replace("*", ".").rstrip("."))
        got = (_pick_number(spec, [amount]) if kind == "number"
               else _money(spec, money.Amount(amount, None), language))
    elif not heard.isdigit():
        return SlotError("invalid", "digits only")
    elif kind in _LENGTH_TYPES:
        got = _pick_digits(spec, [("", heard)])
    elif kind in ("date", "time"):
        got = _date_or_time(kind, lambda: datetimes.date_from_keys(heard, today) if kind == "date"
                            else datetimes.time_from_keys(heard), missing="invalid")
    else:
        raise ValueError(f"unknown slot type {kind!r}")
    return got if isinstance(got, SlotError) else SlotValue(got, "keys", heard)


# -- per type -----------------------------------------------------------------------------

def _speech_digit_runs(text: str, lang: str) -> list[tuple[str, str]]:
    """(prefix "+" or "", digits) candidates, most likely first."""
    if lang == "zh":
        clean = numbers.zh_clean(text)
        return [("+" if clean[i - 1 : i] in ("+", "加") else "", d) for i, d in reversed(numbers.zh_digit_runs(clean))]
    toks = numbers.en_tokens(text)
    out = []
    for strict in (False, True):
        for i, d in reversed(numbers.digit_runs(toks, strict)):
            out.append(("+" if toks[i - 1 : i] in (["+"], ["plus"]) else "", d))
    half = [(p, d[: len(d) // 2]) for p, d in out if len(d) % 2 == 0 and d[: len(d) // 2] == d[len(d) // 2 :]]
    return out + half     # whisper sometimes says it all twice: "four eight one four eight one"


def _pick_digits(spec: SlotSpec, runs: list[tuple[str, str]]) -> str | SlotError:
    if not runs:
        return SlotError("no_value", "no digits")
    lo, hi = _length_bounds(spec)
    for prefix, digits in runs:
        if lo <= len(digits) <= hi:
            return prefix + digits if spec.type == "phone" else digits
    n = len(runs[0][1])
    return SlotError("too_short" if n < lo else "too_long", f"{n} digits, want {lo}..{hi}")


def _length_bounds(spec: SlotSpec) -> tuple[int, int]:
    if spec.length:
        return spec.length, spec.length
    lo, hi = PHONE_LENGTH if spec.type == "phone" else (1, 10**6)
    return spec.min_length or lo, spec.max_length or hi


def _in_range(spec: SlotSpec, value: Decimal) -> bool:
    low = spec.min is None or value >= Decimal(str(spec.min))
    return low and abs(value) < MAX_NUMBER and (spec.max is None or value <= Decimal(str(spec.max)))


def _outside(spec: SlotSpec, value: Decimal) -> str:
    low = f"at least {spec.min}" if spec.min is not None else ""
    high = f"at most {spec.max}" if spec.max is not None else f"under {MAX_NUMBER:.0e}"
    return f"{str(value)[:20]}: want {' and '.join(w for w in (low, high) if w)}"


def _pick_number(spec: SlotSpec, values: list[Decimal]) -> int | float | SlotError:
    if not values:
        return SlotError("no_value", "no number")
    for value in values:
        if _in_range(spec, value):
            return int(value) if value == int(value) else float(value)
    return SlotError("out_of_range", _outside(spec, values[0]))


def _money(spec: SlotSpec, amount: money.Amount | None, language: str) -> dict | SlotError:
    if amount is None:
        return SlotError("no_value", "no amount")
    currency = money.currency_of(amount.currency, spec.currency or money.default_currency(language))
    if spec.currency and currency != spec.currency:
        return SlotError("wrong_currency", f"heard {currency}, want {spec.currency}")
    if not _in_range(spec, amount.value):
        return SlotError("out_of_range", _outside(spec, amount.value))
    value = amount.value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return {"amount": str(value), "currency": currency}


def _date_or_time(kind: str, parse, missing: str = "no_value") -> str | SlotError:
    try:
        got = parse()
    except (ValueError, OverflowError) as exc:    # "February 30th"; "in a billion days"
        return SlotError("invalid", str(exc))
    if got is None:
        return SlotError(missing, f"no {kind}" if missing == "no_value" else "keys: YYYYMMDD or MMDD, HHMM")
    return got.isoformat() if kind == "date" else f"{got[0]:02d}:{got[1]:02d}"


# yes/no: phrases first (they hold negative words), then words; negation wins. Mandarin: whole short answers by
# sound first (one clause at a time, below), then the words.
_EN_UNSURE = ("don't know", "dont know", "not sure", "no idea", "dunno", "maybe", "not certain", "don't remember",
              "not really sure", "don't really know", "don't rightly know", "perhaps", "no clue", "not a clue",
              "hard to say", "can't say", "cannot say", "couldn't say", "couldn't tell you", "can't tell you",
              "who knows", "beats me", "unsure", "not positive", "can't remember", "cannot remember", "let me think")
# hedges: a short answer that holds one is unsure ("kind of but not really", "well sort of"); a longer sentence keeps
# its answer ("yes please it's kind of urgent")
_EN_HEDGE = re.compile(r"(?<!that)(?<!this)(?<!what)(?<!any)(?<!the)(?<!some) (?:kind|sort) of |"
                       r" (?:kinda|sorta|more or less) ")      # not a noun's: "yes that kind of thing"
MAX_HEDGED_WORDS = 5
_EN_UNSURE_SOUNDS = tuple(sound for sound in (tuple(nlu.sound_of(w) for w in p.split()) for p in _EN_UNSURE)
                          if len(sound) > 1 and min(map(len, sound)) > 1)    # _en_unsure_by_sound
_EN_YES_PHRASES = ("no problem", "no worries", "why not", "of course", "uh huh", "mm hmm", "it is", "i do",
                   "go ahead", "think so", "sounds good", "all right", "spot on", "that's the one", "that's it",
                   "you got it", "please do", "go on", "okey dokey", "no doubt", "without a doubt",
                   "no question about it")
_EN_YES = frozenset({"yes", "yeah", "yep", "yup", "yea", "ya", "sure", "correct", "right", "affirmative", "ok",
                     "okay", "absolutely", "definitely", "exactly", "indeed", "true", "alright", "certainly",
                     "mhm", "aye", "yeh", "yah", "yas", "yess", "yesh"})
# Words that may stand beside a whole yes or no (not "so": "ok so ..." goes on)
_EN_ASIDES = frozenset({"please", "thanks", "um", "uh", "er", "erm", "oh", "ah", "well", "hmm", "sorry", "cheers",
                        "ta"})
# ... and phrases that may ("i don't think so pal": a whole no the yes/no rules hear by its n't; "not that one")
_EN_ANSWER_PHRASES = ("i dont think so", "i do not think so", "i think so", "on that one", "that one")
# ... and the names callers give whoever they speak to: "no thank you love", "yes ma'am", "aye that's it pet"
EN_ADDRESS = frozenset({"love", "luv", "mate", "dear", "pet", "darling", "hun", "hon", "duck", "pal", "buddy", "sir",
                        "madam", "maam", "bro", "man", "boss", "chief", "my", "friend", "lad", "lass", "chuck",
                        "sweetheart"})
_EN_NO = frozenset({"no", "nope", "nah", "negative", "wrong", "incorrect", "false", "not", "never", "nay", "noo",
                    "na", "negatory"})
_ZH_UNSURE = ("不知道", "不确定", "不太确定", "不清楚", "不记得", "说不好", "不好说", "说不准",
              "说不清", "不晓得", "也许", "可能", "想想", "想一想", "考虑", "琢磨", "没想好", "等一下",
              "等一等", "等会", "稍等", "说不上", "讲不清", "讲不好", "讲不准", "拿不准", "吃不准", "不一定",
              "难说", "不敢说", "不敢肯定", "搞不清", "弄不清", "闹不清", "整不明白", "心里没底")
_ZH_THINK_IT_OVER = re.compile(r"想一下(?!子)")   # 我想一下 "let me think"; not 我想一下子全办了 "I want ... at once"
# ... and these by their sound, tones aside (_zh_unsure_by_sound); not those that sound like an answer or a remark
# (拿不准 ~ 那不准 "that's not right", 不记得 ~ 不急的, 不晓得 ~ 不小的)
_ZH_UNSURE_SOUNDS = frozenset(tuple(lazy_pinyin(w)) for w in (
    "不知道", "不确定", "不清楚", "说不准", "说不清", "说不好", "不好说", "不一定", "不敢说"))
# Sichuan 没得 莫(得), Cantonese 冇
_ZH_YES_IDIOMS = ("没错", "不错", "没问题", "没关系", "没毛病", "没说错", "没跑", "没有错",
                  "没得错", "莫得错", "莫错", "没得问题", "莫得问题", "冇问题", "冇错")
_ZH_NEITHER = ("你好", "您好", "好像", "是什么", "是谁",   # hold 好/是 but answer nothing
               "这是", "那是", "还是", "可是", "但是", "要是", "是不是",
               "我是想", "我是要", "我是说", "我是问",
               "还行", "还好", "还可以", "还凑合",     # so-so: 还行吧 judges something, it answers nothing
               "差不多")                              # "about", "more or less": its 不 negates nothing
# hedges: "more or less", "seems so", "probably": unsure, unless a clause answers or something else negates (a
# hedged no: 好像不是); with a second hedge word a negation is unsure too (好像是又好像不是, also 大概好像不是吧)
_ZH_HEDGES = ("差不多", "好像", "大概", "估计")
# 哪是这个 "how is it this one", 这哪里是我的: a rhetorical question, a no (哪个是 "which is" stays a question)
_ZH_RHETORICAL_NO = re.compile(r"哪(?:里|儿)?是")
_ZH_VERY = re.compile(r"好(?=[热冷多久几累烦难慢贵饿吵远奇怪])")   # 好 "very": 今天好热 answers nothing
_ZH_YES = ("是", "对", "好", "嗯", "行", "可以", "正确", "确定", "确认", "当然", "肯定")  # 要: whole answers only
_ZH_NO = ("不", "没", "错", "否", "别")
# 不 in a verb's potential complement (睡不着 cannot sleep, 收不到, 打不通, 用不了, 看不懂) tells what happened and
# answers nothing: 对 我这边收不到短信 is a yes. Not after a pronoun, adverb, modal or answer word (我不上班, 还不到,
# 要不了, 对不起, 行不通 keep their 不).
# after these 不 negates, also where it ends a clause (ZH_QUESTION_BU)
_ZH_NEGATING = "我你他她它们也都还就并绝决可要是对好行能会该太很真再又才别"
ZH_POTENTIAL = re.compile(rf"(?<=[^\W\d_{_ZH_NEGATING}])不(?=[着了到见清懂通动起开完住掉出进惯])")


def _zh_unsure(clean: str, plain: str) -> bool:
    """Whether a Mandarin sentence says "I don't know" or "let me think" (_ZH_UNSURE, 想一下), looked for in both its
    numbers.zh_clean text and `plain` (zh_clean blanks words hiding a 一: 不一定, 想一下)."""
    return any(w in clean or w in plain for w in _ZH_UNSURE) or bool(_ZH_THINK_IT_OVER.search(plain))


def _zh_negated(clean: str) -> bool:
    """Whether `clean` (numbers.zh_clean) holds a negation, potential complements (ZH_POTENTIAL) and yes idioms
    (没毛病, 没问题: _ZH_YES_IDIOMS) left out."""
    clean = ZH_POTENTIAL.sub("", clean)
    for idiom in _ZH_YES_IDIOMS:
        clean = clean.replace(idiom, "对")
    return any(w in clean for w in _ZH_NO)

# Whole short answers heard by sound, one clause at a time (a clause: what lies between spaces or punctuation),
# so that what a recognizer or a dialect makes of 是的 / 不对 still answers: 事的 四的 队的, 部队 步对 布是,
# Cantonese 系 唔系 冇, Wu 勿是, Henan 中, Sichuan 对头 要得 莫得. Toneless pinyin syllables with zh/ch/sh heard
# as z/c/s (many southern speakers, and recognizers, merge them), particles dropped; a clause is a yes when it
# is made of yes units and neutral ones (是啊就这个, 是这样的, 没问题就这个, 对对对), a no likewise (不是这个).
# A clause that is not is left to the word rules below.
_ZH_PARTICLES = frozenset({"a", "ya", "wa", "ne", "ba", "lo", "lei", "ha", "bei", "o", "ou", "la", "yo",
                           "le", "e", "ai", "ei", "hai", "ye", "lou"})        # lou: 对喽
_ZH_YES_UNITS = frozenset(tuple(u.split()) for u in (
    "si", "si de", "si di", "dui", "dui de", "dui tou", "hao", "hao de", "xing", "xing de", "ke yi", "ke yi de",
    "n", "en", "m", "n na", "zong", "ceng", "yao", "yao de", "wo yao", "que ding", "que ren", "wo que ren", "mei cuo",
    "mei de cuo", "mo de cuo", "mo cuo", "mao cuo", "mei you cuo", "mei wen ti", "mei de wen ti", "dang ran",
    "ken ding", "zeng que", "xi", "si ge", "xi ge", "tong yi", "wo tong yi", "mei mao bing", "mei de mao bing",
    "mo de mao bing", "ke zong", "ke xing", "jiu yao", "wo jiu yao", "an yao", "an jiu yao"))
#   没错 (Sichuan 没得 莫(得), Cantonese 冇), 没毛病, Henan 可中, 俺(就)要
_ZH_NO_UNITS = frozenset(tuple(u.split()) for u in (
    "bu", "bu si", "bu si de", "bu dui", "bu yao", "bu yong", "mei you", "mei", "bu xing", "bu ke yi", "cuo",
    "bie", "fou", "wu xi", "wu si", "mao", "mao you", "mei de", "mo de", "mei de you", "mu you", "wu si ge",
    "wu xi ge", "bu si ge", "bu zeng que", "bu tong yi"))
_ZH_NEUTRAL_UNITS = frozenset(tuple(u.split()) for u in ("jiu", "ze ge", "zei ge", "ze yang", "de", "yi si",
                                                         "ban ze ge"))
#            就 这个 这样 的 意思 (就是这个意思, 不是这个意思), 办这个 (中中中 就办这个); not 谢谢: 好了谢谢 is goodbye
_ZH_HUMS = frozenset("嗯恩呃啊哦噢唔额")     # 恩: a recognizer's 嗯
_ZH_THINKING = ("怎么说呢", "怎么讲呢", "咋说呢", "这个", "那个", "那什么", "那啥")   # thinking aloud (_zh_thinking)
_ZH_ONE = frozenset("是对队好嗯行中成要系不没冇错别否")    # a one-character answer is heard as written (队: a
#                                                            recognizer's 对), not by its sound (四, 死, 美, 猫)
# After a first answer, a new question (好，我想问一下账单) is not the answer's explanation
# "I want": a yes alone, the start of a request before more words
_ZH_WANT = ("要", "我要", "就要", "我就要", "俺要", "俺就要")
_ZH_REQUEST = ("我想问", "我要问", "我想查", "我要查", "我想办", "我要办")   # a new question after the answer
ZH_PARTICLE_END = frozenset("吧啦啊呀嘛呢哦喔")   # ends a clause without a pause (not 的 了: 我的订单, 买重复了)
ZH_CLAUSE = r"[\s,.!?;:，。！？、；：…~～]+"      # between two clauses: a pause or punctuation (also ivr.flow.asides)

# 不 that ends a clause after a verb or an adjective asks a question and negates nothing: 周末营业不, 能退不,
# 你知道不 are 营业吗, 能退吗, 你知道吗 (zh_question). Not after a pronoun, an adverb, a modal or an answer word
# (我不, 就不, 要不, 对不), 了 (我说了不: "I said no"), a hum or another negation (不不, 哦不 "oh no").
_ZH_NOT_QUESTION_AFTER = _ZH_NEGATING + "不没了哦噢啊嗯呃哎唉诶"
ZH_QUESTION_BU = re.compile(rf"(?<=[^\W\d_{_ZH_NOT_QUESTION_AFTER}])不(?={ZH_CLAUSE}|$)")
# A verb or an adjective, 不, and it again asks the same (够不够用, 开不开门, 营业不营业, 要不要: 够用吗, 开门吗,
# 营业吗, 要吗): the pair is said once and the clause asks with 吗. Not an answer word nor a modal (是不是, 对不对,
# 好不好, 能不能 keep their own handling), nor after a negation (不要了不要了, 不用不用: a no said twice).
_ZH_NOT_A_NOT_A = "是对好行中队能会可"
ZH_A_NOT_A = re.compile(rf"(?<![不没别])([^\W\d_{_ZH_NOT_A_NOT_A}不没别])([^\W\d_不没别]?)不\1\2")
ZH_ASKING_END = frozenset("吗呢啊呀嘛吧哪咯哦啦")
_ZH_ASKS = re.compile(r"吗[呢啊呀]*[\W_]*$")     # a sentence that ends asking with 吗 (可以吗, 行吗, 对吗？)


def yes_no(text: str, lang: str) -> str | None:
    """What a yes/no slot hears in `text` (`lang` "en" or "zh"): "yes", "no", "unsure", or None (neither)."""
    got = _yes_no(text, lang)
    if isinstance(got, SlotError):
        return "unsure" if got.detail == "unsure" else None
    return "yes" if got else "no"


def _yes_no(text: str, lang: str) -> bool | SlotError:
    if lang == "zh":
        text = zh_question(_ZH_RHETORICAL_NO.sub("不是", text))
        clean = numbers.zh_clean(text)
        plain = "".join(text.split())       # zh_clean blanks words hiding a 一 (一定): 不一定 is unsure
        if _zh_hum(plain):
            return SlotError("no_value", "neither yes nor no")
        if _zh_unsure(clean, plain) or _zh_thinking(plain) or _zh_unsure_by_sound(plain):
            return SlotError("no_value", "unsure")
        forms = [(_zh_answer_form(part), part) for part in re.split(ZH_CLAUSE, text)]
        said = [f for f, _ in forms if f in ("yes", "no")]
        # what answers besides a hum (嗯 is a yes alone, not before 差不多吧 or 对吗)
        answered = [f for f, part in forms if f in ("yes", "no") and not _zh_hum(part)]
        others = numbers.zh_clean("".join(part for f, part in forms if f not in ("yes", "no")))
        wants = [p for f, p in forms if f == "yes" and _zh_wants(p)]
        if others and len(wants) == len(said):
            said = []                       # 我要，查余额: "I want", then the request (left to the words: neither)
        for idiom, meaning in [*((w, "对") for w in _ZH_YES_IDIOMS), *((w, "，") for w in _ZH_NEITHER)]:
            clean = clean.replace(idiom, meaning)
        clean = _ZH_VERY.sub("，", clean)
        negated = _zh_negated(clean)
        if not answered and _ZH_ASKS.search(plain):
            return SlotError("no_value", "neither yes nor no")   # 从头再来可以吗, 嗯 对吗: it asks, answers nothing
        hedges = sum(plain.count(w) for w in _ZH_HEDGES)
        if not answered and hedges and (not negated or hedges > 1):
            return SlotError("no_value", "unsure")      # (嗯) 差不多吧 好像是; 好像不是 a no, 对 差不多了 a yes
        if len(set(said)) == 1 and (said[0] == "no" or len(said) > 1 or not _zh_negated(others)):
            return said[0] == "yes"         # 对 对 对 是的 信号不好 对的; 行 别发了 is left to the words (a no)
        if negated or any(w in clean for w in _ZH_YES):
            return not negated
    said = " " + " ".join(re.findall(r"[a-z']+", numbers.normalize(text).replace("-", " "))) + " "
    if any(f" {p} " in said for p in _EN_UNSURE) or _en_unsure_by_sound(said) or (
            len(said.split()) <= MAX_HEDGED_WORDS and _EN_HEDGE.search(said)):
        return SlotError("no_value", "unsure")
    yes = any(f" {p} " in said for p in _EN_YES_PHRASES)
    for phrase in _EN_YES_PHRASES:            # "no problem" is a yes: its "no" must not count (every time said)
        said = re.sub(rf"(?<= ){re.escape(phrase)}(?= )", "", said)
    if " uh uh " in said or any(w in _EN_NO or w.endswith("n't") for w in said.split()):
        return False
    return True if yes or any(w in _EN_YES for w in said.split()) else SlotError("no_value", "neither yes nor no")


def _en_unsure_by_sound(said: str) -> bool:
    """Whether the words `said` hold one of the unsure phrases of two words or more whose every word sounds (metaphone)
    like the phrase's: "i'm knot sure" (a recognizer's "not"). Only phrases whose words' sounds are two letters or more:
    "no idea" (N IT) would catch "no it isn't"."""
    sounds = tuple(nlu.sound_of(w) for w in said.split())
    return any(sounds[i:i + len(p)] == p for p in _EN_UNSURE_SOUNDS for i in range(len(sounds) - len(p) + 1))


def zh_question(text: str) -> str:
    """`text` with its questions made of 不 written with 吗: a clause-final 不 that asks (ZH_QUESTION_BU: 周末营业不 ->
    周末营业吗), a verb asked with 不 between it and itself (ZH_A_NOT_A: 流量还够不够用 -> 流量还够用吗)."""
    text = ZH_QUESTION_BU.sub("吗", text)
    if "不" not in text:
        return text
    parts = re.split(f"({ZH_CLAUSE})", text)
    for i in range(0, len(parts), 2):
        asked = ZH_A_NOT_A.sub(r"\1\2", parts[i])
        if asked != parts[i]:
            parts[i] = asked if asked[-1] in ZH_ASKING_END else asked + "吗"
    return "".join(parts)


def _zh_hum(plain: str) -> bool:
    """Whether `plain` is nothing but hums (嗯, 嗯嗯, 恩 呃): no answer. Callers hum to think as often as to agree (the
    evaluation parts' writers labelled a bare 嗯 at the yes/no step a yes five times and a mumble eight times), and a
    recognizer writes one for a breath: the question is asked again rather than a yes taken on a guess."""
    said = re.sub(r"[\W_]+", "", plain)
    return bool(said) and set(said) <= _ZH_HUMS


def _zh_unsure_by_sound(plain: str) -> bool:
    """Whether `plain` holds a three-syllable "I don't know" written with other characters that sound the same,
    tones aside, as a recognizer writes them (不指导 for 不知道, 说不准 as 说不谆)."""
    said = tuple(lazy_pinyin("".join(foreign.CJK.findall(plain))))
    return any(said[i:i + 3] in _ZH_UNSURE_SOUNDS for i in range(len(said) - 2))


def _zh_thinking(plain: str) -> bool:
    """Whether `plain` (no spaces) is only someone thinking aloud: a word like 这个嘛, 那个, 怎么说呢 among hums
    (嗯 这个嘛). A hum alone (嗯, 嗯嗯) is not: it answers nothing (_zh_hum)."""
    said = rest = re.sub(r"[\W_]+", "", plain)
    for word in _ZH_THINKING:
        rest = rest.replace(word, "")
    return len(rest) < len(said) and set(rest) <= _ZH_HUMS | set("嘛呢哈")


MIN_ZH_OPENING, MAX_ZH_OPENING = 2, 6     # a Mandarin whole answer that opens a clause without a pause, in characters,
_ZH_WANTING = frozenset("要想")            # ... a yes without "want" in it: 好的我要查余额 asks for more than a yes


def whole_answer(text: str, lang: str, leading: bool = True) -> str | None:
    """"yes" or "no" when `text` is nothing but a short answer (`lang` "zh": zh_whole_answer, which with `leading`
    also takes a first clause that answers and the explanation after it; "en": yes/no words and phrases, "please",
    "thanks", fillers, a name for the listener: "yes yes that's right", "nope", "no thank you love"), else None."""
    if lang == "zh":
        return zh_whole_answer(text, leading)
    said = " " + " ".join(re.findall(r"[a-z]+", numbers.normalize(text).replace("-", " ").replace("'", ""))) + " "
    if not said.strip():
        return None
    for phrase in (*_EN_ANSWER_PHRASES, "thats right", "thank you", *(p.replace("'", "") for p in _EN_YES_PHRASES)):
        said = re.sub(rf"(?<= ){re.escape(phrase)}(?= )", "", said)
    if any(w not in _EN_YES | _EN_NO | _EN_ASIDES | EN_ADDRESS for w in said.split()):
        return None
    heard = yes_no(text, "en")
    return heard if heard in ("yes", "no") else None


def zh_whole_answer(text: str, leading: bool = True) -> str | None:
    """"yes" or "no" when every clause of `text` is a whole short Mandarin answer by its sound and they agree
    (是啊 就是这个, 唔系唔系, 布是的, 中 就这个), or when the first clause is one and what follows explains without a
    negation after a yes (对 放假前就想办这个了, 不是 我要问账单); else None: what a yes/no step may take without
    weighing anything else. Without a pause the first clause ends where a whole answer that opens the sentence ends
    (`_zh_opening`: 对就是这个|我在工地上), else at a clause-final particle (对啊|就这个我在排队呢)."""
    clauses = [c for c in re.split(ZH_CLAUSE, _ZH_RHETORICAL_NO.sub("不是", text)) if numbers.zh_clean(c)]
    if len(clauses) == 1:           # no pause: a whole answer opens it (对就是这个我在工地上), or a clause-final
        end = _zh_opening(clauses[0])   # particle ends the first clause (对啊就这个我在排队呢)
        if end is None:
            end = zh_particle_end(clauses[0])
            end = end + 1 if end is not None else None
        if end is not None and 0 < end < len(clauses[0]):
            clauses = [clauses[0][:end], clauses[0][end:]]
    while clauses and set(numbers.zh_clean(clauses[0])) <= _ZH_HUMS:
        clauses = clauses[1:]               # 嗯 是的: the hum says nothing; 嗯, 嗯嗯 alone: nothing (_zh_hum)
    if not clauses:
        return None
    forms = {_zh_answer_form(c) for c in clauses} - {"neutral"}
    if len(forms) == 1 and None not in forms:
        return forms.pop()
    first, plain = _zh_answer_form(clauses[0]), "".join(clauses[1:])
    rest = numbers.zh_clean(plain)
    if not leading or _zh_wants(clauses[0]):
        return None                         # 我要，查余额: "I want", then the request
    if first == "no" or (first == "yes" and not _zh_negated(rest) and not any(w in rest for w in _ZH_REQUEST)
                         and not _zh_unsure(rest, plain)):     # 好啊 我再想想, 嗯 我想一下: thinking it over
        return first
    return None


def _zh_opening(clause: str) -> int | None:
    """The length of the longest whole yes or no (of MIN_ZH_OPENING .. MAX_ZH_OPENING characters) that opens `clause`
    with MIN_ZH_OPENING characters at least after it (是的没错|我就是问这个, 不是不是|我刚才说的不是这个), or None."""
    for n in range(min(MAX_ZH_OPENING, len(clause) - MIN_ZH_OPENING), MIN_ZH_OPENING - 1, -1):
        form = _zh_answer_form(clause[:n])
        if clause[n - 1] not in "不没别" and (form == "no" or (form == "yes" and not set(clause[:n]) & _ZH_WANTING)):
            return n                  # not 这个不|好说 (a negation of what follows), not 好的我要|查余额
    return None


def zh_particle_end(clause: str, start: int = 0) -> int | None:
    """Where the first clause-final particle (ZH_PARTICLE_END) at or after `start` stands in `clause`, or None: what
    ends a Mandarin clause said without a pause (对啊|就这个, 还是转人工吧|我跟机器讲不清楚; also ivr.flow.asides)."""
    return next((i for i in range(start, len(clause)) if clause[i] in ZH_PARTICLE_END), None)


def _zh_wants(clause: str) -> bool:
    """Whether `clause` is only "I want" (要, 我要, 要的 ...): a yes alone, the start of a request before more words."""
    return re.sub(r"[啊呀的嘛吧了]", "", numbers.zh_clean(clause)) in _ZH_WANT


def _zh_answer_form(clause: str) -> str | None:
    """"yes" or "no" when this clause is one whole short answer by its sound (_ZH_YES_UNITS), "neutral" when it
    is made of neutral words only (就这个), else None."""
    clean = numbers.zh_clean(clause).replace("嘅", "的").replace("呢个", "这个")   # Cantonese 嘅 (ge, read kai): 的,
    #                                                                         是嘅 is 是的; 呢个: 这个
    if not clean or len(clean) > 10 or not all(nlu.is_wide_char(ch) for ch in clean):
        return None
    if re.fullmatch(rf"[{numbers.ZH_NUM_CHARS}]+", clean) or (len(clean) == 1 and clean not in _ZH_ONE):
        return None                         # 四四四四 (digits, not 是), 死 / 美 / 猫 alone (not 是 / 没 / 冇)
    if "还" in clean:
        return None                         # 还 (hai, the particle 嗨's sound): 还行吧 is so-so, not a yes
    sounds = tuple(s for s in (re.sub(r"^([zcs])h", r"\1", nlu.sound_of(ch)) for ch in clean)
                   if s not in _ZH_PARTICLES)
    for kind, units in (("yes", _ZH_YES_UNITS), ("no", _ZH_NO_UNITS)):   # 没错, 没问题: idioms first
        if _made_of(sounds, units):
            return kind
    return "neutral" if sounds and _made_of(sounds, _ZH_NEUTRAL_UNITS, polar=False) else None


def _made_of(sounds: tuple[str, ...], units: frozenset, polar: bool = True) -> bool:
    """Whether `sounds` is a sequence of `units` and _ZH_NEUTRAL_UNITS holding at least one of `units` (any, when
    not `polar`)."""
    ends = {0: False}                       # position -> whether a polar unit was used to reach it
    for start in range(len(sounds)):
        if start not in ends:
            continue
        for size in range(1, 5):
            unit = sounds[start:start + size]
            if len(unit) == size and (unit in units or unit in _ZH_NEUTRAL_UNITS):
                end = start + size
                ends[end] = ends.get(end, False) or ends[start] or unit in units
    return ends.get(len(sounds), False) or (not polar and len(sounds) in ends)


# -- for the flow validator and the recognizer --------------------------------------------

def check_spec(spec: SlotSpec) -> list[str]:
    """Problems with the spec itself, one human-readable line each."""
    problems = []
    if spec.type not in SLOT_TYPES:
        close = difflib.get_close_matches(str(spec.type), SLOT_TYPES, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else "types: " + ", ".join(SLOT_TYPES)
        problems.append(f"unknown type '{spec.type}': {hint}")
    if not str(spec.name or "").strip():
        problems.append("the slot needs a name")
    for key, kinds, types, what in _FIELDS:
        value = getattr(spec, key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, kinds):
            problems.append(f"{key} must be {what}, not {value!r}")
        elif key.endswith("length") and value < 1:
            problems.append(f"{key} must be >= 1")
        elif spec.type in SLOT_TYPES and spec.type not in types:
            problems.append(f"{key} applies only to {' and '.join(types)} slots")
    lo, hi = spec.min_length, spec.max_length
    if spec.length is not None and (lo is not None or hi is not None):
        problems.append("give either length or min_length/max_length, not both")
    for low, high, what in ((lo, hi, "min_length"), (spec.min, spec.max, "min")):
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)) and low > high:
            problems.append(f"{what} {low} > {what.replace('min', 'max')} {high}")
    if spec.currency is not None:
        if not (isinstance(spec.currency, str) and re.fullmatch(r"[A-Z]{3}", spec.currency)):
            problems.append(f"currency must be a 3-letter ISO 4217 code like USD or CNY, not {spec.currency!r}")
        elif spec.type in SLOT_TYPES and spec.type != "money":
            problems.append("currency applies only to money slots")
    return problems


def hint_phrases(spec: SlotSpec, language: str) -> tuple[str, ...]:
    """Words to bias the recognizer toward while this slot is asked for (its phrase list).

    The digit words also come as one phrase, so a vosk grammar built from them learns that
    digits follow digits (vosk estimates word pairs from the phrases)."""
    names = money.CURRENCIES.get(spec.currency or money.default_currency(language))
    if lang_of(language) == "zh":
        digits = tuple("零一幺二两三四五六七八九")
        quantity = (*digits, "十", "百", "千", "万", "点")
        table = {"digits": digits, "phone": digits, "number": quantity,
                 "money": (*quantity, "块", "元", "毛", "角", "分", "钱", *(names[2:3] if names else ())),
                 "yes_no": ("是", "是的", "对", "对的", "好", "好的", "没错", "不是", "不对", "不", "错了"),
                 "date": (*quantity[:-4], "今天", "明天", "后天", "星期", "周", "下周", "月", "号", "日"),
                 "time": (*quantity[:-4], "点", "半", "分", "一刻", "上午", "下午", "中午", "晚上", "凌晨", "早上")}
    else:
        digits = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "oh")
        tens = tuple(t for t in numbers.TENS if t != "fourty")
        quantity = (*digits[:-1], *numbers.TEENS, *tens, "hundred", "thousand", "point", "and")
        money_words = (*names[0], *(names[1] or ())) if names else ("dollars", "cents")
        table = {"digits": (*digits, "double", "triple"), "phone": (*digits, "double", "triple", "plus"),
                 "number": quantity, "money": (*quantity, *money_words),
                 "yes_no": ("yes", "yeah", "yep", "correct", "right", "that's right", "no", "nope", "wrong", "not"),
                 "date": ("today", "tomorrow", "day after tomorrow", "next", "this", *datetimes.WEEKDAYS,
                          *(m.lower() for m in datetimes.MONTH_NAMES), *numbers.ORDINALS, *tens),
                 "time": (*quantity[:-4], "o'clock", "am", "pm", "half past", "quarter past", "quarter to", "noon",
                          "midnight", "morning", "afternoon", "evening")}
    words = table.get(spec.type, ())
    joined = (("" if lang_of(language) == "zh" else " ").join(digits),) if spec.type in _LENGTH_TYPES else ()
    return tuple(dict.fromkeys((*words, *joined)))


def fills(spec: SlotSpec, text: str, language: str, today: dt.date) -> bool:
    """Whether a partial hypothesis already fills the slot so that nothing more can follow: the call
    loop may end the turn at a short pause. True only for yes/no and for digits/phone that reached
    their exact or maximum length; a number, date or amount may always go on ("twenty" ... "one")."""
    got = parse_speech(spec, text, language, today)
    if not isinstance(got, SlotValue) or spec.type not in ("yes_no", *_LENGTH_TYPES):
        return False
    return spec.type == "yes_no" or len(str(got.value).lstrip("+")) == _length_bounds(spec)[1]
