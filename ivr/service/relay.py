"""The console relay: every node's agent console sees the calls of every node (PostgreSQL LISTEN/NOTIFY).

Several `ivr serve` nodes behind a proxy share one PostgreSQL records database. Each node's
hub feeds only its own console, so an agent whose browser is on node B would never see the
screen pop of a caller ringing her phone from node A. With a PostgreSQL records database,
each node runs a `Relay`:

- out: a hub subscriber like the others (its own thread and bounded queue: a slow or dead
  database loses only relayed events, counted by the hub, and never slows a call). The events
  the console folds go out as `pg_notify('ivr_console', payload)`, compact (relay_wire.py),
  tagged with the node's name and this process's id;
- in: a thread LISTENs on the channel, skips its own process's notifications, and hands the
  other nodes' events to the local console (`on_remote(node, event)`), on the event loop,
  through a bounded queue. Never into the local hub: the records, metrics and reports of a call
  are written by the node that ran it, once;
- a heartbeat every `heartbeat_s` names the node's live calls, so a console ends remote calls
  whose `CallEnded` it missed (an outage), and a node silent for `lost_after_s` (killed) has
  its calls ended in the other consoles (`remote_live(node, [], final=True)`; so does a node's goodbye
  when it stops).

PostgreSQL away: each connection retries with backoff (0.5 s doubling to 10 s); one warning
when the outage starts, one when it ends, with what was not relayed. Events published while
the database is away are not relayed (a console's view is live state, not a record).
"""

import asyncio
import contextlib
import logging
import random
import threading
import time
import uuid

from ivr.callevents import CallEvent
from ivr.service import relay_wire as wire
from ivr.store.backends import redact_url
from ivr.throttle import ThrottledLog

log = logging.getLogger("ivr.relay")

BACKOFF_MIN_S, BACKOFF_MAX_S = 0.5, 10.0
QUEUE_SIZE = 2_000
MAX_LIVE = 10_000


class Relay:
    def __init__(self, url: str, node: str, *, heartbeat_s: float = 5.0, lost_after_s: float | None = None,
                 queue_size: int = QUEUE_SIZE, connect_timeout_s: int = 3) -> None:
        self.url, self.node = url, node
        self.instance = uuid.uuid4().hex[:16]
        self.heartbeat_s = heartbeat_s
        self.lost_after_s = lost_after_s or 3 * heartbeat_s
        self.queue_size = queue_size
        self.connect_timeout_s = connect_timeout_s
        self.sinks: list = []          # consoles: async on_remote(node, event), remote_live(node, ids, final)
        self.counts = {"sent": 0, "trimmed": 0, "too_big": 0, "not_sent_db_down": 0, "received": 0,
                       "bad": 0, "inbox_dropped": 0, "heartbeats": 0}
        self._live: dict[str, None] = {}   # this node's calls in progress (ordered set)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pub = _Link(self, "publish")
        self._sub = _Link(self, "listen")
        self._down_since: float | None = None
        self._down_lost = 0
        self._seen: dict[str, float] = {}   # other nodes: when last heard (monotonic)
        self._listening_since: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: asyncio.Queue | None = None
        self._consumer: asyncio.Task | None = None
        self._thread: threading.Thread | None = None
        self._warn = ThrottledLog(log, 10.0)
        self.subscription = None

    # ---- wiring ----------------------------------------------------------------------

    def add_sink(self, sink) -> None:
        if sink not in self.sinks:
            self.sinks.append(sink)

    def start(self, hub) -> "Relay":
        """Subscribe to `hub` and start listening (on the running loop; nothing here waits for the database)."""
        self._loop = asyncio.get_running_loop()
        self._inbox = asyncio.Queue(self.queue_size)
        self._consumer = self._loop.create_task(self._consume(), name="relay-in")
        if hub is not None:
            self.subscription = hub.subscribe(self.publish, name="console-relay", thread=True,
                                              queue_size=self.queue_size)
        self._thread = threading.Thread(target=self._listen_loop, name="relay-listen", daemon=True)
        self._thread.start()
        log.info("console relay: node %s on %s, channel %s", self.node, redact_url(self.url), wire.CHANNEL)
        return self

    async def stop(self) -> None:
        """After the hub has closed (its queue to us is drained or abandoned): a goodbye, then stop."""
        self._stop.set()
        if self._thread is not None:   # no heartbeat after the goodbye
            await asyncio.to_thread(self._thread.join, self.connect_timeout_s + 3)
        with self._lock:
            live = list(self._live)
        with contextlib.suppress(Exception):   # the database away: the others see the silence instead
            await asyncio.to_thread(self._pub.notify, wire.encode_heartbeat(self.node, self.instance, live, bye=True))
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
        self._pub.close()
        self._sub.close()
        self._warn.flush()

    def stats(self) -> dict:
        return {"node": self.node, **self.counts, "down": self._down_since is not None,
                "listening": self._listening_since is not None, "nodes_heard": sorted(list(self._seen))}

    # ---- out: the hub's thread -------------------------------------------------------

    def publish(self, event: CallEvent) -> None:
        """The hub subscriber (its own thread): the event to the other nodes, if the console uses it."""
        kind = type(event).__name__
        with self._lock:
            if kind == "CallBegan":
                self._live[event.call_id] = None
                if len(self._live) > MAX_LIVE:   # a CallEnded the hub dropped: forget the oldest
                    del self._live[next(iter(self._live))]
            elif kind == "CallEnded":
                self._live.pop(event.call_id, None)
        payload, trimmed = wire.encode_event(self.node, self.instance, event)
        if payload is None:
            if trimmed:
                self.counts["too_big"] += 1
                self._warn.log("too_big", "console relay: %s of call %s does not fit a notification even trimmed: "
                               "not relayed (%d so far)", kind, event.call_id, self.counts["too_big"])
            return
        self.counts["trimmed"] += trimmed
        if self._pub.notify(payload):
            self.counts["sent"] += 1
        else:
            self.counts["not_sent_db_down"] += 1
            self._down_lost += 1

    # ---- in: the listening thread ----------------------------------------------------

    def _listen_loop(self) -> None:
        import psycopg

        next_beat = 0.0
        while not self._stop.is_set():
            conn = self._sub.get()
            if conn is None:
                self._listening_since = None
                self._stop.wait(max(0.05, min(0.5, self._sub.retry_at - time.monotonic())))
                continue
            try:
                if self._listening_since is None:
                    conn.execute(f"LISTEN {wire.CHANNEL}")
                    self._listening_since = time.monotonic()
                for note in conn.notifies(timeout=min(1.0, self.heartbeat_s)):
                    self._received(note.payload)
                    if self._stop.is_set():
                        break
                now = time.monotonic()
                if now >= next_beat:
                    next_beat = now + self.heartbeat_s
                    with self._lock:
                        live = list(self._live)
                    conn.execute("SELECT pg_notify(%s, %s)",
                                 (wire.CHANNEL, wire.encode_heartbeat(self.node, self.instance, live)))
                    self.counts["heartbeats"] += 1
                self._check_lost(now)
            except psycopg.Error as exc:
                self._listening_since = None
                self._sub.failed(exc)
            except Exception as exc:   # a bug here must not end the listening for good
                self._warn.log("loop", "console relay: listening failed (%s: %s); going on", type(exc).__name__, exc)
                self._listening_since = None
                self._sub.close()
                self._stop.wait(1.0)

    def _received(self, payload: str) -> None:
        try:
            node, instance, event, live, kind = wire.decode(payload)
        except wire.BadPayload as exc:
            self.counts["bad"] += 1
            self._warn.log("bad", "console relay: a notification on %s that is not ours (%s): ignored",
                           wire.CHANNEL, exc)
            return
        if instance == self.instance:
            return
        if node == self.node:
            self._warn.log("same_name", "console relay: another process also calls itself node %s: give each node "
                           "its own `node:` name (or IVR_NODE), the consoles tell calls apart by it", node)
        if kind == "bye":
            self._seen.pop(node, None)
            log.info("console relay: node %s stopped", node)
            self._post((node, None, [], True))
            return
        self._seen[node] = time.monotonic()
        if kind == "beat":
            if live is not None:
                self._post((node, None, live, False))
            return
        from ivr.privacy import redact_event

        event = redact_event(event)   # the sender redacted it; this node's entrance does too
        if event is not None:
            self.counts["received"] += 1
            self._post((node, event, None, False))

    def _check_lost(self, now: float) -> None:
        if self._listening_since is None or now - self._listening_since < self.lost_after_s:
            return   # only after listening long enough to have heard every live node
        for node, seen in list(self._seen.items()):
            if now - seen > self.lost_after_s:
                del self._seen[node]
                log.warning("console relay: node %s silent for %.0f s: its calls end in this console",
                            node, now - seen)
                self._post((node, None, [], True))

    def _post(self, item: tuple) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):   # the loop closed meanwhile
            loop.call_soon_threadsafe(self._offer, item)

    def _offer(self, item: tuple) -> None:
        try:
            self._inbox.put_nowait(item)
        except asyncio.QueueFull:
            self.counts["inbox_dropped"] += 1
            self._warn.log("inbox", "console relay: the console is too slow, other nodes' events dropped (%d so far)",
                           self.counts["inbox_dropped"])

    async def _consume(self) -> None:
        while True:
            node, event, live, final = await self._inbox.get()
            for sink in list(self.sinks):
                try:
                    if event is not None:
                        await sink.on_remote(node, event)
                    else:
                        sink.remote_live(node, live, final)
                except Exception:
                    self._warn.log("sink", "console relay: a console failed on node %s's %s", node,
                                   type(event).__name__ if event is not None else "heartbeat")

    # ---- the outage, once ---------------------------------------------------------------

    def _outage(self, what: str, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._down_lost = 0
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            log.warning("console relay: PostgreSQL unreachable (%s: %s); other nodes' consoles miss this node's "
                        "calls until it is back; retrying with backoff", what, first)

    def _back(self) -> None:
        for link in (self._pub, self._sub):   # the database is back: neither connection waits out its backoff
            link.retry_at, link.backoff_s = 0.0, BACKOFF_MIN_S
        if self._down_since is not None:
            log.warning("console relay: PostgreSQL back after %.1f s; %d event(s) were not relayed meanwhile",
                        time.monotonic() - self._down_since, self._down_lost)
            self._down_since = None


class _Link:
    """One psycopg connection (autocommit) that reconnects with backoff; None while backing off."""

    def __init__(self, relay: Relay, what: str) -> None:
        self.relay, self.what = relay, what
        self.conn = None
        self.retry_at = 0.0
        self.backoff_s = BACKOFF_MIN_S

    def get(self):
        import psycopg

        if self.conn is not None and not self.conn.closed:
            return self.conn
        if time.monotonic() < self.retry_at:
            return None
        try:
            self.conn = psycopg.connect(self.relay.url, autocommit=True, connect_timeout=self.relay.connect_timeout_s,
                                        application_name=f"ivr-relay-{self.what}")
        except psycopg.Error as exc:
            self.failed(exc)
            return None
        self.backoff_s = BACKOFF_MIN_S
        self.relay._back()
        return self.conn

    def notify(self, payload: str) -> bool:
        """Send one notification; a connection that broke since its last use is replaced once at once."""
        import psycopg

        for attempt in (1, 2):
            had = self.conn is not None
            conn = self.get()
            if conn is None:
                return False
            try:
                conn.execute("SELECT pg_notify(%s, %s)", (wire.CHANNEL, payload))
                return True
            except psycopg.Error as exc:
                if attempt == 2 or not had or not conn.broken:
                    self.failed(exc)
                    return False
                self.close()   # the server restarted since: a fresh connection, right now
        return False

    def failed(self, exc: BaseException) -> None:
        self.close()
        self.relay._outage(self.what, exc)
        self.retry_at = time.monotonic() + self.backoff_s * random.uniform(0.8, 1.2)
        self.backoff_s = min(self.backoff_s * 2, BACKOFF_MAX_S)

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
        self.conn = None


def node_name(cfg) -> str:
    """The node's name in the other consoles: `node:` in the config, else host name and SIP (or HTTP) port."""
    import socket

    if getattr(cfg, "node", ""):
        return cfg.node
    listener = cfg.listeners.get("sip") or cfg.listeners.get("http") or next(iter(cfg.listeners.values()), None)
    host = socket.gethostname() or "localhost"
    return f"{host}:{listener.port}" if listener is not None else host


async def start_relay(service) -> Relay | None:
    """The relay, when the records database is PostgreSQL (several nodes share it); else None."""
    store = getattr(service, "store", None)
    backend = getattr(store, "backend", None)
    if getattr(backend, "name", "") != "postgresql":
        return None
    return Relay(backend.url, node_name(service.cfg)).start(service.hub)


async def stop_relay(relay: Relay | None) -> None:
    if relay is not None:
        await relay.stop()
