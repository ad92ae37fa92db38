"""The agent console (/console) and the supervisor view (/console/supervisor), live over /console/ws.

A hub subscriber like the records writer: `CallBook` (console_calls.py) folds the call events
into what a screen pop shows; when `AgentRinging` names an agent, the pop goes at once to that
agent's open consoles. Agent status lives in the service's `AgentDirectory` (ivr/agents), the
callback tasks in its `CallbackBook`; the console reads them and asks them for changes (set a
status, take a task), never reaching into a call. Dispositions go to the records database
through the records store's writer (the `dispositions` table).

Behind the login (ivr/web/auth.py; the socket's upgrade request carries the session cookie),
the socket also checks Origin against the page's own host, and its first message must carry
the page's per-session token; every message is checked by console_ws.parse. The browser gets
plain data and builds the page with textContent (static/console.js), never HTML.

An agent's last console closing: the call in progress goes on (the phone is bridged); the
agent goes `away` when it ends (or, idle, after `disconnect_grace` unless a console reopens:
a page reload keeps the status). This module: settings, pages, the socket and what the browser
asks; console_live.py: the hub subscriber, pushes, views and presence (a mixin).
"""

import asyncio
import contextlib
import hmac
import logging
import string
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from ivr.errors import UserError
from ivr.web import console_ws as proto
from ivr.web.auth import ACCESS, SESSION, SESSION_COOKIE, USER, requires
from ivr.web.console_calls import CallBook
from ivr.web.console_live import LiveViews, screen_pop_url
from ivr.web.users import role_at_least

log = logging.getLogger("ivr.web")
__all__ = ["Console", "ConsoleSettings", "check_screen_pop_url", "screen_pop_url"]

STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {"console.js": "text/javascript", "console.css": "text/css"}
DEFAULT_DISPOSITIONS = ("resolved", "follow_up", "escalated", "callback_scheduled", "wrong_number")
MAX_NOTES = 5_000


@dataclass(slots=True)
class ConsoleSettings:
    dispositions: tuple[str, ...] = DEFAULT_DISPOSITIONS
    screen_pop_url: str = ""            # e.g. https://crm.example/calls/{call_id}?from={caller}
    screen_pop_window: bool = False     # also window.open() it at the pop (else a link)
    disconnect_grace_ms: int = 15_000   # an idle agent whose consoles all closed goes away after this
    origins: tuple[str, ...] = ()       # other origins allowed to open the socket (a proxy's public name)


def check_screen_pop_url(template: str) -> str:
    """The CRM link template: http(s), placeholders only {call_id} and {caller}."""
    if not template:
        return ""
    if urlsplit(template).scheme not in ("http", "https"):
        raise UserError(f"console.screen_pop_url must be an http(s) URL, not {template!r}",
                        "e.g. https://crm.example.com/calls/{call_id}?phone={caller}")
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise UserError(f"console.screen_pop_url: {exc}", "write {call_id} and {caller}; a literal brace is {{") \
            from exc
    if names - {"call_id", "caller"}:
        raise UserError(f"console.screen_pop_url: unknown placeholder {{{sorted(names - {'call_id', 'caller'})[0]}}}",
                        "the placeholders are {call_id} and {caller}")
    return template


@dataclass(eq=False, slots=True)
class Conn:
    ws: web.WebSocketResponse
    user: object
    session: object
    cookie: str
    auth: object              # the listener's ivr.web.auth.Auth
    page: str = ""            # agent | supervisor, after hello
    errors: int = 0
    opened_s: float = field(default_factory=time.time)


class Console(LiveViews):
    def __init__(self, service, settings: ConsoleSettings | None = None, clock=time.time) -> None:
        self.service = service
        self.settings = settings or ConsoleSettings()
        self.clock = clock
        self.book = CallBook(clock=clock)
        self.conns: dict[str, set[Conn]] = {}     # user name -> open, greeted sockets
        self.notes: dict[tuple[str, str], str] = {}   # (call_id, agent) -> notes typed so far
        self.shown: dict[str, str] = {}             # agent -> the call their pop shows
        self.away_pending: set[str] = set()         # consoles closed during a call: away when it ends
        self._grace: dict[str, asyncio.TimerHandle] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dirty: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.pops_sent = 0
        self.refused = 0
        self._hooked: set[str] = set()

    @property
    def agents(self):
        return getattr(self.service, "agents", None)

    @property
    def queues(self):
        return getattr(self.service, "queues", None)

    @property
    def node_name(self) -> str:
        """This node's name, when several share the calls (the relay runs); else ""."""
        relay = getattr(self.service, "relay", None)
        return relay.node if relay is not None else ""

    # ---- wiring ----------------------------------------------------------------------

    def install(self, app: web.Application) -> None:
        app.router.add_get("/console", self.agent_page)
        app.router.add_get("/console/supervisor", requires("supervisor")(self.supervisor_page))
        app.router.add_get("/console/ws", self.socket)
        app.router.add_get("/console/static/{name}", self.static)
        app.on_shutdown.append(self._close_all)

    async def start(self) -> None:
        """Subscribe to the hub and the directory (on the running loop)."""
        self._loop = asyncio.get_running_loop()
        self._dirty = asyncio.Event()
        hub = getattr(self.service, "hub", None)
        if hub is not None:
            hub.subscribe(self.on_event, name="console")
        relay = getattr(self.service, "relay", None)
        if relay is not None:   # the other nodes' calls (ivr/service/relay.py): shown here, recorded there
            relay.add_sink(self)
        self._hook()
        self._task = self._loop.create_task(self._pusher(), name="console-push")

    def _hook(self) -> None:
        """Listen to the directory and the queues, once each (the service may make them after us)."""
        if self.agents is not None and "agents" not in self._hooked:
            self._hooked.add("agents")
            self.agents.on_change(self._agent_changed)
        if self.queues is not None and "queues" not in self._hooked:
            self._hooked.add("queues")
            self.queues.on_change(lambda _what, _data: self._mark())

    async def stop(self) -> None:
        relay = getattr(self.service, "relay", None)
        if relay is not None and self in relay.sinks:
            relay.sinks.remove(self)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for handle in self._grace.values():
            handle.cancel()
        await self._close_all()

    async def _close_all(self, _app=None) -> None:
        for conns in list(self.conns.values()):
            for conn in list(conns):
                with contextlib.suppress(Exception):
                    await conn.ws.close(code=1001, message=b"service stopping")

    # ---- pages -----------------------------------------------------------------------

    def _page(self, request: web.Request, page: str) -> web.Response:
        auth = request.app[ACCESS]
        session = request[SESSION]
        return auth.render("console.html", page=page, user=request[USER], csrf=session.csrf, token=session.csrf)

    async def agent_page(self, request: web.Request) -> web.Response:
        return self._page(request, "agent")

    async def supervisor_page(self, request: web.Request) -> web.Response:
        return self._page(request, "supervisor")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC_TYPES:
            raise web.HTTPNotFound()
        return web.Response(body=(STATIC / name).read_bytes(), content_type=STATIC_TYPES[name],
                            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    # ---- the socket ------------------------------------------------------------------

    def _origin_ok(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin", "")
        if not origin or origin == "null":
            return False
        if origin in self.settings.origins:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc.lower() == request.host.lower()

    async def socket(self, request: web.Request) -> web.StreamResponse:
        if not self._origin_ok(request):
            self.refused += 1
            log.warning("console: socket from origin %r refused (host %s)", request.headers.get("Origin", "")[:100],
                        request.host[:100])
            raise web.HTTPForbidden(text="this origin may not open the console socket")
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=proto.MAX_MESSAGE_BYTES * 4)
        await ws.prepare(request)
        conn = Conn(ws, request[USER], request[SESSION], request.cookies.get(SESSION_COOKIE, ""),
                    request.app[ACCESS])
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    if not await self._message(conn, msg.data):
                        break
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._closed(conn)
        return ws

    async def _message(self, conn: Conn, raw) -> bool:
        """Handle one browser message; False closes the socket."""
        user = self._still_logged_in(conn)
        if user is None:
            await self._send(conn, {"type": "bye", "error": "your session has ended: log in again"})
            return False
        try:
            msg = proto.parse(raw, lambda role: role_at_least(user.role, role))
            if msg["type"] != "ping":
                conn.auth.sessions.get(conn.cookie)   # the agent's action counts as activity; a ping does not
            if not conn.page and msg["type"] != "hello":
                raise proto.BadMessage("say hello first, with the page's token")
            reply = await self._act(conn, user, msg)
        except (proto.BadMessage, UserError) as exc:
            conn.errors += 1
            text = exc.message if isinstance(exc, UserError) else str(exc)
            log.info("console: %s's message refused: %s", user.name, text)
            await self._send(conn, {"type": "error", "error": text})
            return conn.errors < proto.MAX_ERRORS
        if reply is not None:
            await self._send(conn, reply)
        return True

    @staticmethod
    def _still_logged_in(conn: Conn):
        """The session still open (not logged out, expired, password changed, user removed)."""
        session = _peek(conn.auth.sessions, conn.cookie)
        if session is not conn.session:
            return None
        return conn.auth._current_user(session)

    async def _act(self, conn: Conn, user, msg: dict) -> dict | None:
        kind = msg["type"]
        if kind == "hello":
            return await self._hello(conn, user, msg)
        if kind == "ping":
            return {"type": "pong", "seq": msg.get("seq", 0), "now_s": self.clock()}
        if kind == "status":
            return self._set_status(user, msg["status"])
        if kind == "take_callback":
            return await self._take(user, msg["id"])
        if kind == "finish_callback":
            return await self._finish(user, msg["id"], msg["result"])
        if kind == "notes":
            self._call_of(user, msg["call_id"])
            if len(self.notes) >= MAX_NOTES and (msg["call_id"], user.name) not in self.notes:
                self.notes.pop(next(iter(self.notes)))
            self.notes[(msg["call_id"], user.name)] = msg["text"]
            return None
        if kind == "disposition":
            return self._dispose(user, msg)
        raise proto.BadMessage(f"unknown message type {kind!r}")

    async def _hello(self, conn: Conn, user, msg: dict) -> None:
        """The welcome, the current state, and the pop of a call already ringing or in progress."""
        if conn.page:
            raise proto.BadMessage("hello twice")
        if not hmac.compare_digest(msg["token"].encode(), conn.session.csrf.encode()):
            raise proto.BadMessage("wrong page token: reload the page")
        page = msg.get("page", "agent")
        if page == "supervisor" and not role_at_least(user.role, "supervisor"):
            raise proto.BadMessage("the supervisor view needs the supervisor role")
        conn.page = page
        self._hook()
        if self.agents is not None:   # the users file may have changed (a phone added): agents = users with one
            self.agents.sync_users(conn.auth.users.users())
        self.conns.setdefault(user.name, set()).add(conn)
        self._reopened(user.name)
        await self._send(conn, {"type": "welcome", "user": user.name, "role": user.role,
                                "dispositions": list(self.settings.dispositions), "now_s": self.clock()})
        if page == "supervisor":
            await self._send(conn, self.supervisor_state())
        else:
            await self._send(conn, self._state_for(user.name))
        call_id = self.shown.get(user.name)
        call = self.book.get(call_id) if call_id else None
        if call is not None and page == "agent":   # a reopened console: the call and the notes typed so far
            await self._send(conn, {**self._pop_message(call, ringing=False),
                                    "notes": self.notes.get((call.call_id, user.name), "")})
        self._mark()

    # ---- what the browser asks -------------------------------------------------------

    def _set_status(self, user, status: str) -> dict:
        if self.agents is None:
            raise UserError("there are no agents on this service", "configure agents (docs/serve.md)")
        agent = self.agents.get(user.name)
        if agent is None:
            raise UserError(f"{user.name} has no phone, so cannot take calls",
                            f"an admin adds one: ivr users add {user.name} --sip sip:...")
        self.away_pending.discard(user.name)
        snap = self.agents.set_status(user.name, status)
        self._mark()
        return {"type": "status", "status": snap.get("status"), "after_call": snap.get("after_call"),
                "now_s": self.clock()}

    async def _take(self, user, callback_id: str) -> dict:
        if self.queues is None:
            raise UserError("callbacks are not kept on this service")
        try:
            # one taker, on every node (several nodes: one UPDATE in PostgreSQL): the other gets UserError
            task = await self.queues.take_callback_async(callback_id, user.name)
        except UserError as exc:
            return {"type": "taken", "ok": False, "id": callback_id, "error": exc.message}
        log.info("console: %s took callback %s", user.name, callback_id)
        self._mark()
        return {"type": "taken", "ok": True, "id": task.callback_id, "number": task.number}

    async def _finish(self, user, callback_id: str, result: str) -> dict:
        if self.queues is None:
            raise UserError("callbacks are not kept on this service")
        task = await self.queues.finish_callback_async(callback_id, user.name, result)
        self._mark()
        return {"type": "finished", "id": task.callback_id, "result": task.status}

    def _call_of(self, user, call_id: str):
        call = self.book.get(call_id)
        if call is None:
            raise UserError(f"no call {call_id} on this console (ended too long ago, or another node's)")
        if call.agent != user.name and not role_at_least(user.role, "supervisor"):
            raise UserError(f"call {call_id} was not put through to you")
        return call

    def _dispose(self, user, msg: dict) -> dict:
        if msg["disposition"] not in self.settings.dispositions:
            raise proto.BadMessage("disposition must be one of " + ", ".join(self.settings.dispositions))
        call = self._call_of(user, msg["call_id"])
        store = getattr(self.service, "store", None)
        if store is None:
            raise UserError("the records database is off: the disposition cannot be kept",
                            "set records.database in the service config")
        notes = msg.get("notes", self.notes.get((call.call_id, user.name), ""))
        store.add_disposition({"call_id": call.call_id, "agent": user.name, "disposition": msg["disposition"],
                               "notes": notes, "at_s": self.clock(),
                               "data": {"caller": call.caller, "queue": call.queue, "intent": call.intent}})
        self.notes.pop((call.call_id, user.name), None)
        if self.shown.get(user.name) == call.call_id and call.ended_at_s is not None:
            del self.shown[user.name]
        log.info("console: call %s disposition %s by %s", call.call_id, msg["disposition"], user.name)
        return {"type": "saved", "call_id": call.call_id, "disposition": msg["disposition"]}


def _peek(sessions, cookie: str):
    """The session of a cookie without counting it as activity (the idle timeout still runs)."""
    if not cookie or len(cookie) > 128:
        return None
    session = sessions._by_hash.get(sessions._key(cookie))
    if session is None:
        return None
    now = sessions.clock()
    if now >= session.expires_s or now - session.seen_s >= sessions.idle_s:
        return None
    return session
