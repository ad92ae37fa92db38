"""The demo backend over real sockets on 127.0.0.1: seed, lookups, tickets, token auth, the CLI."""

import asyncio
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

import aiohttp
import pytest

from ivr.demo_backend import ensure_db, start_backend


def dump(db_path) -> dict:
    with sqlite3.connect(db_path) as db:
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("customers", "orders")}


def test_seed_is_deterministic_and_plausible(tmp_path):
    ensure_db(tmp_path / "a.db")
    ensure_db(tmp_path / "b.db")
    a, b = dump(tmp_path / "a.db"), dump(tmp_path / "b.db")
    assert a == b
    assert len(a["customers"]) == 10 and len(a["orders"]) == 20
    assert {c[3] for c in a["customers"]} >= {"+15550100", "+15550101", "+8613800138000"}
    assert any(c[1] == "王伟" and c[5] == "zh-CN" for c in a["customers"])
    orders = {o[0]: o for o in a["orders"]}
    assert all(len(o) == 6 and o.isdigit() for o in orders)
    assert orders["481516"][2] == "shipped"
    assert {o[2] for o in a["orders"]} == {"processing", "shipped", "delivered", "cancelled"}
    assert any(o[10] for o in a["orders"]) and not all(o[10] for o in a["orders"])   # some returnable
    assert not list(tmp_path.glob("*.seeding"))


async def _session_against(tmp_path, token=None):
    runner, base = await start_backend(db_path=tmp_path / "demo.db", token=token)
    return runner, base, aiohttp.ClientSession()


async def _get(session, url, **kw):
    async with session.get(url, **kw) as r:
        return r.status, await r.json()


async def _post(session, url, body, **kw):
    async with session.post(url, json=body, **kw) as r:
        return r.status, await r.json()


def test_lookups(tmp_path):
    async def go():
        runner, base, s = await _session_against(tmp_path)
        try:
            return {
                "health": await _get(s, f"{base}/health"),
                "order": await _get(s, f"{base}/orders/481516"),
                "missing": await _get(s, f"{base}/orders/123456"),
                "malformed": await _get(s, f"{base}/orders/12ab"),
                "customer": await _get(s, f"{base}/customers", params={"phone": "+15550101"}),
                "unknown": await _get(s, f"{base}/customers", params={"phone": "+15559999"}),
                "no_phone": await _get(s, f"{base}/customers"),
                "orders": await _get(s, f"{base}/customers/1/orders"),
                "no_customer": await _get(s, f"{base}/customers/99/orders"),
                "no_route": await _get(s, f"{base}/nothing/here"),
            }
        finally:
            await s.close()
            await runner.cleanup()

    r = asyncio.run(go())
    assert r["health"] == (200, {"ok": True})
    status, order = r["order"]
    assert status == 200 and order["order_id"] == "481516" and order["status"] == "shipped"
    assert order["carrier"] and order["shipped_on"] and order["eta"] and order["delivered_on"] is None
    assert order["total"]["currency"] == "USD" and order["total"]["amount"].count(".") == 1
    assert isinstance(order["returnable"], bool) and isinstance(order["items"], int)
    assert r["missing"] == (404, {"error": "not found"})
    assert r["malformed"][0] == 400 and "6 digits" in r["malformed"][1]["error"]
    assert r["customer"] == (200, {"id": 2, "name": "Bob Smith", "first_name": "Bob", "phone": "+15550101",
                                   "vip": False, "language": "en-US"})
    assert r["unknown"][0] == 404 and r["no_phone"][0] == 400
    status, orders = r["orders"]
    assert status == 200 and "481516" in [o["order_id"] for o in orders["orders"]]
    assert all(o["customer_id"] == 1 for o in orders["orders"])
    assert r["no_customer"][0] == 404 and r["no_route"] == (404, {"error": "not found"})


def test_tickets_created_validated_and_kept(tmp_path):
    async def go():
        runner, base, s = await _session_against(tmp_path)
        try:
            orders = (await _get(s, f"{base}/customers/4/orders"))[1]["orders"]
            returnable = next(o["order_id"] for o in orders if o["returnable"])
            first = await _post(s, f"{base}/tickets", {"kind": "callback", "phone": "+15550101", "note": "after 5"})
            ret = await _post(s, f"{base}/tickets", {"kind": "return", "order_id": returnable})
            bad = [await _post(s, f"{base}/tickets", body) for body in (
                {"phone": "+15550101"}, {"kind": "hug", "phone": "+15550101"}, {"kind": "callback"},
                {"kind": "callback", "phone": "5550101"}, {"kind": "return", "order_id": "12"},
                {"kind": "return", "order_id": "000000"}, {"kind": "return", "phone": "+15550101"},
                {"kind": "other", "phone": "+15550101", "note": "x" * 501}, ["kind", "return"],
            )]
            not_returnable = await _post(s, f"{base}/tickets", {"kind": "return", "order_id": "481516"})
            async with s.post(f"{base}/tickets", data=b"{nope", headers={"Content-Type": "application/json"}) as r:
                garbage = r.status, await r.json()
        finally:
            await s.close()
            await runner.cleanup()
        # a restart keeps the data and the ticket sequence
        runner, base, s = await _session_against(tmp_path)
        try:
            again = await _post(s, f"{base}/tickets", {"kind": "callback", "order_id": 481516})
        finally:
            await s.close()
            await runner.cleanup()
        return first, ret, bad, not_returnable, garbage, again

    first, ret, bad, not_returnable, garbage, again = asyncio.run(go())
    assert first[0] == 201 and first[1]["ticket_id"] == "T10001" and first[1]["note"] == "after 5"
    assert first[1]["kind"] == "callback" and first[1]["status"] == "open"
    assert ret[0] == 201 and ret[1]["ticket_id"] == "T10002"
    assert [status for status, _ in bad] == [400] * len(bad)
    assert all(body["error"] for _, body in bad)
    assert "kind must be one of" in bad[1][1]["error"]
    assert not_returnable == (409, {"error": "order 481516 is not returnable"})
    assert garbage == (400, {"error": "body must be JSON"})
    assert again[0] == 201 and again[1]["ticket_id"] == "T10003" and again[1]["order_id"] == "481516"


def test_bearer_token(tmp_path):
    async def go():
        runner, base, s = await _session_against(tmp_path, token="demo-s3cret")
        try:
            return (await _get(s, f"{base}/orders/481516"),
                    await _get(s, f"{base}/orders/481516", headers={"Authorization": "Bearer wrong"}),
                    await _get(s, f"{base}/orders/481516", headers={"Authorization": "Bearer demo-s3cret"}),
                    await _get(s, f"{base}/health"))
        finally:
            await s.close()
            await runner.cleanup()

    none, wrong, right, health = asyncio.run(go())
    assert none[0] == 401 and wrong[0] == 401 and "token" in wrong[1]["error"]
    assert right[0] == 200 and health == (200, {"ok": True})


def test_runs_as_a_module(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "ivr.demo_backend", "--port", str(port), "--db",
                             str(tmp_path / "cli.db")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/orders/481516", timeout=1) as r:
                    assert r.status == 200 and b'"481516"' in r.read()
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"backend did not start: {proc.stdout.read().decode() if proc.stdout else ''}")
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(5)
    assert (tmp_path / "cli.db").exists()
