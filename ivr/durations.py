"""The one reader of durations in flows, conversation-test fakes and the service config.

A duration always carries its unit: `500ms`, `2s`, `1.5s`, `1m` (or `1min`), `1h`. A bare
number is refused: `timeout: 2` used to mean 2 ms, so every HTTP call "timed out". Only `0`
may stand alone (zero is zero in any unit).
"""

import math
import re

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)\s*")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000}
FORMS = "500ms, 2s, 1.5s, 1m or 1h"


class DurationError(ValueError):
    """A value that is not a duration; `hint` says what to write instead."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(f"{message} ({hint})")
        self.message = message
        self.hint = hint


def parse_duration_ms(value: object) -> int:
    """"500ms", "2s", "1.5s", "1m", "1min", "1h" -> milliseconds; a bare number other than 0 is refused."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value == 0:
            return 0
        if not math.isfinite(value) or value < 0:
            raise DurationError(f"{value!r} is not a duration", f"write e.g. {FORMS}")
        shown = int(value) if float(value).is_integer() else value
        raise DurationError(f"the duration {shown} has no unit",
                            f"write {shown}s for seconds or {shown}ms for milliseconds")
    m = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
            return parse_duration_ms(float(value))
        raise DurationError(f"{value!r} is not a duration", f"write e.g. {FORMS}")
    return round(float(m[1]) * _UNIT_MS[m[2]])
