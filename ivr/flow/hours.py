"""Business hours with a time zone and public holidays, for conditions like `{if: "open", ...}`.

Pure: the caller of `status()` passes the moment (the call's start), so replays and
conversation tests choose the time and get the same answer every run.

    hours:
      timezone: Asia/Shanghai
      open: {mon-fri: "09:00-18:00", sat: "10:00-16:00"}
      holidays: CN                # a country (python-holidays), or a list of dates
      closed: ["2026-12-24"]      # extra closed days
"""

from dataclasses import dataclass
from datetime import date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class HoursError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class HoursStatus:
    open: bool
    holiday: str          # the holiday's name, "" on a normal day
    local: datetime       # the moment in the flow's time zone


@dataclass(frozen=True, slots=True)
class BusinessHours:
    timezone: str
    weekly: tuple[tuple[tuple[time, time], ...], ...]    # per weekday (Monday first): open ranges
    country: str | None = None
    subdivision: str | None = None
    closed: frozenset[date] = frozenset()
    language: str | None = None   # holiday names in this language (a canonical tag) when the calendar has it

    def status(self, at: datetime) -> HoursStatus:
        local = at.astimezone(ZoneInfo(self.timezone))
        holiday = self.holiday(local.date())
        ranges = self.weekly[local.weekday()]
        now = local.time().replace(tzinfo=None)
        is_open = not holiday and any(start <= now < end for start, end in ranges)
        return HoursStatus(is_open, holiday, local)

    def holiday(self, day: date) -> str:
        if day in self.closed:
            return "closed"
        if self.country:
            import holidays  # imported when used: loading its country tables costs ~0.1 s

            found = holidays.country_holidays(self.country, subdiv=self.subdivision, years=day.year,
                                              language=_holiday_language(self.country, self.language)).get(day)
            if found:
                return str(found)
        return ""


@lru_cache(maxsize=64)
def _holiday_language(country: str, language: str | None) -> str | None:
    """python-holidays' name for `language` ("zh-CN" -> "zh_CN") when the country's calendar has
    names in it, else None (its own default language): CN has zh_CN/zh_TW/en_US, US only en_US."""
    if not language:
        return None
    import holidays

    known = getattr(holidays.country_holidays(country), "supported_languages", ()) or ()
    wanted = language.replace("-", "_")
    base = wanted.split("_")[0]
    return wanted if wanted in known else next((k for k in known if k.split("_")[0] == base), None)


def parse_hours(spec: dict) -> BusinessHours:
    """Build from the flow's `hours:` mapping; HoursError says what is wrong."""
    unknown = set(spec) - {"timezone", "open", "holidays", "subdivision", "closed"}
    if unknown:
        raise HoursError(f"unknown key '{sorted(unknown)[0]}' in hours (allowed: timezone, open, holidays, "
                         "subdivision, closed)")
    tz = str(spec.get("timezone") or "UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise HoursError(f"unknown time zone '{tz}' (use an IANA name like Asia/Shanghai)") from exc
    weekly: list[list[tuple[time, time]]] = [[] for _ in DAYS]
    opening = spec.get("open") or {}
    if not isinstance(opening, dict):
        raise HoursError('hours.open must map days to times, e.g. {mon-fri: "09:00-18:00"}')
    for days, ranges in opening.items():
        for index in _days(str(days)):
            weekly[index] += _ranges(ranges)
    country, closed = None, set()
    hols = spec.get("holidays")
    if isinstance(hols, str):
        country = hols.upper()
        _check_country(country, spec.get("subdivision"))
    elif isinstance(hols, list):
        closed |= {_date(d) for d in hols}
    elif hols is not None:
        raise HoursError("hours.holidays must be a country code like CN or US, or a list of dates")
    closed |= {_date(d) for d in spec.get("closed") or []}
    return BusinessHours(tz, tuple(tuple(r) for r in weekly), country, spec.get("subdivision"), frozenset(closed))


def _days(text: str) -> list[int]:
    out: list[int] = []
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise HoursError(f"'{text}' is not a day or day range; use mon, tue, ... sun, e.g. mon-fri")
        a, b = DAYS.index(first), DAYS.index(last or first)
        out += list(range(a, b + 1)) if a <= b else [*range(a, 7), *range(0, b + 1)]
    return out


def _ranges(value) -> list[tuple[time, time]]:
    out = []
    for part in [value] if isinstance(value, str) else list(value or []):
        start, sep, end = str(part).partition("-")
        try:
            t0, t1 = time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
        except ValueError:
            t0 = t1 = None
        if not sep or t0 is None or t1 is None or t0 >= t1:
            raise HoursError(f"'{part}' is not an opening time range; write it like \"09:00-18:00\"")
        out.append((t0, t1))
    return out


def _date(value) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise HoursError(f"'{value}' is not a date; write it like 2026-12-24") from exc


def _check_country(country: str, subdivision) -> None:
    import holidays

    try:
        holidays.country_holidays(country, subdiv=subdivision)
    except NotImplementedError as exc:
        raise HoursError(f"no public holiday calendar for '{country}' (use an ISO country code like CN, US, "
                         "DE, or list the dates)") from exc
