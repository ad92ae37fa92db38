"""The report's figures, each one SQL query over the records database (SQLite or PostgreSQL).

Call figures take the calls that started in [since, until) (`calls_report`, a covering index,
or `calls_flow` with a flow); turn figures (intents, unmatched utterances, sentiment) take the
turns that happened in the range (`turns_report`, `turns_unmatched`), joined to their calls
only when a flow is asked for. Values go in as parameters only.

Outcomes (`calls.outcome`, the CallEnded kind) are read as:
- contained: `hangup` (the flow finished the call itself);
- transferred: `transfer`, `transfer_failed`; split by the call's last turn into "caller asked"
  (it matched a choice or global: "agent", "billing", ...), "flow rule" (a `watch:` such as an
  angry caller, via = watch) and "machine gave up" (the last turn matched nothing: no-match or
  no-input escalation, an error fallback);
- abandoned: `caller_hangup` (the caller hung up before the flow reached an outcome);
- other: protocol_error, peer_lost, busy, shutdown, error.
"""

from dataclasses import dataclass

from ivr.sentiment import THRESHOLDS

CONTAINED = ("hangup",)
TRANSFERRED = ("transfer", "transfer_failed")
ABANDONED = ("caller_hangup",)
REPEAT_WINDOW_S = 86_400


@dataclass(slots=True)
class Range:
    since: float
    until: float
    flow: str | None = None

    def where(self, alias: str = "c") -> tuple[str, tuple]:
        sql = f"{alias}.started_at >= ? AND {alias}.started_at < ?"
        args: tuple = (self.since, self.until)
        if self.flow:
            sql += f" AND {alias}.flow = ?"
            args += (self.flow,)
        return sql, args


def turn_range(rng: Range) -> tuple[str, str, tuple]:
    """(join, where, args) for turns that happened in the range: a range of the `turns_report`
    index, no join with calls unless a flow is asked for."""
    where, args = "t.at_s >= ? AND t.at_s < ?", (rng.since, rng.until)
    if rng.flow:
        return "JOIN calls c ON c.call_id = t.call_id", where + " AND c.flow = ?", (*args, rng.flow)
    return "", where, args


class Figures:
    """Runs the report's queries on one backend (`ivr.store.backends.Backend`).

    `c.outcome || '' IN (...)` (not `c.outcome IN`) keeps both planners on the covering
    `calls_report` range instead of `calls_outcome` plus a table lookup per call."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.pg = backend.name == "postgresql"

    def _fetch(self, sql: str, args: tuple) -> list[dict]:
        return self.backend.fetch(self.backend._sql(sql), args)

    def _bucket(self, column: str, size_s: int) -> str:
        """Whole buckets of `size_s` seconds since the epoch (UTC)."""
        if self.pg:
            return f"CAST(floor({column} / {size_s}) AS BIGINT)"
        return f"CAST({column} / {size_s} AS INTEGER)"   # started_at > 0: truncation is floor

    # ---- one query each ----------------------------------------------------------------

    def outcomes(self, rng: Range) -> list[dict]:
        where, args = rng.where()
        return self._fetch(
            f"SELECT c.outcome AS outcome, count(*) AS calls, sum(c.duration_ms) AS duration_ms, "
            f"count(c.duration_ms) AS timed, min(c.started_at) AS first_s, max(c.started_at) AS last_s "
            f"FROM calls c WHERE {where} GROUP BY c.outcome ORDER BY calls DESC", args)

    def per_bucket(self, rng: Range, size_s: int) -> list[dict]:
        where, args = rng.where()
        bucket = self._bucket("c.started_at", size_s)
        return self._fetch(f"SELECT {bucket} AS bucket, count(*) AS calls FROM calls c WHERE {where} "
                           f"GROUP BY {bucket} ORDER BY bucket", args)

    def contained_without_repeat(self, rng: Range) -> int:
        """Contained calls from a known number with no call from that number in the next 24 h
        (calls_caller index; the repeat may fall after `until`)."""
        where, args = rng.where()
        marks = ", ".join("?" for _ in CONTAINED)
        rows = self._fetch(
            f"SELECT count(*) AS n FROM calls c WHERE {where} AND c.outcome || '' IN ({marks}) "
            f"AND c.caller IS NOT NULL AND c.caller <> '' AND NOT EXISTS (SELECT 1 FROM calls r "
            f"WHERE r.caller = c.caller AND r.started_at > c.started_at AND r.started_at <= c.started_at + ?)",
            (*args, *CONTAINED, REPEAT_WINDOW_S))
        return int(rows[0]["n"] or 0)

    def transfers(self, rng: Range) -> list[dict]:
        """Transferred calls by who wanted it, with the reason the flow gave."""
        where, args = rng.where()
        marks = ", ".join("?" for _ in TRANSFERRED)
        who = ("CASE WHEN t.via = 'watch' THEN 'flow_rule' WHEN t.choice IS NOT NULL AND t.choice <> '' "
               "THEN 'caller_asked' ELSE 'machine_gave_up' END")
        return self._fetch(
            f"WITH moved AS MATERIALIZED (SELECT c.call_id, c.reason FROM calls c "
            f"WHERE {where} AND c.outcome || '' IN ({marks})) "
            f"SELECT {who} AS who, c.reason AS reason, count(*) AS calls FROM moved c "
            f"LEFT JOIN turns t ON t.call_id = c.call_id AND t.idx = "
            f"(SELECT max(l.idx) FROM turns l WHERE l.call_id = c.call_id) "
            f"GROUP BY {who}, c.reason ORDER BY calls DESC", (*args, *TRANSFERRED))

    def intents(self, rng: Range, limit: int = 10) -> list[dict]:
        """What callers asked for: choices and globals matched (not slots or yes/no answers)."""
        join, where, args = turn_range(rng)
        return self._fetch(
            f"SELECT t.choice AS intent, count(*) AS turns, count(DISTINCT t.call_id) AS calls "
            f"FROM turns t {join} WHERE {where} AND t.via IN ('step', 'global') AND t.choice IS NOT NULL "
            f"GROUP BY t.choice ORDER BY turns DESC, intent LIMIT ?", (*args, limit))

    def dropoff(self, rng: Range, limit: int = 15) -> list[dict]:
        """Where callers hung up before an outcome: the step the call was in."""
        where, args = rng.where()
        marks = ", ".join("?" for _ in ABANDONED)
        return self._fetch(
            f"SELECT coalesce(c.end_step, '') AS step, count(*) AS calls FROM calls c "
            f"WHERE {where} AND c.outcome || '' IN ({marks}) GROUP BY coalesce(c.end_step, '') "
            f"ORDER BY calls DESC, step LIMIT ?", (*args, *ABANDONED, limit))

    def unmatched(self, rng: Range, limit: int = 300) -> list[dict]:
        """Speech turns no choice took, by text, most frequent first (the `turns_unmatched` index)."""
        join, where, args = turn_range(rng)
        return self._fetch(
            f"SELECT t.heard AS text, count(*) AS turns FROM turns t {join} "
            f"WHERE {where} AND t.kind = 'speech' AND t.choice IS NULL AND t.heard IS NOT NULL AND t.heard <> '' "
            f"GROUP BY t.heard ORDER BY turns DESC, text LIMIT ?", (*args, limit))

    def sentiment(self, rng: Range, size_s: int) -> list[dict]:
        """Per bucket of the turn's time: mean score of scored caller turns, and how many were negative
        by the thresholds ivr.sentiment labels with (per language: the call's language is looked up
        only for scores between the two thresholds)."""
        join, where, args = turn_range(rng)
        bucket = self._bucket("t.at_s", size_s)
        neg_en, neg_zh = THRESHOLDS["en"].negative, THRESHOLDS["zh"].negative
        low, high = min(neg_en, neg_zh), max(neg_en, neg_zh)
        high_lang_zh = neg_zh > neg_en      # the language whose threshold is the higher one
        return self._fetch(
            f"SELECT {bucket} AS bucket, avg(t.sentiment) AS mean, count(*) AS turns, "
            f"sum(CASE WHEN t.sentiment <= ? THEN 1 WHEN t.sentiment > ? THEN 0 "
            f"WHEN (SELECT substr(coalesce(l.language, ''), 1, 2) FROM calls l WHERE l.call_id = t.call_id) "
            f"{'=' if high_lang_zh else '<>'} 'zh' THEN 1 ELSE 0 END) AS negative "
            f"FROM turns t {join} WHERE {where} AND t.kind = 'speech' AND t.sentiment IS NOT NULL "
            f"GROUP BY {bucket} ORDER BY bucket", (low, high, *args))

    def hotlines(self, rng: Range, limit: int = 50) -> list[dict]:
        """Usage per number called: calls, exact minutes, and minutes billed per started minute."""
        where, args = rng.where()
        return self._fetch(
            f"SELECT coalesce(c.called, '') AS hotline, count(*) AS calls, sum(c.duration_ms) AS duration_ms, "
            f"sum((c.duration_ms + 59999) / 60000) AS billed_min FROM calls c WHERE {where} "
            f"GROUP BY coalesce(c.called, '') ORDER BY calls DESC, hotline LIMIT ?", (*args, limit))

    def flows(self) -> list[str]:
        return [row["flow"] for row in self._fetch(
            "SELECT DISTINCT flow FROM calls WHERE flow IS NOT NULL AND flow <> '' ORDER BY flow", ())]
