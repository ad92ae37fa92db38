"""Log records without secrets: card numbers and the secrets of every call in progress.

`install_log_redaction` makes every log record of the process pass `redact_live` as it is
made (a log-record factory), so it holds for any handler: console, file, pytest's capture, a
host application's. Log lines may not say which call they are about, so the secrets of every
open `Redactor` apply.
"""

import logging
import threading
import weakref

from ivr.privacy.digits import redact_text

_live: weakref.WeakSet = weakref.WeakSet()    # open Redactors (ivr.privacy)
_live_lock = threading.Lock()
_generation = 0                 # bumped when a live redactor opens, closes or learns a secret
_union: tuple = (-1, frozenset(), ())


def add_live(redactor) -> None:
    install_log_redaction()
    with _live_lock:
        _live.add(redactor)
    changed()


def drop_live(redactor) -> None:
    with _live_lock:
        _live.discard(redactor)
    changed()


def changed() -> None:
    """A live redactor's secrets changed: the union is made again at its next use."""
    global _generation
    _generation += 1


def secrets_lock() -> threading.Lock:
    """Held while a redactor adds a secret, so the union never reads a set being changed."""
    return _live_lock


def live_secrets() -> tuple[frozenset, tuple]:
    """The secrets and literals of every call in progress (made once per change, not per line)."""
    global _union
    generation, secrets, literals = _union
    if generation == _generation:
        return secrets, literals
    generation = _generation
    with _live_lock:    # redactors add secrets under this lock too (log lines come from any thread)
        live = list(_live)
        secrets = frozenset().union(*(r.secrets for r in live))
        literals = tuple(frozenset().union(*(r.literals for r in live)))
    _union = (generation, secrets, literals)
    return secrets, literals


def redact_live(text: str) -> str:
    """Pattern rules plus the secrets of every call in progress (for log lines, which may not
    say which call they are about)."""
    return redact_text(text, *live_secrets())


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
