"""Redaction in one place: card numbers, PINs and sensitive slot values out of everything kept.

Everything the service stores, logs, shows or sends to an agent passes through here first:
call events at the hub's entrance, the agent's transfer reason/context, every log record
(`install_log_redaction`), `ivr test` / `ivr chat` / `ivr replay` output. Flow authors mark a
slot `sensitive: true` and do nothing else.

Two kinds of rules:
- **Pattern rules**, for any text: a Luhn-valid run of 13-19 digits is a card number, whether
  keyed, written with spaces or dashes ("4111 1111-1111 1111") or spelled out by the recognizer
  ("four one one one ...", "double one", 四幺幺幺...). A run after "+" or "plus" is a phone number
  and stays. Order numbers, dates, amounts stay.
- **The call's secrets** (`Redactor`): values of sensitive slots as collected (the normalised
  value and the raw heard/keyed string), learned as the call goes. Digit secrets (3+ digits) are
  found again however they are written: "4 1 1 1, 1 1 1 1" in a read-back prompt, "4111-1111" in
  a URL. Input at a step collecting a sensitive slot is masked whatever it is (a PIN "1234").

Masks come from `sayas.mask`: "************1111" (the last 4 show only when 8+ stay hidden, so a
PIN is masked whole). Digit runs are found token by token: a digit string glued to letters
("CA4111...") is an identifier, not a number, except for a known secret of 6+ digits.
"""

import dataclasses
import logging
import re
import threading
import weakref
from collections.abc import Iterable

from ivr.callevents import KeysPressed, TurnEnded
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


def _redact_text(text: str, secrets: frozenset[str] | set[str] = frozenset(),
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


def redact(text: str) -> str:
    """Pattern rules only (no call's secrets): card numbers in any text."""
    return _redact_text(text) if isinstance(text, str) else text


def redact_value(value):
    """`redact` applied to every string in a JSON-like value or a dataclass."""
    return _walk(value, redact)


def _walk(value, fn):
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {(fn(k) if isinstance(k, str) else k): _walk(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, fn) for v in value]
    if isinstance(value, tuple):
        items = [_walk(v, fn) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: _walk(getattr(value, f.name), fn) for f in dataclasses.fields(value) if f.init}
        changes = {k: v for k, v in changes.items() if v is not getattr(value, k)}
        return dataclasses.replace(value, **changes) if changes else value
    return value


def mask_input(text: str, min_digits: int = 0) -> str:
    """Caller input at a step collecting a sensitive slot: every number in it masked ("my pin is
    1234" -> "my pin is ****"); input with no number at all is masked whole. With `min_digits`,
    only numbers that long are masked and other input stays (an answer to "Is that right?")."""
    if not isinstance(text, str) or not text:
        return text
    spans = [(run[0][0], run[-1][1], "".join(p[2] for p in run)) for run in digit_runs(text)]
    spans = [s for s in spans if len(s[2]) >= min_digits]
    return _replace(text, spans) if spans or min_digits else sayas.mask(text, 0)


# ---- one call's secrets ---------------------------------------------------------------

_live: "weakref.WeakSet[Redactor]" = weakref.WeakSet()
_live_lock = threading.Lock()


class Redactor:
    """What must not leave one call: pattern rules plus the values of its sensitive slots.

    `sensitive_steps` maps a step collecting a sensitive slot to the slot's type; input heard or
    keyed there is masked and remembered. Thread-safe enough for its use: secrets only grow."""

    def __init__(self, sensitive_steps: dict[str, str] | None = None, *, live: bool = True) -> None:
        """`live`: its secrets also apply to every log line while it is open (see `redact_live`)."""
        self.sensitive_steps = dict(sensitive_steps or {})
        self.secrets: set[str] = set()      # digit strings
        self.literals: set[str] = set()     # other values, matched case-insensitively
        if live:
            install_log_redaction()     # a live call's secrets are kept out of every log line
            with _live_lock:
                _live.add(self)

    @classmethod
    def for_flow(cls, flow) -> "Redactor":
        """A redactor for a call of `flow` (an `ivr.flow.model.Flow`)."""
        steps = {name: step.collect.slot.type for name, step in flow.steps.items()
                 if step.collect is not None and step.collect.sensitive}
        return cls(steps)

    def close(self) -> None:
        """The call is over: its secrets no longer apply to log lines of other calls."""
        with _live_lock:
            _live.discard(self)

    # -- learning --

    def learn(self, value, _nested: bool = False) -> None:
        """Remember a sensitive value (a slot's value, or the raw text/keys it came from). Inside
        a structured value ({amount, currency}) only its numbers are secrets, not words like "USD"."""
        if isinstance(value, dict | list | tuple):
            for item in (value.values() if isinstance(value, dict) else value):
                self.learn(item, True)
            return
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return
        text = str(value).strip()
        runs = digit_runs(text)
        for run in runs:
            digits = "".join(p[2] for p in run)
            if len(digits) >= MIN_SECRET_DIGITS:
                self.secrets.add(digits)
        covered = sum(p[1] - p[0] for run in runs for p in run)
        if not _nested and len(text) >= MIN_LITERAL_CHARS and covered < len(re.sub(r"[\W_]", "", text)):
            self.literals.add(text)

    def learn_slots(self, slots: dict, names: Iterable[str]) -> None:
        """Remember the values of the named (sensitive) slots."""
        for name in names:
            if name in slots:
                self.learn(slots[name])

    def input_at(self, step: str | None, text: str, answer: bool = False) -> str:
        """Caller input (speech or keys) at `step`, as it may be kept: at a sensitive step the
        numbers in it are learned and masked (the whole input if the slot is not a number).
        `answer`: it answers a yes/no question (a read-back): its words stay, numbers are masked."""
        if not isinstance(text, str) or step not in self.sensitive_steps:
            return self.text(text)
        for run in digit_runs(text):    # a PIN said or keyed; not the words ("yes" to a read-back)
            digits = "".join(p[2] for p in run)
            if len(digits) >= MIN_SECRET_DIGITS:
                self.secrets.add(digits)
        if answer:
            return self.text(mask_input(text, min_digits=2))
        if self.sensitive_steps[step] not in DIGIT_SLOT_TYPES:
            return sayas.mask(text, 0) if text else text
        return mask_input(text)

    def event(self, event):
        """A call event (`ivr.callevents`) as it may be kept: input at a sensitive step masked
        (a turn's `heard`, each key pressed), then every string in it redacted."""
        step = getattr(event, "step", None)
        if isinstance(event, TurnEnded) and event.kind in ("speech", "dtmf") and step in self.sensitive_steps:
            answer = (event.match or {}).get("via") == "confirm"    # "yes", key 1: only numbers masked
            event = dataclasses.replace(event, heard=self.input_at(step, event.heard, answer))
        elif isinstance(event, KeysPressed) and step in self.sensitive_steps:
            event = dataclasses.replace(event, keys=mask_input(event.keys))
        return self.value(event)

    # -- applying --

    def text(self, text: str) -> str:
        if not isinstance(text, str):
            return text
        return _redact_text(text, frozenset(self.secrets), tuple(self.literals))

    def value(self, value):
        """Every string in a JSON-like value or a (frozen) dataclass, redacted; same shape back."""
        return _walk(value, self.text)


def redact_with_slots(value, slots: dict, names: Iterable[str]):
    """`value` (text or JSON-like) with the named slots' values and card numbers masked: what an
    agent's screen or a transfer header may carry."""
    redactor = Redactor(live=False)
    redactor.learn_slots(slots, names)
    return redactor.value(value)


def redact_live(text: str) -> str:
    """Pattern rules plus the secrets of every call in progress (for log lines, which may not
    say which call they are about)."""
    with _live_lock:
        live = list(_live)
    secrets: set[str] = set()
    literals: set[str] = set()
    for r in live:
        secrets |= r.secrets
        literals |= r.literals
    return _redact_text(text, frozenset(secrets), tuple(literals))


def redact_event(event):
    """The hub's entrance filter: every string of any call event through the pattern rules and
    the secrets of every call in progress. (Each call's loop has already passed its own events
    through its `Redactor.event`; this also covers events made outside a call loop.)"""
    return _walk(event, redact_live)


# ---- logging --------------------------------------------------------------------------

_installed = False


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and traceback) with `redact_live`. Attach to a handler, or
    use `install_log_redaction` to cover every handler at once."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    if getattr(record, "_ivr_redacted", False):
        return record
    try:
        message = record.getMessage()
    except Exception:   # a bad format string: logging reports it itself later
        return record
    record.msg, record.args = redact_live(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact_live(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact_live(record.stack_info)
    record._ivr_redacted = True
    return record


def install_log_redaction() -> None:
    """Every log record made in this process is redacted as it is made, whichever handler
    (console, file, pytest's capture, a host application's) writes it. Idempotent."""
    global _installed
    if _installed:
        return
    make = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        return redact_record(make(*args, **kwargs))

    logging.setLogRecordFactory(factory)
    _installed = True
