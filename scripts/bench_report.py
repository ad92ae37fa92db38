"""Report benchmark: `ivr report` time and /dashboard page load time over 100,000 synthetic calls.

    .venv/bin/python scripts/bench_report.py [--calls 100000] [--days 30] [--pg URL | --no-pg] [--json FILE]

The calls (about 2.1 turns each, unmatched utterances from a few topics, sentiment per turn)
are written through the records store's own API (ivr/report/synthetic.py) into a SQLite file
in a temporary folder and into PostgreSQL (`--pg URL`, or a temporary server started like the
tests' fixture: Debian's postgresql on 127.0.0.1, fsync off: only reads are timed). Then, per database:
- `ivr report --json` as a subprocess (the whole command: Python start, imports, queries, topics),
  first run (the topics' utterance vectors not cached yet: the e5 model embeds them) and the
  median of three warm runs (vectors cached in the database);
- the same over the last 24 h, and for one flow;
- GET /dashboard from the service's HTTP listener, logged in as a supervisor: first and median of 3.
PostgreSQL is measured after VACUUM ANALYZE (what autovacuum does soon after a load; --no-vacuum: before).
Each figure is wall time on this machine; others may be using it (say so with the figures).
"""

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from benchlib import machine_info

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.report.synthetic import seed_calls  # noqa: E402
from ivr.store import open_store  # noqa: E402

DAY_S = 86400


def seed(url: str, spool: Path, calls: int, days: int, end_s: float) -> float:
    start = time.perf_counter()
    store = open_store(url, spool).start()
    try:
        step = 5000
        for first in range(0, calls, step):   # in chunks: bounded memory in the store's queue
            seed_calls(store, min(step, calls - first), end_s - days * DAY_S, days * DAY_S, seed=first + 1,
                       number_from=first)
    finally:
        store.close(600)
    return time.perf_counter() - start


def report_s(url: str, *args: str) -> tuple[float, dict]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ivr", "report", "--json", "--db", url, *args], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(proc.stderr)
    return elapsed, json.loads(proc.stdout)


def timed_reports(url: str, *args: str) -> dict:
    first, data = report_s(url, *args)
    warm = [report_s(url, *args)[0] for _ in range(3)]
    return {"first_s": round(first, 2), "warm_median_s": round(statistics.median(warm), 2), "calls": data["calls"],
            "queries_ms": data.get("timings_ms")}


async def dashboard_s(url: str, folder: Path) -> dict:
    import aiohttp

    from ivr.service.config import ServeConfig
    from ivr.service.listeners import HealthServer
    from ivr.web.auth import AuthSettings
    from ivr.web.users import UserStore

    users = UserStore(folder / "users.json")
    users.set_user("sue", "supervisor", "bench-password-1", must_exist=False)
    cfg = ServeConfig(database=url, auth=AuthSettings(users_file=users.path), agent_cost_per_minute=0.5,
                      currency="EUR")
    server = HealthServer(SimpleNamespace(cfg=cfg, metrics=None, transfers={}, health=lambda: {"ok": True}),
                          "127.0.0.1", 0)
    host, port = await server.start()
    try:
        async with aiohttp.ClientSession(f"http://{host}:{port}", cookie_jar=aiohttp.CookieJar(unsafe=True)) as c:
            page = await (await c.get("/login")).text()
            csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
            await c.post("/login", data={"csrf": csrf, "user": "sue", "password": "bench-password-1"})
            times, size = [], 0
            for _ in range(4):
                start = time.perf_counter()
                response = await c.get("/dashboard")
                body = await response.read()
                times.append(time.perf_counter() - start)
                assert response.status == 200 and b'id="total-calls"' in body, response.status
                size = len(body)
    finally:
        await server.stop()
    return {"first_s": round(times[0], 2), "warm_median_s": round(statistics.median(times[1:]), 2),
            "page_kb": round(size / 1024)}


def vacuum_analyze(url: str) -> None:
    """What autovacuum does to a table soon after a bulk load: planner statistics, and the visibility
    map that lets index-only scans skip the table (without it every covering index still reads rows)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE calls")
        conn.execute("VACUUM ANALYZE turns")


def measure(url: str, folder: Path) -> dict:
    return {"all": timed_reports(url), "last_24h": timed_reports(url, "--since", "24h"),
            "one_flow": timed_reports(url, "--flow", "retail_zh"),
            "dashboard": asyncio.run(dashboard_s(url, folder))}


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))   # stop the temporary PostgreSQL on the way out
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--pg", help="PostgreSQL URL (default: a temporary server)")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--no-vacuum", action="store_true", help="measure PostgreSQL right after the load, "
                                                                   "before VACUUM ANALYZE")
    args = parser.parse_args()
    end_s = time.time() // 3600 * 3600
    results = {"machine": machine_info(), "calls": args.calls, "days": args.days,
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="ivr-bench-report-") as tmp:
        folder = Path(tmp)
        url = f"sqlite:///{folder / 'ivr.sqlite3'}"
        if not args.no_sqlite:
            results["sqlite_seed_s"] = round(seed(url, folder / "spool", args.calls, args.days, end_s), 1)
            results["sqlite_mb"] = round(os.path.getsize(folder / "ivr.sqlite3") / 1e6, 1)
            print(f"sqlite: seeded {args.calls} calls in {results['sqlite_seed_s']} s", file=sys.stderr)
            results["sqlite"] = measure(url, folder)
            print(json.dumps(results["sqlite"]), file=sys.stderr)
        if not args.no_pg:
            server = None
            pg_url = args.pg
            if not pg_url:
                from tests.pg_fixture import PostgresServer, bin_dir

                found = bin_dir()
                if found is None:
                    raise SystemExit("no PostgreSQL binaries: install postgresql or pass --pg URL / --no-pg")
                server = PostgresServer(found, fsync=False)   # reads are measured, not commits
                server.init()
                pg_url = server.new_database()
            try:
                results["pg_seed_s"] = round(seed(pg_url, folder / "pg-spool", args.calls, args.days, end_s), 1)
                print(f"postgresql: seeded in {results['pg_seed_s']} s", file=sys.stderr)
                if not args.no_vacuum:
                    vacuum_analyze(pg_url)
                results["postgresql"] = measure(pg_url, folder)
            finally:
                if server is not None:
                    server.cleanup()
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
