"""Login for the service's web pages, over real HTTP on 127.0.0.1: the HTTP listener itself
(HealthServer) with its auth middleware, a users file written by `ivr users`, and a client
that keeps cookies like a browser."""

import asyncio
import logging
import re
import subprocess
import sys
import time
from base64 import b64encode
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from ivr.service.listeners import HealthServer
from ivr.service.transfers import TransferBook
from ivr.web.auth import SESSION_COOKIE, Auth, AuthSettings, current_user, requires
from ivr.web.users import UserStore, verify_password

CHEAP = (2 ** 10, 8, 1)   # scrypt cost for test users (the server verifies with what is stored)
EVIL = "<script>alert(1)</script>"


@pytest.fixture
def users(tmp_path) -> UserStore:
    store = UserStore(tmp_path / "users.json", cost=CHEAP)
    store.set_user("ann", "agent", "ann-password-1", must_exist=False)
    store.set_user("sue", "supervisor", "sue-password-1", must_exist=False)
    store.set_user(EVIL, "admin", "evil-password-1", must_exist=False)
    return store


def settings(users: UserStore, **kw) -> AuthSettings:
    return AuthSettings(users_file=users.path, **kw)


@asynccontextmanager
async def listener(auth: AuthSettings, transfers: dict | None = None):
    """The service's real HTTP listener, with a stand-in for the rest of the service."""
    book = TransferBook()
    for peer_id, entry in (transfers or {}).items():
        book.note(peer_id, entry)
    service = SimpleNamespace(cfg=SimpleNamespace(auth=auth, metrics_token=None), metrics=None, store=None,
                              transfers=book, health=lambda: {"ok": True})
    server = HealthServer(service, "127.0.0.1", 0)
    host, port = await server.start()
    jar = aiohttp.CookieJar(unsafe=True)   # cookies for an IP address, like a browser on http://127.0.0.1
    async with aiohttp.ClientSession(f"http://{host}:{port}", cookie_jar=jar) as client:
        try:
            yield server, client
        finally:
            await server.stop()


async def login(client, name: str, password: str, next_path: str = "/"):
    page = await (await client.get("/login")).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    return await client.post("/login", data={"csrf": csrf, "user": name, "password": password, "next": next_path},
                             allow_redirects=False)


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_nothing_but_health_without_login(users):
    async def go():
        async with listener(settings(users)) as (_, client):
            health = await client.get("/health")
            page = await client.get("/", allow_redirects=False)
            unknown = await client.get("/dashboard?x=1", allow_redirects=False)
            post = await client.post("/logout", allow_redirects=False)
            metrics = await client.get("/metrics")
            return health.status, page, unknown, post.status, metrics.status
    health, page, unknown, post, metrics = asyncio.run(go())
    assert health == 200
    assert page.status == 303 and URL(page.headers["Location"]).path == "/login"
    assert URL(page.headers["Location"]).query["next"] == "/"
    assert unknown.status == 303 and URL(unknown.headers["Location"]).query["next"] == "/dashboard?x=1"
    assert post == 401
    assert metrics == 404   # not behind the login: the metrics module answers itself (off here)


def test_login_session_cookie_and_escaped_name(users):
    async def go():
        async with listener(settings(users)) as (_, client):
            answer = await login(client, EVIL, "evil-password-1", "/")
            home = await client.get("/", allow_redirects=False)
            return answer, home.status, await home.text()
    answer, status, html = asyncio.run(go())
    assert answer.status == 303 and answer.headers["Location"] == "/"
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie
    assert len(answer.cookies[SESSION_COOKIE].value) >= 43   # 256 bits, base64url
    assert status == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and EVIL not in html


def test_secure_cookie_when_configured(users):
    async def go():
        async with listener(settings(users, secure_cookie=True)) as (_, client):
            page = await client.get("/login")
            # the browser keeps a Secure cookie for HTTPS only: over plain HTTP the login form fails
            refused = await client.post("/login", data={"csrf": csrf_of(await page.text()), "user": "ann",
                                                         "password": "ann-password-1"}, allow_redirects=False)
            return page.headers["Set-Cookie"], refused.status
    cookie, refused = asyncio.run(go())
    assert "Secure" in cookie and refused == 403


def test_forged_and_expired_sessions_are_refused(users):
    async def go():
        async with listener(settings(users)) as (server, client):
            client.cookie_jar.update_cookies({SESSION_COOKIE: "A" * 43})
            forged = await client.get("/", allow_redirects=False)
            await login(client, "ann", "ann-password-1")
            fresh = await client.get("/", allow_redirects=False)
            sessions = server.auth.sessions
            sessions.clock = lambda: time.time() + 31 * 60     # idle past 30 minutes
            idle = await client.get("/", allow_redirects=False)
            sessions.clock = time.time
            await login(client, "ann", "ann-password-1")
            sessions.idle_s = 24 * 3600
            sessions.clock = lambda: time.time() + 9 * 3600    # past the 8 h lifetime, however active
            expired = await client.get("/", allow_redirects=False)
            return forged.status, fresh.status, idle.status, expired.status
    assert asyncio.run(go()) == (303, 200, 303, 303)


def test_password_change_ends_sessions(users):
    async def go():
        async with listener(settings(users)) as (_, client):
            await login(client, "ann", "ann-password-1")
            before = await client.get("/", allow_redirects=False)
            await asyncio.sleep(0.01)   # a later change time than the session's start
            users.set_user("ann", None, "ann-password-2", must_exist=True)
            after = await client.get("/", allow_redirects=False)
            return before.status, after.status
    assert asyncio.run(go()) == (200, 303)


def test_wrong_passwords_are_rate_limited_and_logged_once(users, caplog):
    async def go():
        async with listener(settings(users, max_failures=3)) as (_, client):
            wrong = [(await login(client, "ann", f"guess-{i}")).status for i in range(5)]
            right = await login(client, "ann", "ann-password-1")
            other = await login(client, "sue", "sue-password-1")   # another user from the same IP still can
            return wrong, right, other.status
    with caplog.at_level(logging.WARNING, logger="ivr.web"):
        wrong, right, other = asyncio.run(go())
    assert wrong == [401, 401, 401, 429, 429]
    assert right.status == 429 and int(right.headers["Retry-After"]) > 0
    assert other == 303
    lines = [r.getMessage() for r in caplog.records if "web login" in r.getMessage()]
    assert lines == ["web login failed for user 'ann' from 127.0.0.1"]


def test_csrf_is_required_on_every_form(users):
    async def go():
        async with listener(settings(users)) as (_, client):
            no_token = await client.post("/login", data={"user": "ann", "password": "ann-password-1"},
                                         allow_redirects=False)
            await login(client, "ann", "ann-password-1")
            page = await (await client.get("/")).text()
            logout_without = await client.post("/logout", data={}, allow_redirects=False)
            still_in = await client.get("/", allow_redirects=False)
            token = client.cookie_jar.filter_cookies(client._base_url)[SESSION_COOKIE].value
            logout = await client.post("/logout", data={"csrf": csrf_of(page)}, allow_redirects=False)
            after = await client.get("/", allow_redirects=False)
            client.cookie_jar.update_cookies({SESSION_COOKIE: token})   # the old cookie, replayed
            replayed = await client.get("/", allow_redirects=False)
            return no_token.status, logout_without.status, still_in.status, logout.status, after.status, \
                replayed.status
    assert asyncio.run(go()) == (403, 403, 200, 303, 303, 303)


def test_login_redirects_only_to_local_paths(users):
    async def go():
        async with listener(settings(users)) as (_, client):
            return [(await login(client, "ann", "ann-password-1", target)).headers["Location"]
                    for target in ("//evil.example/x", "https://evil.example/", "/reports?day=1")]
    assert asyncio.run(go()) == ["/", "/", "/reports?day=1"]


def test_roles(users):
    @requires("supervisor")
    async def report(request):
        return web.Response(text=f"report for {current_user(request).name}")

    async def go():
        app = web.Application()
        Auth(settings(users)).install(app)
        app.router.add_get("/report", report)   # added after install: still behind the login
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        out = []
        try:
            for name, password in (("ann", "ann-password-1"), ("sue", "sue-password-1")):
                jar = aiohttp.CookieJar(unsafe=True)
                async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", cookie_jar=jar) as client:
                    anonymous = await client.get("/report", allow_redirects=False)
                    await login(client, name, password)
                    out.append((anonymous.status, (await client.get("/report")).status))
        finally:
            await runner.cleanup()
        return out
    assert asyncio.run(go()) == [(303, 403), (303, 200)]


def test_webhooks_keep_working_and_take_their_own_token(users):
    transfers = {"c1": {"target": "sip:agents@127.0.0.1"}}

    async def go(token):
        async with listener(settings(users, webhook_token=token), transfers) as (_, client):
            plain = await client.get("/calls/c1/transfer")
            query = await client.get("/calls/c1/transfer?token=hook-secret")
            bearer = await client.get("/calls/c1/transfer", headers={"Authorization": "Bearer hook-secret"})
            twilio = await client.post("/twilio/after-stream", data={"CallSid": "c1"},
                                       headers={"Authorization": "Basic " + b64encode(b"twilio:hook-secret").decode()})
            return [(r.status, await r.text()) for r in (plain, query, bearer, twilio)]
    open_ = asyncio.run(go(None))
    assert [s for s, _ in open_] == [200, 200, 200, 200] and open_[0][1] == "sip:agents@127.0.0.1"
    guarded = asyncio.run(go("hook-secret"))
    assert [s for s, _ in guarded] == [401, 200, 200, 200]
    assert "<Sip>sip:agents@127.0.0.1</Sip>" in guarded[3][1]


def test_users_command(tmp_path):
    path = tmp_path / "web" / "users.json"

    def ivr(*args, stdin=""):
        return subprocess.run([sys.executable, "-m", "ivr", "users", "--file", str(path), *args], input=stdin,
                              capture_output=True, text=True, timeout=60)
    assert ivr("add", "ann", "--role", "agent", "--password-stdin", stdin="first-password\n").returncode == 0
    assert path.stat().st_mode & 0o777 == 0o600
    again = ivr("add", "ann", "--role", "admin", "--password-stdin", stdin="x-password-2\n")
    assert again.returncode == 2 and "exists already" in again.stderr
    short = ivr("passwd", "ann", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "8 to 1024 characters" in short.stderr
    assert ivr("passwd", "ann", "--role", "supervisor", "--password-stdin", stdin="second-password\n").returncode == 0
    user = UserStore(path).get("ann")
    assert user.role == "supervisor" and verify_password("second-password", user.password)
    assert not verify_password("first-password", user.password)
    assert "ann\tsupervisor" in ivr("list").stdout
    assert list(Path(path.parent).glob(".*.tmp")) == []   # atomic write left nothing behind


def test_web_config(tmp_path):
    from ivr.errors import UserError
    from ivr.service.config import load_config

    path = tmp_path / "ivr.yaml"
    path.write_text("web: {users: secret/users.json, session: 2h, idle_timeout: 10min, secure_cookie: true}\n")
    auth = load_config(path, {"IVR_WEBHOOK_TOKEN": "hook"}).auth
    assert (auth.users_file, auth.session_ttl_ms, auth.idle_timeout_ms) == (tmp_path / "secret/users.json",
                                                                          7_200_000, 600_000)
    assert auth.secure_cookie is True and auth.webhook_token == "hook"
    for bad, message in (("web: {sesion: 2h}", "unknown key web.sesion"), ("web: {session: 2}", "web.session"),
                         ("web: {secure_cookie: 'yes'}", "web.secure_cookie must be true or false")):
        path.write_text(bad + "\n")
        with pytest.raises(UserError, match=message):
            load_config(path, {})


def test_a_broken_users_file_refuses_everyone_without_crashing(users, caplog):
    async def go():
        async with listener(settings(users)) as (_, client):
            await login(client, "ann", "ann-password-1")
            users.path.write_text("{not json")
            home = await client.get("/", allow_redirects=False)
            again = await login(client, "ann", "ann-password-1")
            return home.status, again.status
    with caplog.at_level(logging.ERROR, logger="ivr.web"):
        assert asyncio.run(go()) == (303, 401)
    assert any("not a users file" in r.getMessage() for r in caplog.records)


def test_failure_log_counts_between_lines(caplog):
    from ivr.web.throttle import FailureLog

    now = [1000.0]
    failures = FailureLog(logging.getLogger("ivr.web"), 60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="ivr.web"):
        logged = []
        for t in (0, 5, 10, 61, 70):
            now[0] = 1000.0 + t
            logged.append(failures.note("bob\nFAKE LINE", "203.0.113.9", locked=t >= 61))
    assert logged == [True, False, False, True, False]
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["web login failed for user 'bob\\nFAKE LINE' from 203.0.113.9",
                     "web login: 3 failed attempts for user 'bob\\nFAKE LINE' from 203.0.113.9 in the last 61 s "
                     "(locked out)"]
