"""One report as plain data (the `--json` output, the text tables and the dashboard all read it).

    backend = open_records(url)                       # UserError (exit 2) when it does not exist
    data = build_report(backend, Range(since, until, flow), Costs(0.85, "EUR"))
"""

import logging
import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ivr.errors import UserError
from ivr.report.figures import ABANDONED, CONTAINED, TRANSFERRED, Figures, Range
from ivr.report.topics import VectorCache, topics

log = logging.getLogger("ivr.report")

HOUR_S, DAY_S = 3600, 86400
MAX_HOUR_BUCKETS = 24 * 14        # longer ranges: calls per day on the timeline
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(min|m|h|d|w)$")


@dataclass(slots=True)
class Costs:
    agent_per_minute: float | None = None   # what a minute of an agent costs; None: not configured
    currency: str = ""


def open_records(url: str, base: Path | None = None):
    """The records database at `url`, opened for reading (and for caching topic vectors).
    A SQLite file that does not exist is an error, not a new empty database."""
    from ivr.store import backend_for
    from ivr.store.backends import SqliteBackend

    backend = backend_for(url, base)
    if isinstance(backend, SqliteBackend):
        if not backend.path.is_file():
            raise UserError(f"no records database at {backend.path}",
                            "run the report where `ivr serve` runs (or give its --config), or pass --db sqlite:///PATH")
        try:
            backend.open()            # migrates an older database (adds the vector cache table)
        except UserError as exc:
            if "cannot be written" not in exc.message:
                raise
            log.info("records database %s is read-only: reading only", backend.path)
        return backend
    # the report's queries are short aggregates: compiling them (JIT, on by default for costly plans)
    # took longer than running them (~70 ms a query, measured: docs/BENCHMARKS.md)
    backend.url += ("&" if "?" in backend.url else "?") + "options=-c%20jit%3Doff"
    backend.open()
    return backend


def parse_time(text: str | None, now_s: float, what: str) -> float | None:
    """'2026-11-27', '2026-11-27T08:00', ISO with an offset (UTC when none), '7d'/'24h'/'90min' ago, or 'now'."""
    if text is None or text == "":
        return None
    value = text.strip()
    if value == "now":
        return now_s
    rel = _RELATIVE.match(value)
    if rel:
        amount, unit = float(rel.group(1)), rel.group(2)
        seconds = {"min": 60, "m": 60, "h": HOUR_S, "d": DAY_S, "w": 7 * DAY_S}[unit]
        return now_s - amount * seconds
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"--{what} '{text}' is not a time",
                        "e.g. 2026-11-27, 2026-11-27T08:00, 2026-11-27T08:00+08:00, 7d (7 days ago) or 24h") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def stamp(at_s: float, size_s: int = 60) -> str:
    moment = datetime.fromtimestamp(at_s, UTC)
    if size_s >= DAY_S:
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m-%d %H:%M")


def _rate(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def build_report(backend, rng: Range, costs: Costs | None = None, *, with_topics: bool = True,
                 cache_vectors: bool = True) -> dict:
    costs = costs or Costs()
    fig = Figures(backend)
    timings: dict[str, float] = {}

    def timed(name, fn, *args):
        start = time.perf_counter()
        value = fn(*args)
        timings[name] = round((time.perf_counter() - start) * 1000, 1)
        return value

    outcomes = timed("outcomes", fig.outcomes, rng)
    total = sum(int(r["calls"]) for r in outcomes)
    head = {"since": rng.since, "until": rng.until, "flow": rng.flow, "since_text": stamp(rng.since),
            "until_text": stamp(rng.until), "calls": total, "timings_ms": timings}
    if not total:
        head["message"] = (f"no calls between {stamp(rng.since)} and {stamp(rng.until)} UTC"
                           + (f" in flow {rng.flow}" if rng.flow else ""))
        return head
    by = {r["outcome"] or "unknown": r for r in outcomes}

    def count(kinds) -> int:
        return sum(int(by[k]["calls"]) for k in kinds if k in by)

    contained, transferred, abandoned = count(CONTAINED), count(TRANSFERRED), count(ABANDONED)
    timed_calls = sum(int(r["timed"]) for r in outcomes)
    total_ms = sum(int(r["duration_ms"] or 0) for r in outcomes)
    no_repeat = timed("repeat", fig.contained_without_repeat, rng)

    span_s = rng.until - rng.since
    size_s = HOUR_S if span_s / HOUR_S <= MAX_HOUR_BUCKETS else DAY_S
    hourly = timed("per_hour", fig.per_bucket, rng, HOUR_S)
    counts: dict[int, int] = {}
    for r in hourly:
        key = int(r["bucket"]) * HOUR_S // size_s
        counts[key] = counts.get(key, 0) + int(r["calls"])
    first, last = min(counts), max(counts)        # empty buckets between the first and last call: 0
    timeline = [{"at_s": b * size_s, "label": stamp(b * size_s, size_s), "calls": counts.get(b, 0)}
                for b in range(first, last + 1)]
    peaks = sorted(hourly, key=lambda r: (-int(r["calls"]), int(r["bucket"])))[:5]
    hour_of_day = [0] * 24
    for r in hourly:
        hour_of_day[(int(r["bucket"])) % 24] += int(r["calls"])

    transfer_rows = timed("transfers", fig.transfers, rng)
    split = {"caller_asked": 0, "machine_gave_up": 0, "flow_rule": 0}
    reasons: dict[str, dict] = {}
    for r in transfer_rows:
        split[r["who"]] = split.get(r["who"], 0) + int(r["calls"])
        key = r["reason"] or "(none)"
        entry = reasons.setdefault(key, {"reason": key, "calls": 0, "who": r["who"]})
        entry["calls"] += int(r["calls"])

    contained_ms = sum(int(by[k]["duration_ms"] or 0) for k in CONTAINED if k in by)
    contained_min = contained_ms / 60000
    saved = (round(contained_min * costs.agent_per_minute, 2) if costs.agent_per_minute is not None else None)

    sent_size = HOUR_S if span_s <= 2 * DAY_S else DAY_S
    sentiment = [{"at_s": int(r["bucket"]) * sent_size, "label": stamp(int(r["bucket"]) * sent_size, sent_size),
                  "mean": round(float(r["mean"]), 3), "turns": int(r["turns"]), "negative": int(r["negative"] or 0)}
                 for r in timed("sentiment", fig.sentiment, rng, sent_size)]

    unmatched = timed("unmatched", fig.unmatched, rng)
    found_topics: list[dict] = []
    if with_topics and unmatched:
        found_topics = timed("topics", topics, unmatched, VectorCache(backend) if cache_vectors else None)

    return {**head,
            "outcomes": {(r["outcome"] or "unknown"): int(r["calls"]) for r in outcomes},
            "containment": {"contained": contained, "rate": _rate(contained, total),
                            "contained_no_repeat_24h": no_repeat, "rate_no_repeat_24h": _rate(no_repeat, total)},
            "transfers": {"calls": transferred, "rate": _rate(transferred, total), **split,
                          "caller_asked_rate": _rate(split["caller_asked"], total),
                          "machine_gave_up_rate": _rate(split["machine_gave_up"], total),
                          "reasons": sorted(reasons.values(), key=lambda e: (-e["calls"], e["reason"]))[:10]},
            "abandoned": {"calls": abandoned, "rate": _rate(abandoned, total)},
            "handle_time": {"average_s": round(total_ms / timed_calls / 1000, 1) if timed_calls else None,
                            "total_min": round(total_ms / 60000, 1)},
            "calls_per_bucket": {"size_s": size_s, "buckets": timeline},
            "peak_hours": [{"label": stamp(int(r["bucket"]) * HOUR_S, HOUR_S), "calls": int(r["calls"])}
                           for r in peaks],
            "hour_of_day": hour_of_day,
            "intents": [{"intent": r["intent"], "turns": int(r["turns"]), "calls": int(r["calls"])}
                        for r in timed("intents", fig.intents, rng)],
            "dropoff": [{"step": r["step"] or "(before the first step)", "calls": int(r["calls"]),
                         "share": _rate(int(r["calls"]), abandoned)} for r in timed("dropoff", fig.dropoff, rng)],
            "unmatched": {"turns": sum(int(r["turns"]) for r in unmatched), "distinct": len(unmatched),
                          "topics": found_topics},
            "sentiment": {"size_s": sent_size, "buckets": sentiment},
            "hotlines": [{"hotline": r["hotline"] or "(unknown)", "calls": int(r["calls"]),
                          "minutes": round(int(r["duration_ms"] or 0) / 60000, 1),
                          "billed_minutes": int(r["billed_min"] or 0)}
                         for r in timed("hotlines", fig.hotlines, rng)],
            "cost_saved": {"contained_minutes": round(contained_min, 1), "agent_cost_per_minute":
                           costs.agent_per_minute, "currency": costs.currency, "saved": saved}}


def default_range(backend, since: float | None, until: float | None, flow: str | None,
                  now_s: float | None = None) -> Range:
    """No --until: now (the next whole minute). No --since: the first call in the database."""
    now_s = time.time() if now_s is None else now_s
    until = until if until is not None else math.ceil(now_s / 60) * 60
    if since is None:
        rows = backend.fetch("SELECT min(started_at) AS first FROM calls")
        first = rows[0]["first"] if rows else None
        since = math.floor(first / 60) * 60 if first is not None else until - 7 * DAY_S
    if since >= until:
        raise UserError(f"--since ({stamp(since)}) is not before --until ({stamp(until)})")
    return Range(since, until, flow or None)

