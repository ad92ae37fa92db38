"""A caller who corrects themselves means what follows the correction: "returns no wait cancel it", "no wait yes yes
that's right", 我要退货 不对 我是想问我那个包裹咋还没到, 查余额 不是 我要交话费.

The matcher weighs the whole sentence, so the word said first ("returns", 退货, "no") can win. `after` finds the last
correction marker ("no wait", "sorry i mean", "scratch that", 不对, 我是说, 说错了 ...) and gives what follows it;
`corrected` ranks that too and takes it when it names an answer with confidence (a flow's accept threshold) and a
different one than the whole sentence did. Otherwise the whole sentence stands: "where's my parcel i mean it's been a
week" keeps track_order (no correction marker), and at a yes/no step "不是 我要查余额" stays a no: a correction
switches to a yes or a no only when what follows it is nothing but that short answer, said apart from the marker
("no wait yes that's right", 不是 哦不对 是的), else only to another request (不是我要转人工: agent). A pure function of
the words; hand-written (no library marks self-repairs in a transcript: disfluency taggers want a trained model).
"""

import re
from collections.abc import Callable
from dataclasses import replace

from ivr.flow.nlu import DEFAULT_THRESHOLD as ACCEPT
from ivr.flow.nlu import FILLERS, WIDE
from ivr.flow.patterns import normalize

# Word sequences after which an English-speaking caller says what they meant instead (normalised: lower case, no
# apostrophes). "no" alone is not one (it is an answer), nor "i mean" alone (callers mostly go on to explain: "a refund
# i mean take them back"); "actually" alone is ("actually i want to cancel").
MARKERS_EN = tuple(tuple(m.split()) for m in (
    "no wait", "wait no", "no sorry", "sorry no", "sorry i mean", "sorry i meant", "no no",
    "scratch that", "or rather", "actually", "hang on no", "oh no", "no hold on", "let me rephrase", "not that",
    "my mistake", "correction"))
# ... and in Mandarin (substrings: no spaces between words)
MARKERS_ZH = ("不对", "不是", "哦不", "我是说", "我的意思是", "说错了", "搞错了", "应该是", "更正一下", "算了")
MIN_TAIL_CHARS = 2     # a Mandarin tail shorter than this says nothing
# Tags a caller ends a sentence with ("no it's not that eh", "not that one mate"): a tail of these (and fillers) names
# nothing, though "eh" alone asks to hear the prompt again.
TAGS_EN = frozenset({"eh", "mate", "love", "darling", "pal", "innit", "though"})


def after(text: str) -> tuple[str, str] | None:
    """(marker, what follows the last correction marker in `text`), or None when there is none or nothing after it.
    The text as a recognizer writes it ("No, wait. Cancel it."): normalised first."""
    text = normalize(text)
    if WIDE.search(text):
        best = max(((text.rfind(m) + len(m), m) for m in MARKERS_ZH if m in text), default=None)
        if best is None:
            return None
        tail = text[best[0]:].strip()
        if best[1] == "不是":           # 不是退货 是你们多扣我钱了: "not X, (it) is Y" means Y
            but = tail.find("是", 1)
            starts = but > 0 and (tail[but - 1].isspace() or (but <= 3 and tail[but - 1] not in "就还也都我你他她它的"))
            if starts and sum(not ch.isspace() and ch not in FILLERS for ch in tail[but + 1:]) >= MIN_TAIL_CHARS:
                tail = tail[but + 1:].strip()   # not 不是 我的手机是坏了 (its 是 is the sentence's own)
        said = [ch for ch in tail if not ch.isspace() and ch not in FILLERS]
        return (best[1], tail) if len(said) >= MIN_TAIL_CHARS else None
    words = text.split()
    end, marker = -1, ""
    for m in MARKERS_EN:
        for i in range(len(words) - len(m), -1, -1):
            if tuple(words[i:i + len(m)]) == m:
                if i + len(m) > end:
                    end, marker = i + len(m), " ".join(m)
                break
    tail = words[end:] if end >= 0 else []
    if not any(w not in FILLERS and w not in TAGS_EN for w in tail):
        return None
    return marker, " ".join(tail)


def corrected(text: str, ranked: list, rank: Callable[[str], list], never: frozenset[str] = frozenset(),
              answer: Callable[[str], bool] = lambda tail: False,
              repeated: Callable[[str, str, str], bool] = lambda head, tail, name: False) -> list:
    """`ranked` (the whole sentence's candidates, best first), or the candidates of what follows the caller's last
    correction (`rank(tail)`) when those take an answer with confidence, another one than `ranked`'s best or
    the same one `ranked` was unsure of; their signal says so. A correction switches to an answer in `never` (a yes
    or a no: the markers 不是, 不对, "no wait" are themselves a no, and a yes heard in a request after them, 不是
    我要查余额, is none) only when the tail is nothing but that short answer (`answer(tail)`: "no wait yes yes that's
    right", 不是 哦不对 是的 是这个), said apart from the marker (不是我要的 is one no). Nor does it switch away from an
    answer the whole sentence took with confidence when the tail names its answer only with words said before the
    marker (`repeated(head, tail, name)`: "cancel an order no wait two orders" corrects how many, not the request)."""
    found = after(text)
    if not found:
        return ranked
    marker, tail = found
    again = rank(tail)
    said = normalize(text)
    apart = re.search(re.escape(marker) + r"\s+" + re.escape(tail) + "$", said)   # 不是我要的: one clause
    if (not again or again[0].score < ACCEPT or (again[0].name in never and not (apart and answer(tail)))
            or (ranked and ranked[0].name == again[0].name and ranked[0].score >= ACCEPT)):
        return ranked       # (the whole sentence unsure of the answer the tail is sure of: the tail's, and why)
    if ranked and ranked[0].score >= ACCEPT and repeated(said[: said.rfind(tail)], tail, again[0].name):
        return ranked
    if ranked and ranked[0].name in never and ranked[0].score >= ACCEPT and again[0].words < 1.0:
        return ranked       # "no not that at all sorry": a sure no, then no request said word for word (不是我要转人工)
    return [replace(c, signal=f"{c.signal}, after the correction '{marker}'") for c in again]
