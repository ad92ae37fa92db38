"""The HTTP step client against real servers on 127.0.0.1: the demo backend and tiny fault servers."""

import asyncio
import socket
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from ivr.demo_backend import start_backend
from ivr.durations import parse_duration_ms
from ivr.flow.http import (
    HttpClient,
    HttpRequest,
    quote_path,
    quote_query,
    validate_url,
)
from ivr.flow.http_fake import FakeResponses, RecordingHttpClient


@asynccontextmanager
async def serve(routes: list[tuple[str, str, object]]):
    """A throwaway aiohttp server on a free loopback port; yields its base URL."""
    app = web.Application()
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def fixed(response: web.Response):
    """A handler that always answers `response` (served once per test)."""
    async def handler(_):
        return response
    return handler


async def run_one(req: HttpRequest, **client_args):
    client = HttpClient(**client_args)
    try:
        return await client.execute(req)
    finally:
        await client.close()


# ---- against the demo backend --------------------------------------------------------------


def test_demo_backend_order_customer_and_404(tmp_path):
    async def go():
        runner, base = await start_backend(db_path=tmp_path / "demo.db", token="t0ken-demo")
        client = HttpClient()
        auth = (("Authorization", "Bearer t0ken-demo"),)
        try:
            order = await client.execute(HttpRequest("GET", f"{base}/orders/{quote_path('481516')}", auth))
            missing = await client.execute(HttpRequest("GET", f"{base}/orders/000000", auth, retries=2))
            url = f"{base}/customers?phone={quote_query('+15550101')}"
            customer = await client.execute(HttpRequest("GET", url, auth))
            url = f"{base}/customers?phone={quote_query('+8613800138000')}"
            zh = await client.execute(HttpRequest("GET", url, auth))
            raw_plus = await client.execute(HttpRequest("GET", f"{base}/customers?phone=+15550101", auth))
            no_auth = await client.execute(HttpRequest("GET", f"{base}/orders/481516"))
            ticket = await client.execute(HttpRequest("POST", f"{base}/tickets", auth,
                                                      json_body={"kind": "callback", "phone": "+8613800138000",
                                                                 "note": "请回电"}))
            return order, missing, customer, zh, raw_plus, no_auth, ticket
        finally:
            await client.close()
            await runner.cleanup()

    order, missing, customer, zh, raw_plus, no_auth, ticket = asyncio.run(go())
    assert order.ok and order.status == 200 and order.error == "" and order.attempts == 1
    assert order.data["order_id"] == "481516" and order.data["status"] == "shipped"
    assert set(order.data["total"]) == {"amount", "currency"}
    assert (missing.ok, missing.status, missing.error, missing.attempts) == (False, 404, "http_4xx", 1)
    assert missing.data is None
    assert "not found" in missing.detail
    assert customer.ok and customer.data["name"] == "Bob Smith" and customer.data["phone"] == "+15550101"
    assert zh.data["name"] == "王伟" and zh.data["language"] == "zh-CN"
    assert raw_plus.status == 400   # an unescaped "+" arrives as a space: why quote_query exists
    assert no_auth.status == 401 and no_auth.error == "http_4xx"
    assert ticket.status == 201 and ticket.data["note"] == "请回电" and ticket.data["ticket_id"].startswith("T")
    assert "t0ken-demo" not in order.detail + missing.detail


# ---- faults ----------------------------------------------------------------------------------


def test_slow_server_times_out():
    release = asyncio.Event()

    async def slow(_):
        await asyncio.wait_for(release.wait(), 5)
        return web.json_response({})

    async def go():
        async with serve([("GET", "/slow", slow)]) as base:
            try:
                return await run_one(HttpRequest("GET", f"{base}/slow", timeout_ms=200, retries=1))
            finally:
                release.set()

    r = asyncio.run(go())
    assert (r.ok, r.status, r.error, r.attempts) == (False, None, "timeout", 2)
    assert r.elapsed_ms >= 400          # two 200 ms attempts and a 200 ms backoff (never sooner; later when busy)
    assert "timeout" in r.detail and "2 attempts" in r.detail


def test_retries_on_5xx_but_not_on_4xx():
    counts = {"flaky": 0, "down": 0, "bad": 0}

    async def flaky(_):
        counts["flaky"] += 1
        return web.json_response({"n": counts["flaky"]}) if counts["flaky"] >= 3 else web.Response(status=503)

    async def down(_):
        counts["down"] += 1
        return web.Response(status=500, text="<html>Internal error</html>")

    async def bad(_):
        counts["bad"] += 1
        return web.json_response({"error": "bad order"}, status=422)

    async def go():
        async with serve([("GET", "/flaky", flaky), ("GET", "/down", down), ("POST", "/bad", bad)]) as base:
            return (await run_one(HttpRequest("GET", f"{base}/flaky", retries=2)),
                    await run_one(HttpRequest("GET", f"{base}/down", retries=1)),
                    await run_one(HttpRequest("POST", f"{base}/bad", json_body={}, retries=3)))

    flaky_r, down_r, bad_r = asyncio.run(go())
    assert flaky_r.ok and flaky_r.data == {"n": 3} and flaky_r.attempts == 3
    assert (down_r.error, down_r.status, down_r.attempts, counts["down"]) == ("http_5xx", 500, 2, 2)
    assert "Internal error" in down_r.detail
    assert (bad_r.error, bad_r.status, bad_r.attempts, counts["bad"]) == ("http_4xx", 422, 1, 1)


def test_bodies_garbage_huge_empty_list_and_redirect():
    huge = b"[" + b"1," * 600_000 + b"1]"

    async def garbage(_):
        return web.Response(text="<html><body>Gateway says hi</body></html>", content_type="text/html")

    async def chunked_huge(request):
        resp = web.StreamResponse()   # no Content-Length: the client must stop reading by itself
        await resp.prepare(request)
        for i in range(0, len(huge), 65536):
            await resp.write(huge[i:i + 65536])
        return resp

    async def go():
        routes = [("GET", "/garbage", garbage), ("GET", "/huge", fixed(web.Response(body=huge))),
                  ("GET", "/chunked", chunked_huge), ("DELETE", "/empty", fixed(web.Response(status=204))),
                  ("GET", "/list", fixed(web.json_response([1, {"a": "王"}]))),
                  ("GET", "/moved", fixed(web.Response(status=302, headers={"Location": "http://127.0.0.2/x"})))]
        async with serve(routes) as base:
            return [await run_one(HttpRequest(m, f"{base}{p}", retries=2))
                    for m, p in [("GET", "/garbage"), ("GET", "/huge"), ("GET", "/chunked"), ("DELETE", "/empty"),
                                 ("GET", "/list"), ("GET", "/moved")]]

    garbage_r, huge_r, chunked_r, empty_r, list_r, moved_r = asyncio.run(go())
    assert (garbage_r.ok, garbage_r.status, garbage_r.error, garbage_r.attempts) == (False, 200, "bad_json", 1)
    assert (huge_r.error, chunked_r.error, chunked_r.attempts) == ("too_large", "too_large", 1)
    assert empty_r.ok and empty_r.data == {} and empty_r.status == 204
    assert list_r.ok and list_r.data == [1, {"a": "王"}]
    assert (moved_r.ok, moved_r.status, moved_r.error) == (False, 302, "http_4xx")
    assert "not followed" in moved_r.detail


def test_connection_refused_and_bad_urls():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]   # closed once the block ends: nothing listens there

    async def go():
        return (await run_one(HttpRequest("GET", f"http://127.0.0.1:{port}/x", timeout_ms=1000, retries=1)),
                await run_one(HttpRequest("GET", "ftp://127.0.0.1/x")),
                await run_one(HttpRequest("GET", f"http://127.0.0.1:{port}/x"), allow_hosts=["localhost"]))

    refused, ftp, not_allowed = asyncio.run(go())
    assert (refused.ok, refused.status, refused.error, refused.attempts) == (False, None, "connect", 2)
    assert (ftp.error, ftp.attempts) == ("bad_url", 1)
    assert not_allowed.error == "bad_url" and "allow_hosts" in not_allowed.detail


def test_detail_and_recording_never_show_secrets():
    async def echo_500(request):   # a careless server that echoes the credentials back
        return web.Response(status=500, text=f"auth={request.headers['Authorization']} q={request.query_string}")

    async def go():
        async with serve([("POST", "/crm", echo_500)]) as base:
            recorder = RecordingHttpClient(HttpClient())
            req = HttpRequest("POST", f"{base}/crm?token=QSECRET-9&who=me", json_body={"a": 1},
                              headers=(("Authorization", "Bearer HSECRET-7"), ("X-Api-Key", "KSECRET-5")))
            try:
                return await recorder.execute(req), recorder
            finally:
                await recorder.close()

    r, recorder = asyncio.run(go())
    assert r.error == "http_5xx"
    assert "SECRET" not in r.detail and "token=***" in r.detail and "who=me" in r.detail
    rec = recorder.requests[0]
    assert rec.method == "POST" and rec.json_body == {"a": 1} and "SECRET" not in repr(rec)
    assert ("Authorization", "Bearer ***") in rec.headers and ("X-Api-Key", "***") in rec.headers


def test_path_escaping_reaches_the_server_as_one_segment():
    async def item(request):
        return web.json_response({"id": request.match_info["id"]})

    values = ["../x y/#?", "..", ".", "王伟", "a%2Fb", "+1 555"]

    async def go():
        async with serve([("GET", "/items/{id}", item)]) as base:
            return [await run_one(HttpRequest("GET", f"{base}/items/{quote_path(v)}")) for v in values]

    assert [r.data["id"] for r in asyncio.run(go())] == values


# ---- canned responses -------------------------------------------------------------------------


def test_fake_responses_sequences_delays_and_unmatched():
    fake = FakeResponses({
        "GET /orders/481516": {"json": {"status": "shipped"}},
        "GET /orders/*": {"status": 404, "json": {"error": "not found"}},
        "GET */customers?phone=*": [{"status": 503}, {"json": {"name": "Bob"}}],
        "POST http://crm.test/tickets": {"delay": "300ms", "json": {}},
    })
    recorder = RecordingHttpClient(fake)

    async def go():
        return [await recorder.execute(HttpRequest("GET", "http://crm.test/orders/481516")),
                await recorder.execute(HttpRequest("GET", "http://crm.test/orders/999999")),
                await recorder.execute(HttpRequest("GET", "http://crm.test/customers?phone=%2B15550101", retries=1)),
                await recorder.execute(HttpRequest("POST", "http://crm.test/tickets", timeout_ms=100)),
                await recorder.execute(HttpRequest("PUT", "http://crm.test/orders/1"))]

    shipped, missing, customer, slow, unmatched = asyncio.run(go())
    assert shipped.data == {"status": "shipped"}
    assert (missing.status, missing.error) == (404, "http_4xx")
    assert customer.ok and customer.data == {"name": "Bob"} and customer.attempts == 2
    assert slow.error == "timeout"
    assert unmatched.error == "connect" and fake.unmatched == ["PUT http://crm.test/orders/1"]
    assert [r.method for r in recorder.requests] == ["GET", "GET", "GET", "POST", "PUT"]
    with pytest.raises(ValueError, match="unknown keys"):
        FakeResponses({"GET /x": {"stauts": 200}})
    with pytest.raises(ValueError, match="GET /orders"):
        FakeResponses({"FETCH /x": {}})


# ---- pure helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("../x y/#?", "..%2Fx%20y%2F%23%3F"), ("..", "%2E%2E"), ("481516", "481516"), ("王伟", "%E7%8E%8B%E4%BC%9F"),
    ("a?b=c&d", "a%3Fb%3Dc%26d"), (42, "42"),
])
def test_quote_path(value, expected):
    assert quote_path(value) == expected


def test_quote_query_escapes_plus():
    assert quote_query("+15550101") == "%2B15550101"
    assert quote_query("a b&c=d") == "a%20b%26c%3Dd"


@pytest.mark.parametrize(("value", "ms"), [
    ("2s", 2000), ("500ms", 500), ("1.5s", 1500), (0, 0), ("1m", 60_000), (" 3 s ", 3000),
])
def test_parse_duration_ms(value, ms):
    assert parse_duration_ms(value) == ms


@pytest.mark.parametrize("value", ["2", 2, 2500, "abc", "2d", "-1s", -1, True, None, float("nan"), "1.5.s", ""])
def test_parse_duration_ms_rejects(value):
    with pytest.raises(ValueError, match=r"duration"):
        parse_duration_ms(value)


@pytest.mark.parametrize(("url", "problem"), [
    ("http://127.0.0.1:8099/orders/1", None), ("https://crm.example/x?y=1", None),
    ("ftp://host/x", "http://"), ("http:///x", "no host"), ("http://h:99999/", "port"),
    ("http://h/{{ slots.order_id }}", "unrendered"), ("http://h/a b", "whitespace"), ("orders/1", "http://"),
])
def test_validate_url(url, problem):
    found = validate_url(url)
    assert found is None if problem is None else problem in found.lower()


def test_request_rejects_bad_method():
    with pytest.raises(ValueError, match="method"):
        HttpRequest("FETCH", "http://127.0.0.1/")
