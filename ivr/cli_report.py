"""`ivr report`: what the calls in the records database say, as text tables or JSON.

The database is the one `ivr serve` writes: `--db URL`, else `records.database` of
`--config`, else $IVR_DATABASE, else records/ivr.sqlite3 under the current folder (serve's
default when run from the same place). Times are UTC.
"""

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from ivr.errors import UserError

log = logging.getLogger("ivr.report")


def database(args):
    """(url, base folder, config) the report reads."""
    if args.db and not args.config:   # nothing to read from a config (and its imports are not cheap)
        return args.db, Path.cwd(), SimpleNamespace(agent_cost_per_minute=None, currency="")
    from ivr.service.config import load_config

    cfg = load_config(Path(args.config) if args.config else None)
    if args.db:
        return args.db, Path.cwd(), cfg
    if args.records:
        cfg.records_dir = Path(args.records)
    url = cfg.database_url()
    if not url:
        raise UserError("the records database is off in this config (records.database: \"\")",
                        "pass --db sqlite:///PATH or postgresql://USER@HOST/DB")
    return url, cfg.database_base, cfg


def cmd_report(args) -> int:
    from ivr.report.build import Costs, build_report, default_range, open_records, parse_time
    from ivr.report.text import render

    url, base, cfg = database(args)
    cost = args.cost_per_minute if args.cost_per_minute is not None else cfg.agent_cost_per_minute
    if cost is not None and cost < 0:
        raise UserError(f"--cost-per-minute must be >= 0, not {cost}")
    costs = Costs(cost, args.currency if args.currency is not None else cfg.currency)
    now_s = time.time()
    started = time.perf_counter()
    backend = open_records(url, base)
    try:
        rng = default_range(backend, parse_time(args.since, now_s, "since"), parse_time(args.until, now_s, "until"),
                            args.flow, now_s)
        data = build_report(backend, rng, costs, with_topics=not args.no_topics)
    finally:
        backend.close()
    data["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
    if args.json:
        json.dump(data, sys.stdout, ensure_ascii=False, indent=1)
        print()
    else:
        print(render(data))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="calls, containment, transfers, drop-off, topics, sentiment, usage (UTC)")
    p.add_argument("--since", help="from this time: 2026-11-27, 2026-11-27T08:00[+08:00] or 7d / 24h ago "
                                   "(default: the first call)")
    p.add_argument("--until", help="up to (not including) this time (default: now)")
    p.add_argument("--flow", help="only calls answered by this flow (its name)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--db", help="records database URL: sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
    p.add_argument("--config", help="the serve config whose records database to read")
    p.add_argument("--records", help="the records folder `ivr serve --records` wrote (its ivr.sqlite3)")
    p.add_argument("--cost-per-minute", type=float, help="agent cost per minute (default: reports.agent_cost_per_"
                                                          "minute of the config)")
    p.add_argument("--currency", help="currency of the cost (default: reports.currency of the config)")
    p.add_argument("--no-topics", action="store_true", help="skip clustering unmatched utterances (no e5 model)")
    p.set_defaults(func=cmd_report)
