"""Redaction in one place: card numbers, PINs and sensitive slot values out of everything kept.

Everything the service stores, logs, shows or sends to an agent passes through here first:
call events as the call loop emits them (`Call._emit` -> `Redactor.event`) and again at the
hub's entrance (`redact_event`), the agent's transfer reason/context (`Interpreter._to_agent`),
every log record (`install_log_redaction`), HTTP failure details, `ivr test` / `ivr chat` /
`ivr replay` output. Flow authors mark a slot `sensitive: true` and do nothing else.

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
import re
from collections.abc import Iterable

from ivr.callevents import KeysPressed, TurnEnded
from ivr.flow import sayas
from ivr.privacy.digits import (
    CARD_DIGITS,
    DIGIT_SLOT_TYPES,
    MIN_LITERAL_CHARS,
    MIN_SECRET_DIGITS,
    digit_runs,
    is_card_number,
    luhn_ok,
    mask_input,
    redact_text,
)
from ivr.privacy.logs import (
    RedactingFilter,
    add_live,
    changed,
    drop_live,
    install_log_redaction,
    live_secrets,
    redact_live,
    redact_record,
    secrets_lock,
)

__all__ = ["CARD_DIGITS", "RedactingFilter", "Redactor", "digit_runs", "install_log_redaction", "is_card_number",
           "luhn_ok", "mask_answer", "mask_input", "redact", "redact_event", "redact_live", "redact_record",
           "redact_value", "redact_with_slots"]


def redact(text: str) -> str:
    """Pattern rules only (no call's secrets): card numbers in any text."""
    return redact_text(text) if isinstance(text, str) else text


def redact_value(value):
    """`redact` applied to every string in a JSON-like value or a dataclass."""
    return _walk(value, redact)


def _walk(value, fn):
    if value is None or isinstance(value, int | float):
        return value
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


def mask_answer(text: str, slot_type: str) -> str:
    """Input given for a sensitive slot of `slot_type`: the numbers in it for a number slot (a PIN,
    a card: "my pin is ****"), all of it for any other type (a date of birth, a password)."""
    if slot_type in DIGIT_SLOT_TYPES or not isinstance(text, str):
        return mask_input(text)
    return sayas.mask(text, 0) if text else text


# ---- one call's secrets ---------------------------------------------------------------


class Redactor:
    """What must not leave one call: pattern rules plus the values of its sensitive slots.

    `sensitive_steps` maps a step collecting a sensitive slot to the slot's type; input heard or
    keyed there is masked and remembered. Thread-safe enough for its use: secrets only grow."""

    def __init__(self, sensitive_steps: dict[str, str] | None = None, *, live: bool = True) -> None:
        """`live`: its secrets also apply to every log line while it is open (see `redact_live`)."""
        self.sensitive_steps = dict(sensitive_steps or {})
        self.secrets: set[str] = set()      # digit strings
        self.literals: set[str] = set()     # other values, matched case-insensitively
        self._frozen: tuple | None = None   # (secrets, literals) as redact_text takes them
        if live:
            add_live(self)      # a live call's secrets are kept out of every log line (installs it)

    @classmethod
    def for_flow(cls, flow) -> "Redactor":
        """A redactor for a call of `flow` (an `ivr.flow.model.Flow`)."""
        steps = {name: step.collect.slot.type for name, step in flow.steps.items()
                 if step.collect is not None and step.collect.sensitive}
        return cls(steps)

    def close(self) -> None:
        """The call is over: its secrets no longer apply to log lines of other calls."""
        drop_live(self)

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
                self._secret(digits)
        covered = sum(p[1] - p[0] for run in runs for p in run)
        if not _nested and len(text) >= MIN_LITERAL_CHARS and covered < len(re.sub(r"[\W_]", "", text)):
            with secrets_lock():
                self.literals.add(text)
            self._frozen = None
            changed()

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
                self._secret(digits)
        if answer:
            return self.text(mask_input(text, min_digits=2))
        return mask_answer(text, self.sensitive_steps[step])

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
        if self._frozen is None:
            self._frozen = (frozenset(self.secrets), tuple(self.literals))
        return redact_text(text, *self._frozen)

    def _secret(self, digits: str) -> None:
        if digits not in self.secrets:
            with secrets_lock():
                self.secrets.add(digits)
            self._frozen = None
            changed()

    def value(self, value):
        """Every string in a JSON-like value or a (frozen) dataclass, redacted; same shape back."""
        return _walk(value, self.text)


def redact_with_slots(value, slots: dict, names: Iterable[str]):
    """`value` (text or JSON-like) with the named slots' values and card numbers masked: what an
    agent's screen or a transfer header may carry."""
    redactor = Redactor(live=False)
    redactor.learn_slots(slots, names)
    return redactor.value(value)


def redact_event(event):
    """The hub's entrance filter: every string of any call event through the pattern rules and
    the secrets of every call in progress. (Each call's loop has already passed its own events
    through its `Redactor.event`; this also covers events made outside a call loop.)"""
    secrets, literals = live_secrets()     # once per event, not per string
    return _walk(event, lambda text: redact_text(text, secrets, literals))
