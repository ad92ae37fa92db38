"""Read helpers for reports and tools: calls by time, flow, caller or outcome; a call's
turns and events; outcome counts. Parameterised SQL only; JSON columns are decoded."""

import json

from ivr.store.store import RecordStore

CALL_FILTERS = {"flow": "flow = ?", "caller": "caller = ?", "outcome": "outcome = ?",
                "since": "started_at >= ?", "until": "started_at < ?"}


def _decode(rows: list[dict], columns=("data", "said")) -> list[dict]:
    for row in rows:
        for column in columns:
            if isinstance(row.get(column), str):
                row[column] = json.loads(row[column])
    return rows


def calls(store: RecordStore, limit: int = 1000, **filters) -> list[dict]:
    """Calls, newest first; filters: flow, caller, outcome, since/until (Unix seconds)."""
    unknown = set(filters) - set(CALL_FILTERS)
    if unknown:
        raise ValueError(f"unknown filter {sorted(unknown)[0]!r}; filters: {', '.join(CALL_FILTERS)}")
    used = [(CALL_FILTERS[k], v) for k, v in filters.items() if v is not None]
    where = (" WHERE " + " AND ".join(clause for clause, _ in used)) if used else ""
    sql = f"SELECT * FROM calls{where} ORDER BY started_at DESC LIMIT ?"
    return _decode(store.backend.fetch(store.backend._sql(sql), (*[v for _, v in used], int(limit))))


def call(store: RecordStore, call_id: str) -> dict | None:
    rows = _decode(store.backend.fetch(store.backend._sql("SELECT * FROM calls WHERE call_id = ?"), (call_id,)))
    return rows[0] if rows else None


def turns(store: RecordStore, call_id: str) -> list[dict]:
    sql = store.backend._sql("SELECT * FROM turns WHERE call_id = ? ORDER BY idx")
    return _decode(store.backend.fetch(sql, (call_id,)))


def events(store: RecordStore, call_id: str) -> list[dict]:
    sql = store.backend._sql("SELECT * FROM events WHERE call_id = ? ORDER BY seq")
    return _decode(store.backend.fetch(sql, (call_id,)))


def outcomes(store: RecordStore, since: float | None = None, until: float | None = None) -> list[dict]:
    """[{flow, outcome, calls}] for calls started in [since, until)."""
    sql = ("SELECT flow, outcome, count(*) AS calls FROM calls WHERE started_at >= ? AND started_at < ? "
           "GROUP BY flow, outcome ORDER BY flow, outcome")
    return store.backend.fetch(store.backend._sql(sql), (since or 0.0, until or 1e12))
