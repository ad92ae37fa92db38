"""GET /dashboard: the report (ivr/report) as a page with charts, for supervisors and admins.

Behind the login (ivr/web/auth.py: every route is, unless made public) and `requires("supervisor")`.
Filters are GET parameters: since, until (the `ivr report` spellings: 2026-11-27, 7d, ...)
and flow. The report's queries run in a worker thread on their own database connections (not
the records writer's). Charts are inline SVG drawn here (ivr/report/svg.py): no JavaScript,
nothing fetched, so the auth module's Content-Security-Policy (default-src 'self') holds.
Every text from the records (utterances, steps, reasons) goes through jinja2's autoescape.
"""

import asyncio
import logging
import threading
import time

from aiohttp import web

from ivr.errors import UserError
from ivr.web.auth import ACCESS, SESSION, USER, requires

log = logging.getLogger("ivr.web")


class Dashboard:
    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self._backend = None
        self._lock = threading.Lock()

    def install(self, app: web.Application) -> None:
        app.router.add_get("/dashboard", requires("supervisor")(self.page))

    def close(self) -> None:
        with self._lock:
            if self._backend is not None:
                self._backend.close()
                self._backend = None

    def _open(self):
        from ivr.report.build import open_records

        with self._lock:
            if self._backend is None:
                url = self.cfg.database_url()
                if not url:
                    raise UserError("the records database is off (records.database: \"\"): nothing to report")
                self._backend = open_records(url, self.cfg.database_base)
            return self._backend

    def _report(self, since: str, until: str, flow: str) -> tuple[dict, list[str]]:
        from ivr.report.build import Costs, build_report, default_range, parse_time

        backend = self._open()
        now_s = time.time()
        rng = default_range(backend, parse_time(since, now_s, "since"), parse_time(until, now_s, "until"),
                            flow or None, now_s)
        from ivr.report.figures import Figures

        data = build_report(backend, rng, Costs(self.cfg.agent_cost_per_minute, self.cfg.currency))
        return data, Figures(backend).flows()

    async def page(self, request: web.Request) -> web.Response:
        auth = request.app[ACCESS]
        since = request.query.get("since", "")[:40]
        until = request.query.get("until", "")[:40]
        flow = request.query.get("flow", "")[:200]
        started = time.perf_counter()
        error, data, flows = "", None, []
        try:
            data, flows = await asyncio.to_thread(self._report, since, until, flow)
        except UserError as exc:
            error = exc.message + (f" ({exc.hint})" if exc.hint else "")
        except Exception:
            log.exception("dashboard: the report failed")
            error = "the report failed: see the service log"
        charts = _charts(data) if data and data.get("calls") else {}
        return auth.render("dashboard.html", status=400 if error and "not a time" in error else 200,
                           user=request[USER], csrf=request[SESSION].csrf, data=data, charts=charts, error=error,
                           since=since, until=until, flow=flow, flows=flows,
                           elapsed_ms=round((time.perf_counter() - started) * 1000))


def _charts(data: dict) -> dict:
    from ivr.report import svg

    per = data["calls_per_bucket"]
    unit = "hour" if per["size_s"] == 3600 else "day"
    t = data["transfers"]
    return {
        "timeline": svg.bars([(b["label"][5:], b["calls"]) for b in per["buckets"]], f"Calls per {unit} (UTC)",
                             "chart-timeline"),
        "hour_of_day": svg.bars([(f"{h:02d}:00", n) for h, n in enumerate(data["hour_of_day"])],
                                "Calls by hour of day (UTC)", "chart-hours"),
        "outcomes": svg.hbars([("contained", data["containment"]["contained"]),
                               ("contained, no repeat in 24 h", data["containment"]["contained_no_repeat_24h"]),
                               ("transfer: caller asked", t["caller_asked"]),
                               ("transfer: machine gave up", t["machine_gave_up"]),
                               ("transfer: flow rule", t["flow_rule"]),
                               ("abandoned", data["abandoned"]["calls"])], "Call outcomes", "chart-outcomes"),
        "intents": svg.hbars([(i["intent"], i["turns"]) for i in data["intents"]], "Top intents", "chart-intents"),
        "dropoff": svg.hbars([(d["step"], d["calls"]) for d in data["dropoff"]], "Where callers hung up",
                             "chart-dropoff", "alt"),
        "topics": svg.hbars([(tp["label"], tp["turns"]) for tp in data["unmatched"]["topics"]],
                            "Unmatched topics", "chart-topics", "alt"),
        "sentiment": svg.line([(s["label"], s["mean"]) for s in data["sentiment"]["buckets"]],
                              "Mean sentiment of caller turns", "chart-sentiment"),
        "hotlines": svg.hbars([(u["hotline"], u["minutes"]) for u in data["hotlines"]], "Minutes per hotline",
                              "chart-hotlines"),
    }
