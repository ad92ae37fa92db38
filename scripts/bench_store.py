"""Records-store benchmark: database write time per turn, SQLite and PostgreSQL.

    .venv/bin/python scripts/bench_store.py [--calls 40] [--turns 10] [--burst 2000] [--pg URL] [--json FILE]

For each database, calls of `--turns` realistic turns (heard text, two replies, timings,
NLU candidates) go through the real `RecordStore` as the service uses it:
- call path: the time `add_turn()` takes on the caller's thread (it only queues);
- commit per turn: `add_turn()` then `flush()` (the writer thread commits that one turn in
  its own transaction and says so): what one turn costs the database when turns arrive apart;
- burst: `--burst` turns queued at once, until all are committed (batched transactions).

SQLite: a file in a temporary folder (WAL, synchronous=NORMAL). PostgreSQL: `--pg URL`, or a
temporary server started like the tests' fixture (Debian's postgresql, 127.0.0.1, fsync on).
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchlib import emit, machine_info, postgres_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.store import PostgresBackend, RecordStore, SqliteBackend  # noqa: E402


def turn_row(call_id: str, index: int) -> dict:
    return {"call_id": call_id, "idx": index, "kind": "speech", "step": "menu",
            "heard": "I'd like to check the status of my order number four eight one", "confidence": 0.87,
            "choice": "orders", "score": 0.91, "via": "phrase",
            "said": ["Sure. What is your order number?", "You can say it or key it in."],
            "next_step": "order_number", "endpoint": "early_match", "barge_in": False, "t_ms": 12_340 + index,
            "latency_ms": 612.5, "at_s": time.time(),
            "data": {"candidates": [{"choice": "orders", "score": 0.91}, {"choice": "returns", "score": 0.42}],
                     "timing": {"asr_ms": 180.2, "flow_ms": 1.4, "tts_ms": 35.0, "endpoint_silence_ms": 200}}}


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def run(backend, spool: Path, calls: int, turns: int, burst: int) -> dict:
    store = RecordStore(backend, spool).start()
    queue_us, commit_ms = [], []
    try:
        for c in range(calls):
            call_id = f"bench-{time.time_ns()}-{c}"
            store.begin_call({"call_id": call_id, "flow": "retail", "started_at": time.time(), "caller": "+15550100"})
            store.flush()
            for t in range(turns):
                row = turn_row(call_id, t)
                t0 = time.perf_counter()
                store.add_turn(row)
                t1 = time.perf_counter()
                store.flush()
                t2 = time.perf_counter()
                queue_us.append((t1 - t0) * 1e6)
                commit_ms.append((t2 - t0) * 1e3)
            store.end_call({"call_id": call_id, "ended_at": time.time(), "outcome": "hangup", "turns": turns})
        store.flush()
        call_id = f"burst-{time.time_ns()}"
        t0 = time.perf_counter()
        for t in range(burst):
            store.add_turn(turn_row(call_id, t))
        store.flush(120)
        burst_s = time.perf_counter() - t0
        assert store.status()["written"] >= calls * (turns + 2) + burst and not store.down
    finally:
        store.close()
    return {"turns": len(commit_ms), "queue_us_p50": round(pct(queue_us, 50), 1),
            "queue_us_p95": round(pct(queue_us, 95), 1), "commit_ms_p50": round(pct(commit_ms, 50), 2),
            "commit_ms_p95": round(pct(commit_ms, 95), 2), "burst_turns_per_s": round(burst / burst_s)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--burst", type=int, default=2000)
    ap.add_argument("--pg", help="PostgreSQL URL (default: start a temporary server)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = {"machine": machine_info(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results["sqlite"] = run(SqliteBackend(tmp / "bench.sqlite3"), tmp / "spool-s", args.calls, args.turns,
                                args.burst)
        with postgres_url(args.pg) as url:
            results["postgresql"] = run(PostgresBackend(url), tmp / "spool-p", args.calls, args.turns, args.burst)
    emit(results, args.json)

if __name__ == "__main__":
    main()
