"""Finding numbers in text, however written, and masking card numbers and known secrets in it.

A number is a run of parts (numerals, digit words, "double one", Chinese digits) separated by
at most a few spaces, commas, dots, dashes or slashes; a digit string glued to letters is an
identifier, not a number. Pure functions; `ivr.privacy` builds on them.
"""

import re
from collections.abc import Iterable

from ivr.flow import sayas
from ivr.flow.numbers import HOMOPHONES, MULTIPLIERS, UNITS, ZERO_LETTERS, ZH_DIGITS

CARD_DIGITS = (13, 19)          # ISO/IEC 7812 primary account numbers
MIN_SECRET_DIGITS = 3           # shorter digit answers (a menu key) are not remembered as secrets
MIN_LITERAL_CHARS = 3           # non-digit secrets (a sensitive text slot) of at least this length
DIGIT_SLOT_TYPES = frozenset({"digits", "phone", "number"})

_TOKEN = re.compile(r"\d+|[^\W\d_]+", re.UNICODE)
_GAP = re.compile(r"[\s,.\-–—/，、]{0,3}")      # what may stand between the parts of one number
_ZH = frozenset(ZH_DIGITS)
_WORD_DIGITS = {**{k: str(v) for k, v in UNITS.items()}, **{z: "0" for z in ZERO_LETTERS}}
_WEAK = frozenset(HOMOPHONES) | ZERO_LETTERS     # count only between two digits
_NUMBERISH = re.compile(
    r"\d|[零〇一幺二两三四五六七八九]|\b(?:" + "|".join(sorted({*UNITS, *MULTIPLIERS, *HOMOPHONES, *ZERO_LETTERS}))
    + r")\b", re.IGNORECASE)


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number passes."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_card_number(digits: str) -> bool:
    return CARD_DIGITS[0] <= len(digits) <= CARD_DIGITS[1] and luhn_ok(digits)


# ---- finding numbers in text ----------------------------------------------------------


def _units(text: str) -> list[tuple[int, int, str, str]]:
    """Digit-bearing tokens as (start, end, digits, kind); kind: num | word | weak | mult | other.
    Chinese digit characters are one token each."""
    out = []
    for m in _TOKEN.finditer(text):
        tok, start = m.group(), m.start()
        if tok[0].isdigit():
            before = text[start - 1] if start else ""
            after = text[m.end()] if m.end() < len(text) else ""
            glued = (before.isascii() and before.isalpha()) or (after.isascii() and after.isalpha())
            out.append((start, m.end(), tok, "other" if glued or not tok.isascii() else "num"))
            continue
        if not tok.isascii() and any(ch in _ZH for ch in tok):
            for k, ch in enumerate(tok):
                if ch in _ZH:
                    out.append((start + k, start + k + 1, str(ZH_DIGITS[ch]), "num"))
                else:
                    out.append((start + k, start + k + 1, "", "other"))
            continue
        low = tok.lower()
        if low in _WEAK:
            out.append((start, m.end(), _WORD_DIGITS.get(HOMOPHONES.get(low, low), "0"), "weak"))
        elif low in _WORD_DIGITS:
            out.append((start, m.end(), _WORD_DIGITS[low], "word"))
        elif low in MULTIPLIERS:
            out.append((start, m.end(), str(MULTIPLIERS[low]), "mult"))
        else:
            out.append((start, m.end(), "", "other"))
    return out


def digit_runs(text: str) -> list[list[tuple[int, int, str]]]:
    """Numbers in `text`, each a list of parts (start, end, digits) in order: "4111 1111",
    "four one one one", "double one" (one part "11"), "四幺幺幺". Parts of one run are separated
    by at most a few spaces, commas, dots, dashes or slashes."""
    toks = _units(text)
    runs: list[list[tuple[int, int, str]]] = []
    run: list[tuple[int, int, str]] = []
    pending: list[tuple[int, int, str]] = []     # weak words waiting for a digit after them
    last_end = -1
    i = 0
    while i < len(toks):
        start, end, digits, kind = toks[i]
        joins = last_end >= 0 and _GAP.fullmatch(text, last_end, start) is not None
        if kind == "mult" and i + 1 < len(toks) and toks[i + 1][3] in ("word", "num", "weak") \
                and _GAP.fullmatch(text, end, toks[i + 1][0]) and len(toks[i + 1][2]) == 1:
            part = (start, toks[i + 1][1], toks[i + 1][2] * int(digits))
            kind, i = "num", i + 1
        else:
            part = (start, end, digits)
        if kind in ("num", "word"):
            if not (joins and (run or pending)):
                if run:
                    runs.append(run)
                run, pending = [], []
            run += [*pending, part]
            pending = []
            last_end = part[1]
        elif kind == "weak" and ((run and joins) or not (run or pending)):
            if not run:     # "for one one ...": a weak word may open a number too
                run, pending, last_end = [], [], -1
            pending.append(part)
            last_end = part[1]
        else:
            if run:
                runs.append(run)
            run, pending, last_end = [], [], -1
        i += 1
    if run:
        runs.append(run)
    return runs


def _phone_before(text: str, start: int) -> bool:
    head = text[max(0, start - 6):start].rstrip().lower()
    return head.endswith("+") or head.endswith("plus")


def _spans(text: str, secrets: frozenset[str] | set[str], cards: bool) -> list[tuple[int, int, str]]:
    """(start, end, digits) of each stretch to mask: a card number or a known secret."""
    found: list[tuple[int, int, str]] = []
    longest = max((len(s) for s in secrets), default=0)
    limit = max(longest, CARD_DIGITS[1] if cards else 0)
    for run in digit_runs(text):
        phone = _phone_before(text, run[0][0])
        marked = [False] * len(run)
        for i in range(len(run)):
            acc = ""
            for j in range(i, len(run)):
                acc += run[j][2]
                if len(acc) > limit:
                    break
                if acc in secrets or (cards and not phone and is_card_number(acc)):
                    marked[i:j + 1] = [True] * (j + 1 - i)
        i = 0
        while i < len(run):
            if not marked[i]:
                i += 1
                continue
            j = i
            while j + 1 < len(run) and marked[j + 1]:
                j += 1
            found.append((run[i][0], run[j][1], "".join(p[2] for p in run[i:j + 1])))
            i = j + 1
    return found


def _replace(text: str, spans: list[tuple[int, int, str]]) -> str:
    for start, end, digits in sorted(spans, reverse=True):
        text = text[:start] + sayas.mask(digits) + text[end:]
    return text


def redact_text(text: str, secrets: frozenset[str] | set[str] = frozenset(),
                 literals: Iterable[str] = ()) -> str:
    for literal in sorted(literals, key=len, reverse=True):   # as whole words: "Ann" is not in "Annual"
        if literal.lower() in text.lower():
            text = re.sub(rf"(?<!\w){re.escape(literal)}(?!\w)", sayas.mask(literal, 0), text, flags=re.IGNORECASE)
    if not _NUMBERISH.search(text):
        return text
    text = _replace(text, _spans(text, secrets, cards=True))
    for secret in sorted(secrets, key=len, reverse=True):   # glued to letters: "card4111111111111111"
        if len(secret) >= 6 and secret in text:
            text = text.replace(secret, sayas.mask(secret))
    return text


def mask_input(text: str, min_digits: int = 0) -> str:
    """Caller input at a step collecting a sensitive slot: every number in it masked ("my pin is
    1234" -> "my pin is ****"); input with no number at all is masked whole. With `min_digits`,
    only numbers that long are masked and other input stays (an answer to "Is that right?")."""
    if not isinstance(text, str) or not text:
        return text
    spans = [(run[0][0], run[-1][1], "".join(p[2] for p in run)) for run in digit_runs(text)]
    spans = [s for s in spans if len(s[2]) >= min_digits]
    return _replace(text, spans) if spans or min_digits else sayas.mask(text, 0)
