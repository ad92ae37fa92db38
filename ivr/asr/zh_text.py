"""Whisper's Mandarin made the way the flows read it: simplified, no spaces, no punctuation.

Multilingual whisper often writes traditional characters (訂單 for 订单), full-width or
ASCII punctuation, and spaces between phrases or digits ("4 8 1"). Flows, slots and the
sound-alike matcher expect simplified characters and parse 四八一 and 481 alike
(ivr.flow.numbers), so the text is converted with OpenCC (t2s), punctuation and spaces are
dropped (a space stays between two Latin words: "VIP 会员" -> "VIP会员", "ok ok" kept), and
digit group separators go ("481,516" -> "481516").
"""

import functools
import re
import unicodedata

# Tells whisper which script to write: with it, base writes simplified far more often.
ZH_PROMPT = "以下是普通话的句子。"


@functools.cache
def _converter(config: str):
    import opencc

    return opencc.OpenCC(config)


def to_simplified(text: str) -> str:
    return _converter("t2s").convert(text)


def to_traditional(text: str) -> str:
    """Taiwan standard characters (OpenCC s2tw), for zh-TW/HK flows."""
    return _converter("s2tw").convert(text)


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS" and ch not in "+*#%"


def clean_zh(text: str, simplified: bool = True) -> str:
    """'請問，我的訂單 4 8 1,516 到哪了？' -> '请问我的订单481516到哪了' (traditional characters
    with `simplified=False`, for flows written in them)."""
    text = unicodedata.normalize("NFKC", text)
    text = to_simplified(text) if simplified else to_traditional(text)
    text = "".join(" " if _is_punct(ch) else ch for ch in text)
    words = text.split()
    out = ""
    for word in words:
        if out and re.match(r"[A-Za-z]", word) and re.search(r"[A-Za-z]$", out):
            out += " "
        out += word
    return out


def zh_prompt(phrases: tuple[str, ...], max_chars: int) -> str:
    """The decoder prompt: the script hint, then the phrases, the step's own last.

    Phrases come step first, globals after; the prompt takes them in that order until
    `max_chars`, then writes them reversed, so the step's own answers sit right before the
    decoded text, where they weigh most. On 16 espeak-ng Mandarin answers through a phone line
    (yes/no, order numbers, menu choices, globals; the retail flow's globals in every prompt),
    reversed: 8, 11, 10 right within 100, 160, 240 characters; in the given order 6, 8, 8.
    One-character phrases (the digits a slot lists for vosk's grammar, "是", "对") are left
    out: as a list "零，一，幺，..." they made base drop and invent digits (0 of 5 numbers
    right, 2 of 5 with "零一幺二两三四五六七八九" alone)."""
    taken: list[str] = []
    size = len(ZH_PROMPT)
    for phrase in dict.fromkeys(p.strip() for p in phrases if len(p.strip()) > 1):
        if size + len(phrase) + 1 > max_chars:
            break
        taken.append(phrase)
        size += len(phrase) + 1
    return ZH_PROMPT + "".join(p + "，" for p in reversed(taken))
