"""How slot values are said in prompts, English and Mandarin: the flow templates' filters.

`{{ slots.order_id | digits }}` -> say_digits(value, language). Output is text the TTS reads
well: English keeps numerals (piper and espeak-ng read "105", "2:30 PM" and "November 3rd"
right); Mandarin uses numerals inside 月/日/点/元 (espeak-ng reads "11月3日" as shí yī yuè sān rì)
and Chinese numerals where it matters: say_number gives 一百零五, say_digits reads 1 as 幺
(yāo), as phone hotlines do, so 1 and 7 are not confused on a phone line.
Bad input raises ValueError with a message that names the value.
"""

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

from ivr.flow.money import CURRENCIES, default_currency
from ivr.lang import is_mandarin

WEEKDAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December")
WEEKDAYS_ZH = "一二三四五六日"
_ZH_DIGITS = "零一二三四五六七八九"


def say_digits(value: str, language: str, group: int = 0) -> str:
    """"481516" -> "4 8 1 5 1 6" / "四 八 幺 五 幺 六"; group=3 -> "4 8 1, 5 1 6" (a pause every 3)."""
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    plus = text.startswith("+")
    digits = text[1:] if plus else text
    if not digits.isascii() or not digits.isdigit():
        raise ValueError(f"say_digits needs a string of digits, not {value!r}")
    if isinstance(group, bool) or not isinstance(group, int) or group < 0:
        raise ValueError(f"say_digits: group must be a whole number >= 0, not {group!r}")
    zh = _is_zh(language)
    said = ["幺" if zh and d == "1" else _ZH_DIGITS[int(d)] if zh else d for d in digits]
    if group > 0:
        chunks = [" ".join(said[i : i + group]) for i in range(0, len(said), group)]
        out = ("，" if zh else ", ").join(chunks)
    else:
        out = " ".join(said)
    return (("加 " if zh else "plus ") + out) if plus else out


def say_number(value, language: str) -> str:
    """105 -> "105" (English TTS reads numerals well) / "一百零五"; 3.5 -> "3.5" / "三点五"."""
    number = _decimal(value, "say_number")
    text = format(number.normalize(), "f") if number != number.to_integral() else str(int(number))
    if not _is_zh(language):
        return text
    whole, _, frac = text.lstrip("-").partition(".")
    said = zh_number(int(whole)) + ("点" + "".join(_ZH_DIGITS[int(d)] for d in frac) if frac else "")
    return ("负" if number < 0 else "") + said


def zh_number(n: int) -> str:
    """A whole number in Chinese numerals: 105 -> 一百零五, 2026 -> 两千零二十六, 10000 -> 一万."""
    if n < 0:
        return "负" + zh_number(-n)
    if n == 0:
        return "零"
    out = ""
    gap = False     # a zero group or leading zero between two spoken parts needs 零
    for group, unit in ((n // 10**8, "亿"), (n // 10**4 % 10**4, "万"), (n % 10**4, "")):
        if group == 0:
            gap = gap or bool(out)
            continue
        if out and (gap or group < 1000):
            out += "零"
        said = zh_number(group) if group >= 10**4 else _zh_section(group)
        out += ("两" if unit and group == 2 else said) + unit
        gap = False
    return out[1:] if out.startswith("一十") else out


def _zh_section(n: int) -> str:
    """1..9999 with 千百十; 两 for 2 before 百/千 (两千), 零 for skipped places (一百零五)."""
    out = ""
    zero = False
    for place, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d = n // place % 10
        if d == 0:
            zero = zero or bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        out += ("两" if d == 2 and unit in ("千", "百") else _ZH_DIGITS[d]) + unit
    return out


def parse_iso(value, what: str = "value"):
    """What APIs send, as a date, time or datetime: "2026-11-03", "14:30", "14:30:05",
    "2026-11-03T14:30:00Z", "2026-11-03T14:30:00.250+08:00", "2026-11-03 14:30"; None if it is none of them."""
    if isinstance(value, dt.date | dt.time):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return dt.date.fromisoformat(text)
        if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?", text):
            return dt.time.fromisoformat(text.zfill(len(text) + (text.index(":") == 1)))
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?", text, re.I):
            return dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what}: {value!r} is not a real date or time") from None
    return None


def say_date(iso, language: str, with_year: bool = False) -> str:
    """"2026-11-03" (or an ISO datetime: its date) -> "Tuesday, November 3rd" / "11月3日星期二";
    with_year adds ", 2026" / "2026年"."""
    day = parse_iso(iso, "say_date")
    if isinstance(day, dt.datetime):
        day = day.date()
    if not isinstance(day, dt.date):
        raise ValueError(f"say_date needs an ISO date like 2026-11-03 or 2026-11-03T14:30:00Z, not {iso!r}")
    if _is_zh(language):
        return f"{f'{day.year}年' if with_year else ''}{day.month}月{day.day}日星期{WEEKDAYS_ZH[day.weekday()]}"
    year = f", {day.year}" if with_year else ""
    return f"{WEEKDAYS_EN[day.weekday()]}, {MONTHS_EN[day.month - 1]} {ordinal(day.day)}{year}"


def ordinal(n: int) -> str:
    """1 -> "1st", 22 -> "22nd", 13 -> "13th"."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def say_time(hhmm, language: str) -> str:
    """"14:30" (or "14:30:00", or an ISO datetime: its clock time as written) -> "2:30 PM" / "下午2点30分";
    "12:00" -> "noon" / "中午12点"; "00:00" -> "midnight" / "凌晨0点"."""
    clock = parse_iso(hhmm, "say_time")
    if isinstance(clock, dt.datetime):
        clock = clock.time()
    if not isinstance(clock, dt.time):
        raise ValueError(f"say_time needs a 24-hour time like 14:30 or 2026-11-24T14:30:00+08:00, not {hhmm!r}")
    hour, minute = clock.hour, clock.minute
    if _is_zh(language):
        period = "凌晨" if hour < 6 else "上午" if hour < 12 else "中午" if hour == 12 else \
            "下午" if hour < 18 else "晚上"
        h12 = hour if hour <= 12 else hour - 12
        return f"{period}{h12}点" + (f"{minute:02d}分" if minute else "")
    if minute == 0 and hour in (0, 12):
        return "midnight" if hour == 0 else "noon"
    h12 = hour % 12 or 12
    return f"{h12}{f':{minute:02d}' if minute else ''} {'AM' if hour < 12 else 'PM'}"


def say_money(value, language: str, currency: str | None = None) -> str:
    """{"amount": "12.50", "currency": "USD"} -> "12 dollars and 50 cents" / "12美元50美分"; CNY: "12元5角"."""
    if isinstance(value, dict):
        if "amount" not in value:
            raise ValueError(f"say_money needs {{'amount': ..., 'currency': ...}}, not {value!r}")
        currency = value.get("currency") or currency
        value = value["amount"]
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,3}(,\d{3})+(\.\d+)?\s*", value):
        value = value.replace(",", "")   # "1,234.50", as some APIs send amounts
    amount = _decimal(value, "say_money")
    if amount < 0:
        raise ValueError(f"say_money: negative amount {value!r}")
    code = (currency or default_currency(language)).upper()
    cents_total = int((amount * 100).to_integral_value())
    whole, cents = divmod(cents_total, 100)
    names = CURRENCIES.get(code)
    if _is_zh(language):
        if code == "CNY":
            jiao, fen = divmod(cents, 10)
            out = f"{whole}元" if whole or not cents else ""
            out += f"{jiao}角" if jiao else ("零" if fen and whole else "")
            return out + (f"{fen}分" if fen else "")
        unit, minor = (names[2], names[3]) if names else (code, None)
        if cents and minor:
            return (f"{whole}{unit}" if whole else "") + f"{cents}{minor}"
        return f"{whole}.{cents:02d}{unit}" if cents else f"{whole}{unit}"
    if names is None:
        return f"{whole}.{cents:02d} {code}" if cents else f"{whole} {code}"
    (one, many), minor = names[0], names[1]
    if cents and minor is None:
        return f"{whole}.{cents:02d} {many}"
    major = f"{whole} {one if whole == 1 else many}"
    if not cents:
        return major
    small = f"{cents} {minor[0] if cents == 1 else minor[1]}" if minor else ""
    return f"{major} and {small}" if whole else small


def mask(value, keep: int = 4) -> str:
    """"4111111111111111" -> "************1111" for logs. The last `keep` characters show only when at
    least as many stay hidden, so short secrets (a PIN) are masked whole."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise ValueError(f"mask: keep must be a whole number >= 0, not {keep!r}")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"mask needs a string, not {type(value).__name__}")
    text = str(value)
    shown = keep if keep and len(text) >= 2 * keep else 0
    return "*" * (len(text) - shown) + (text[-shown:] if shown else "")


def _decimal(value, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError(f"{what} needs a number, not {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{what} needs a number, not {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"{what} needs a finite number, not {value!r}")
    return number


def _is_zh(language: str) -> bool:
    return is_mandarin(str(language))
