"""`ivr report` and /dashboard over a records database seeded through the store's own API:
figures against what was seeded, SQLite and a real PostgreSQL giving the same report, an
empty range and a missing database, topics from the real e5 model, and the dashboard over
real HTTP on 127.0.0.1 (login, role, escaping)."""

import asyncio
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
from yarl import URL

from ivr.cli import main
from ivr.report.build import Costs, build_report, open_records
from ivr.report.figures import Range
from ivr.report.synthetic import seed_calls
from ivr.report.topics import cluster, embed, topics
from ivr.store import open_store
from tests.pg_fixture import pg_server

START_S = datetime(2026, 11, 2, tzinfo=UTC).timestamp()
SPAN_S = 7 * 86400
CALLS = 300
EVIL = "<script>alert('x')</script> my parcel"
CHEAP = (2 ** 10, 8, 1)


def _seed(url: str, spool: Path) -> dict:
    store = open_store(url, spool).start()
    try:
        outcomes = seed_calls(store, CALLS, START_S, SPAN_S, seed=7)
        # one call whose caller said HTML: every page must escape it
        store.begin_call({"call_id": "evil1", "caller": "+15559999999", "called": "+15550100", "flow": "retail_en",
                          "language": "en", "started_at": START_S + 3600})
        store.add_turn({"call_id": "evil1", "idx": 0, "kind": "speech", "step": "menu", "heard": EVIL,
                        "at_s": START_S + 3605, "sentiment": -0.2,
                        "data": {"sentiment": -0.2}})
        store.end_call({"call_id": "evil1", "started_at": START_S + 3600, "ended_at": START_S + 3620,
                        "outcome": "caller_hangup", "end_step": "<b>menu</b>", "duration_ms": 20000, "turns": 1})
        assert store.flush(60)
    finally:
        store.close()
    outcomes["caller_hangup"] += 1
    return outcomes


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    db = folder / "records" / "ivr.sqlite3"
    outcomes = _seed(f"sqlite:///{db}", folder / "spool")
    return SimpleNamespace(folder=folder, db=db, url=f"sqlite:///{db}", outcomes=outcomes)


def _report_json(capsys, *args) -> dict:
    assert main(["report", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_report_figures_match_the_seeded_calls(seeded, capsys, monkeypatch):
    monkeypatch.chdir(seeded.folder)   # the database serve writes by default from here: records/ivr.sqlite3
    data = _report_json(capsys, "--cost-per-minute", "0.5", "--currency", "EUR")
    total = CALLS + 1
    assert data["calls"] == total
    assert data["outcomes"] == seeded.outcomes
    assert data["containment"]["contained"] == seeded.outcomes["hangup"]
    assert data["abandoned"]["calls"] == seeded.outcomes["caller_hangup"]
    t = data["transfers"]
    assert t["calls"] == seeded.outcomes["transfer"] == t["caller_asked"] + t["machine_gave_up"] + t["flow_rule"]
    reasons = {r["reason"]: r["who"] for r in t["reasons"]}
    assert reasons == {"agent": "caller_asked", "no_match after 2 attempts": "machine_gave_up",
                       "angry_caller": "flow_rule"}
    assert 0 < data["containment"]["contained_no_repeat_24h"] <= data["containment"]["contained"]
    assert sum(b["calls"] for b in data["calls_per_bucket"]["buckets"]) == total
    assert sum(data["hour_of_day"]) == total
    assert sum(h["calls"] for h in data["hotlines"]) == total
    assert {i["intent"] for i in data["intents"]} >= {"agent", "billing"}
    assert "angry_caller" not in {i["intent"] for i in data["intents"]}   # a watch is not what the caller asked
    assert data["dropoff"][0]["step"] == "menu"
    cost = data["cost_saved"]
    assert cost["saved"] == pytest.approx(cost["contained_minutes"] * 0.5, abs=0.06) and cost["currency"] == "EUR"
    assert data["sentiment"]["buckets"] and all(-1 <= s["mean"] <= 1 for s in data["sentiment"]["buckets"])
    labels = " | ".join(tp["label"] for tp in data["unmatched"]["topics"])
    assert "warranty" in labels and "gift card" in labels, labels

    flow = _report_json(capsys, "--flow", "retail_zh")
    assert 0 < flow["calls"] < total and {h["hotline"] for h in flow["hotlines"]} == {"4000"}


def test_text_tables_empty_range_and_missing_database(seeded, capsys, tmp_path):
    assert main(["report", "--db", seeded.url, "--no-topics"]) == 0
    text = capsys.readouterr().out
    assert f"{CALLS + 1:,}" in text and "machine gave up" in text and "Usage per hotline" in text
    assert "not configured" in text          # no agent cost configured: said, not a zero
    assert main(["report", "--db", seeded.url, "--since", "2020-01-01", "--until", "2020-02-01"]) == 0
    assert capsys.readouterr().out.strip() == "no calls between 2020-01-01 00:00 and 2020-02-01 00:00 UTC"
    missing = tmp_path / "nowhere" / "ivr.sqlite3"
    assert main(["report", "--db", f"sqlite:///{missing}"]) == 2
    assert str(missing) in capsys.readouterr().err and not missing.exists()
    assert main(["report", "--db", seeded.url, "--since", "yesterday-ish"]) == 2
    assert "not a time" in capsys.readouterr().err


def test_cost_from_the_serve_config(seeded, capsys, tmp_path):
    config = tmp_path / "serve.yaml"
    config.write_text(f"records: {{database: 'sqlite:///{seeded.db}'}}\n"
                      "reports: {agent_cost_per_minute: 1.25, currency: USD}\n")
    data = _report_json(capsys, "--config", str(config), "--no-topics")
    assert data["cost_saved"]["agent_cost_per_minute"] == 1.25 and data["cost_saved"]["currency"] == "USD"
    config.write_text("reports: {agent_cost_per_minute: cheap}\n")
    assert main(["report", "--config", str(config)]) == 2
    assert "agent_cost_per_minute" in capsys.readouterr().err


@pytest.fixture(scope="module")
def pg():
    yield from pg_server()


def test_postgresql_gives_the_same_report(seeded, pg, tmp_path):
    url = pg.new_database()
    _seed(url, tmp_path / "spool")
    rng = Range(START_S - 86400, START_S + SPAN_S + 86400)
    reports = []
    for where in (seeded.url, url):
        backend = open_records(where)
        try:
            if where == url:
                assert backend.fetch("SHOW jit") == [{"jit": "off"}]   # compiling cost more than running
            data = build_report(backend, rng, Costs(0.5, "EUR"))
        finally:
            backend.close()
        data.pop("timings_ms")
        reports.append(data)
    assert reports[0] == reports[1]


def test_topics_group_rewordings_deterministically():
    rows = [{"text": t, "turns": n} for t, n in [
        ("is my blender under warranty", 5), ("warranty for a broken blender", 3), ("gift card balance", 4),
        ("how much is left on my gift card", 2), ("are you hiring", 1)]]
    first, again = topics(rows), topics(list(reversed(rows)))
    assert first == again
    groups = {tp["label"]: {u["text"] for u in tp["utterances"]} for tp in first}
    assert groups["is my blender under warranty"] == {"is my blender under warranty", "warranty for a broken blender"}
    assert any("gift card balance" in g and "how much is left on my gift card" in g for g in groups.values())
    vectors = embed(["a", "b"], None)
    assert cluster(vectors, threshold=1.01) == [[0], [1]]


# ---- the dashboard over real HTTP ---------------------------------------------------------

async def _dashboard(seeded, users_file: Path, who: tuple[str, str] | None, query: str = ""):
    from ivr.service.config import ServeConfig
    from ivr.service.listeners import HealthServer
    from ivr.web.auth import AuthSettings

    cfg = ServeConfig(database=seeded.url, auth=AuthSettings(users_file=users_file), agent_cost_per_minute=0.5,
                      currency="EUR")
    service = SimpleNamespace(cfg=cfg, metrics=None, transfers={}, health=lambda: {"ok": True})
    server = HealthServer(service, "127.0.0.1", 0)
    host, port = await server.start()
    try:
        async with aiohttp.ClientSession(f"http://{host}:{port}", cookie_jar=aiohttp.CookieJar(unsafe=True)) as c:
            if who:
                page = await (await c.get("/login")).text()
                csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
                await c.post("/login", data={"csrf": csrf, "user": who[0], "password": who[1]})
            response = await c.get("/dashboard" + query, allow_redirects=False)
            return response.status, response.headers, await response.text()
    finally:
        await server.stop()


@pytest.fixture(scope="module")
def users_file(tmp_path_factory):
    from ivr.web.users import UserStore

    store = UserStore(tmp_path_factory.mktemp("users") / "users.json", cost=CHEAP)
    store.set_user("sue", "supervisor", "sue-password-1", must_exist=False)
    store.set_user("ann", "agent", "ann-password-1", must_exist=False)
    return store.path


def test_dashboard_needs_a_supervisor_login(seeded, users_file):
    status, headers, _ = asyncio.run(_dashboard(seeded, users_file, None))
    assert status == 303 and URL(headers["Location"]).path == "/login"
    assert URL(headers["Location"]).query["next"] == "/dashboard"
    status, _, text = asyncio.run(_dashboard(seeded, users_file, ("ann", "ann-password-1")))
    assert status == 403 and "supervisor" in text


def test_dashboard_draws_charts_and_escapes_what_callers_said(seeded, users_file):
    status, headers, page = asyncio.run(_dashboard(seeded, users_file, ("sue", "sue-password-1"), "?since=2026-11-01"))
    assert status == 200 and "default-src 'self'" in headers["Content-Security-Policy"]
    assert "<script" not in page.lower()                  # neither ours nor the caller's
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; my parcel" in page
    assert "&lt;b&gt;menu&lt;/b&gt;" in page and "<b>menu</b>" not in page
    assert page.count('class="chart"') >= 7 and page.count('class="bar"') > 50
    assert re.search(r'<b id="total-calls">301</b>', page)
    status, _, page = asyncio.run(_dashboard(seeded, users_file, ("sue", "sue-password-1"),
                                             "?since=2020-01-01&until=2020-01-02"))
    assert status == 200 and "no calls between 2020-01-01 00:00 and 2020-01-02 00:00 UTC" in page
    status, _, page = asyncio.run(_dashboard(seeded, users_file, ("sue", "sue-password-1"), "?since=<x>"))
    assert status == 400 and "&lt;x&gt;" in page and "<x>" not in page


def test_login_form_survives_a_second_login_render(seeded, users_file):
    """A browser fetches /favicon.ico after the login page; it is redirected to /login too, and that
    second render must not replace the CSRF cookie under the form already shown (found in chromium)."""
    from ivr.service.config import ServeConfig
    from ivr.service.listeners import HealthServer
    from ivr.web.auth import AuthSettings

    async def go():
        cfg = ServeConfig(database=seeded.url, auth=AuthSettings(users_file=users_file))
        server = HealthServer(SimpleNamespace(cfg=cfg, metrics=None, transfers={}, health=lambda: {"ok": True}),
                              "127.0.0.1", 0)
        host, port = await server.start()
        try:
            async with aiohttp.ClientSession(f"http://{host}:{port}", cookie_jar=aiohttp.CookieJar(unsafe=True)) as c:
                form = await (await c.get("/dashboard")).text()
                await c.get("/favicon.ico")      # -> /login again
                csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
                response = await c.post("/login", data={"csrf": csrf, "user": "sue", "password": "sue-password-1",
                                                        "next": "/dashboard"})
                return response.status, str(response.url.path)
        finally:
            await server.stop()
    assert asyncio.run(go()) == (200, "/dashboard")


def test_migration_fills_the_sentiment_column_of_older_turns(tmp_path, monkeypatch):
    from ivr.store import schema
    from ivr.store.backends import SqliteBackend

    old = SqliteBackend(tmp_path / "old.sqlite3")
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:2])   # a database from before migration 3
    old.open()
    old.conn.execute("INSERT INTO turns (call_id, idx, kind, at_s, data) VALUES ('c1', 0, 'speech', 5.0, ?)",
                     (json.dumps({"sentiment": -0.4}),))
    old.close()
    monkeypatch.undo()
    new = SqliteBackend(tmp_path / "old.sqlite3")
    new.open()
    try:
        assert new.fetch("SELECT sentiment FROM turns") == [{"sentiment": -0.4}]
        assert new.fetch("SELECT max(version) AS v FROM schema_version") == [{"v": schema.LATEST}]
    finally:
        new.close()
