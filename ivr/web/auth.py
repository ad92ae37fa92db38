"""Login for every page of the service's HTTP listener: sessions, CSRF, roles, rate limiting.

An aiohttp middleware decides per route: `public` (/health, /metrics: they have their own
token), `machine` (the bridges' webhooks: the webhook token if configured, else loopback
peers only), and everything else, including pages added later, `login`: a valid session,
else a redirect to /login (GET) or 401. Roles: agent < supervisor < admin
(`requires("supervisor")` on a handler).

Sessions live in the server's memory (a restart logs everyone out): a random 256-bit token in
an HttpOnly, SameSite=Strict cookie (Secure when configured), stored only as its SHA-256,
ending after `session_ttl` or `idle_timeout`, at logout, or when the user's password changes
or the user is removed. Every form POST carries the session's CSRF token (403 without it);
the login form uses a double-submit cookie. Wrong passwords are rate limited per user+IP and
per IP (exponential lockout, 429 with Retry-After) and logged once per interval with a count.
"""

import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from ivr.web.throttle import FailureLog, LoginThrottle
from ivr.web.users import ROLES, User, UserStore, role_at_least

log = logging.getLogger("ivr.web")

PUBLIC, MACHINE, LOGIN = "public", "machine", "login"
SESSION_COOKIE, LOGIN_CSRF_COOKIE = "ivr_session", "ivr_login_csrf"
MAX_SESSIONS = 10_000
MAX_FORM_BYTES = 16_384
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")   # secrets.token_urlsafe(32)
ACCESS = web.AppKey("ivr_auth", object)
_RequestKey = getattr(web, "RequestKey", None)   # aiohttp >= 3.13; plain strings before
USER = _RequestKey("ivr_user", object) if _RequestKey else "ivr_user"
SESSION = _RequestKey("ivr_session", object) if _RequestKey else "ivr_session"
FORM = _RequestKey("ivr_form", dict) if _RequestKey else "ivr_form"


@dataclass(slots=True)
class AuthSettings:
    users_file: Path = Path("users.json")
    session_ttl_ms: int = 8 * 3_600_000
    idle_timeout_ms: int = 30 * 60_000
    secure_cookie: bool = False        # true behind HTTPS (a TLS-terminating proxy)
    webhook_token: str | None = None   # IVR_WEBHOOK_TOKEN: the bridges' webhooks need it when set
    max_failures: int = 5              # wrong passwords per user+IP before the lockout starts
    lockout_ms: int = 30_000           # first lockout; doubles with each further failure
    max_lockout_ms: int = 15 * 60_000


@dataclass(slots=True)
class Session:
    user: str
    csrf: str
    created_s: float
    expires_s: float
    seen_s: float


class Sessions:
    """Server-side sessions keyed by the SHA-256 of the cookie token."""

    def __init__(self, ttl_ms: int, idle_ms: int, clock=time.time) -> None:
        self.ttl_s, self.idle_s, self.clock = ttl_ms / 1000, idle_ms / 1000, clock
        self._by_hash: dict[str, Session] = {}

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()

    def create(self, user: str) -> tuple[str, Session]:
        now = self.clock()
        self.sweep(now)
        if len(self._by_hash) >= MAX_SESSIONS:   # bounded: the oldest session goes
            del self._by_hash[min(self._by_hash, key=lambda k: self._by_hash[k].seen_s)]
        token = secrets.token_urlsafe(32)        # 256 bits
        session = Session(user, secrets.token_urlsafe(32), now, now + self.ttl_s, now)
        self._by_hash[self._key(token)] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        if not token or len(token) > 128:
            return None
        key, now = self._key(token), self.clock()
        session = self._by_hash.get(key)
        if session is None:
            return None
        if now >= session.expires_s or now - session.seen_s >= self.idle_s:
            del self._by_hash[key]
            return None
        session.seen_s = now
        return session

    def end(self, token: str | None) -> None:
        if token:
            self._by_hash.pop(self._key(token), None)

    def sweep(self, now: float) -> None:
        for key in [k for k, s in self._by_hash.items() if now >= s.expires_s or now - s.seen_s >= self.idle_s]:
            del self._by_hash[key]


def current_user(request: web.Request) -> User | None:
    """The logged-in user of a request that passed the login gate (None on public routes)."""
    return request.get(USER)


def requires(role: str):
    """Handler decorator: the logged-in user needs at least `role` (403 otherwise)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def wrap(handler):
        async def checked(request: web.Request):
            user = current_user(request)
            if user is None or not role_at_least(user.role, role):
                raise web.HTTPForbidden(text=f"this page needs the {role} role")
            return await handler(request)
        checked.__name__ = getattr(handler, "__name__", "handler")
        return checked
    return wrap


class Auth:
    def __init__(self, settings: AuthSettings, access: dict[str, str] | None = None, clock=time.time) -> None:
        self.settings, self.clock = settings, clock
        self.users = UserStore(settings.users_file)
        self.sessions = Sessions(settings.session_ttl_ms, settings.idle_timeout_ms, clock)
        self.throttle = LoginThrottle(settings.max_failures, settings.lockout_ms, settings.max_lockout_ms, clock)
        self.failures = FailureLog(log, 60.0, clock)
        self.access = {"/health": PUBLIC, "/metrics": PUBLIC, "/login": PUBLIC, **(access or {})}
        self.pages = Environment(loader=PackageLoader("ivr.web", "templates"), autoescape=select_autoescape(
            default=True, default_for_string=True))

    def install(self, app: web.Application) -> None:
        """Protect every route of `app` (call before it starts) and add /login, /logout and /."""
        app[ACCESS] = self
        app.middlewares.append(self.middleware)
        app.router.add_get("/login", self.login_page)
        app.router.add_post("/login", self.login)
        app.router.add_post("/logout", self.logout)
        app.router.add_get("/", self.home)
        if not self.users.users():
            log.warning("no web users in %s: every page but /health and /metrics refuses; add one with "
                        "`ivr users add NAME --role admin`", self.settings.users_file)

    # ---- the gate ------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        route = request.match_info.route.resource
        kind = self.access.get(route.canonical if route is not None else "", LOGIN)
        if kind == PUBLIC:
            return await handler(request)
        if kind == MACHINE:
            self._check_machine(request)
            return await handler(request)
        token = request.cookies.get(SESSION_COOKIE)
        session = self.sessions.get(token)
        user = self._current_user(session)
        if session is None or user is None:
            self.sessions.end(token)
            if request.method in ("GET", "HEAD"):
                raise web.HTTPSeeOther("/login?" + urlencode({"next": _local_path(request.path_qs)}))
            raise web.HTTPUnauthorized(text="log in first: GET /login")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            await self._check_csrf(request, session.csrf)
        request[USER], request[SESSION] = user, session
        response = await handler(request)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    def _current_user(self, session: Session | None) -> User | None:
        if session is None:
            return None
        user = self.users.get(session.user)
        if user is None or user.changed_s > session.created_s:   # removed, or password changed since login
            return None
        return user

    def _check_machine(self, request: web.Request) -> None:
        expected = self.settings.webhook_token
        if expected is None:
            if request.remote not in ("127.0.0.1", "::1"):
                raise web.HTTPForbidden(text="webhooks answer loopback peers only; set IVR_WEBHOOK_TOKEN")
            return
        given = request.query.get("token", "")
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            given = header[7:]
        elif header.startswith("Basic "):
            given = _basic_password(header[6:])
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise web.HTTPUnauthorized(text="webhook token missing or wrong",
                                       headers={"WWW-Authenticate": 'Basic realm="ivr webhooks"'})

    async def _check_csrf(self, request: web.Request, expected: str) -> None:
        given = request.headers.get("X-CSRF-Token", "")
        if not given and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            given = str((await _form(request)).get("csrf", ""))
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the page and try again")

    # ---- pages ---------------------------------------------------------------------

    def render(self, template: str, status: int = 200, **values) -> web.Response:
        html = self.pages.get_template(template).render(**values)
        return web.Response(text=html, status=status, content_type="text/html", headers={
            "Cache-Control": "no-store", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; "
                                       "form-action 'self'"})

    async def login_page(self, request: web.Request, error: str = "", status: int = 200,
                         name: str = "") -> web.Response:
        # the browser's own token when it has one: a second /login render (a redirected favicon request,
        # another tab) must not replace the cookie under a form already shown
        csrf = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not _TOKEN.fullmatch(csrf):
            csrf = secrets.token_urlsafe(32)
        response = self.render("login.html", status, csrf=csrf, error=error, name=name,
                               next=_local_path(request.query.get("next", "/")))
        response.set_cookie(LOGIN_CSRF_COOKIE, csrf, httponly=True, samesite="Strict", path="/login",
                            secure=self.settings.secure_cookie, max_age=3600)
        return response

    async def login(self, request: web.Request) -> web.Response:
        form = await _form(request)
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(str(form.get("csrf", "")).encode(), expected.encode()):
            raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the login page and try again")
        name, password = str(form.get("user", ""))[:128], str(form.get("password", ""))[:1024]
        ip = request.remote or "?"
        wait_s = self.throttle.wait_s(name, ip)
        if wait_s > 0:
            self.failures.note(name, ip, locked=True)
            response = await self.login_page(request, f"Too many failed logins. Try again in {int(wait_s) + 1} s.",
                                             429, name)
            response.headers["Retry-After"] = str(int(wait_s) + 1)
            return response
        user = await self.throttle.run(self.users.authenticate, name, password)
        if user is None:
            self.throttle.failed(name, ip)
            self.failures.note(name, ip)
            return await self.login_page(request, "Wrong user name or password.", 401, name)
        self.throttle.succeeded(name, ip)
        self.sessions.end(request.cookies.get(SESSION_COOKIE))   # a new token at every login (no fixation)
        token, _ = self.sessions.create(user.name)
        log.info("web login: %r (%s) from %s", user.name, user.role, ip)
        response = web.HTTPSeeOther(_local_path(str(form.get("next", "/"))))
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Strict", path="/",
                            secure=self.settings.secure_cookie)
        response.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        self.sessions.end(request.cookies.get(SESSION_COOKIE))
        log.info("web logout: %r", request[USER].name)
        response = web.HTTPSeeOther("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response

    async def home(self, request: web.Request) -> web.Response:
        user, session = request[USER], request[SESSION]
        return self.render("home.html", user=user, csrf=session.csrf, idle_min=round(self.sessions.idle_s / 60),
                           expires=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(session.expires_s)))


async def _form(request: web.Request) -> dict:
    """The POSTed form, read once per request and bounded in size."""
    if FORM not in request:
        if (request.content_length or 0) > MAX_FORM_BYTES:
            raise web.HTTPRequestEntityTooLarge(MAX_FORM_BYTES, request.content_length or 0)
        request[FORM] = dict(await request.post())
    return request[FORM]


def _local_path(target: str) -> str:
    """Only a path on this server: no scheme, host or '//' (an open redirect otherwise)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or any(ord(c) < 32 for c in target):
        return "/"
    return target


def _basic_password(encoded: str) -> str:
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")[2]
    except (binascii.Error, UnicodeDecodeError):
        return ""
