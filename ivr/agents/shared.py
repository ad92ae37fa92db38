"""Agents, waiting callers and callbacks shared by several nodes through PostgreSQL.

With a PostgreSQL records database every `ivr serve` node runs one `SharedState` (the service
makes it; SQLite or no database: one node, everything stays in memory as before). The tables
(migration 7): `agent_state` (one row per agent: status, since, call id, misses, the `node`
holding the call), `queue_calls` (one row per waiting caller: queue, node, joined_at, state)
and `agent_nodes` (a heartbeat per node); callbacks are the records' `callbacks` table.

Nothing here runs on the event loop. Every change this node makes (the console's statuses,
the dispatcher's rings, answers and misses, callers joining and leaving) is applied at once to
the node's mirror (the `AgentDirectory` / `QueueManager` the console and calls read, so their
synchronous calls never wait for the database) and put on a queue; one worker thread applies
them in order, each in a transaction (an agent's change re-run by the state machine on its row
locked `FOR UPDATE`: the row is the truth), then `NOTIFY ivr_agents`. A listener thread
(`LISTEN ivr_agents`, its own connection) has the worker re-read the tables when another node
changed something; a slow poll (`poll_s`) re-reads them anyway, beats the heartbeat and reaps.

- **Claim** (`claim`, awaited by the dispatcher): one transaction under an advisory lock rings
  the available agent idle longest, and only if fewer older callers wait (on any live node)
  than agents are free: two nodes never ring one agent, and the oldest caller is served first.
- **A node that dies**: its heartbeat stops; after `node_timeout_s` any node deletes its waiting
  callers and releases its agents (ringing -> available; on a call -> wrap-up). A node restarting
  under the same name clears its own leftovers at start; a node that stops cleanly removes its rows;
  at each poll a node removes its rows of calls it no longer has (and releases their rings).
- **PostgreSQL away** (restart, network): the worker logs it once and keeps this node's changes in
  order; callers keep waiting (claims answer "no agent" while it is away; nobody is rung twice)
  and the mirror keeps this node's view. Reconnected (retried every `retry_s`): the heartbeat
  first, then this node's callers are written again (another node may have reaped them), the
  kept changes replayed on the rows as they are now, the tables re-read, and the dispatcher kicked.
  Nodes wait `node_timeout_s` after reconnecting before reaping, so that everyone can beat first.
"""

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable

from ivr.agents import shared_sql as sql
from ivr.errors import UserError

log = logging.getLogger("ivr.agents")

_STOP = object()
_WAKE = None
_ANSWERED_NOW = ("claim", "callback_change")    # items with a future: answered at once while the database is away


def _is_down(exc: BaseException) -> bool:
    import psycopg

    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


class SharedState:
    def __init__(self, url: str, node: str, directory, queues, *, node_timeout_s: float = 15.0, poll_s: float = 5.0,
                 retry_s: float = 1.0, connect_timeout_s: int = 3) -> None:
        if not node:
            raise UserError("shared agent state needs a node name", "set agents.node in the serve config")
        self.url, self.node = url, node
        self.directory, self.queues = directory, queues
        self.node_timeout_s = node_timeout_s
        self.heartbeat_s = max(0.2, min(2.0, node_timeout_s / 4))
        self.poll_s, self.retry_s, self.connect_timeout_s = poll_s, retry_s, connect_timeout_s
        self.down = False
        self.on_refresh: list[Callable[[], object]] = []     # after each re-read (the dispatcher's kick)
        self._ops: queue.SimpleQueue = queue.SimpleQueue()
        self._backlog: collections.deque = collections.deque()
        self._pending: collections.Counter = collections.Counter()   # agent -> changes on their way
        self._pending_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn = None
        self._stopping = threading.Event()
        self._refresh = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connected_once = False
        self._reap_after = 0.0
        self._retry_at = 0.0
        self._closing = False
        self._unsure_claims: set[str] = set()    # claims cut off by an outage, answered "none" here

    # ---- the event loop's side -----------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> "SharedState":
        self._loop = loop or asyncio.get_running_loop()
        for part in (self.directory, self.queues, self.queues.callbacks):
            part.shared = self
        self.directory.node = self.queues.node = self.node
        for agent in self.directory.snapshot():       # the users file's agents, into the shared table
            self.agent_op(agent["name"], "upsert", (agent["address"], agent["role"]))
        self._refresh.set()
        for name, target in (("ivr-agents-pg", self._run), ("ivr-agents-listen", self._listen)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def check_name(self) -> None:
        """Refuse to start under the name of a node that is running (blocking: a thread, at start).
        A recent heartbeat may be this node's own from before a crash: it is watched for two beats,
        and only a heartbeat that moves on means another live node."""
        try:
            with self._connect() as conn:
                seen = conn.execute("SELECT seen_at FROM agent_nodes WHERE node = %s", (self.node,)).fetchone()
                if seen is None or seen["seen_at"] < self.directory.clock() - self.node_timeout_s:
                    return
                time.sleep(2.5 * self.heartbeat_s)
                again = conn.execute("SELECT seen_at FROM agent_nodes WHERE node = %s", (self.node,)).fetchone()
        except Exception as exc:
            if _is_down(exc):
                return          # the worker keeps trying; the records store says the database is away
            raise
        if again is not None and again["seen_at"] > seen["seen_at"]:
            raise UserError(f"another node named {self.node!r} is running (it shares agents and queues through "
                            "the same PostgreSQL)", "give each node its own name: node: in the config or IVR_NODE")

    async def stop(self, timeout_s: float = 5.0) -> None:
        """This node's rows go (its callers left as its calls ended) and the threads end."""
        self._closing = True
        for part in (self.directory, self.queues, self.queues.callbacks):
            part.shared = None
        self._ops.put(("bye",))
        self._ops.put(_STOP)
        await asyncio.to_thread(self._join, timeout_s)

    def _join(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        self._threads[0].join(max(0.0, deadline - time.monotonic()))
        self._stopping.set()
        for thread in self._threads[1:]:
            thread.join(max(0.1, deadline - time.monotonic()))

    def agent_op(self, name: str, method: str, args: tuple) -> None:
        with self._pending_lock:
            self._pending[name] += 1
        self._ops.put(("agent", name, method, args))

    def queue_op(self, what: str, call) -> None:
        self._ops.put(("queue", what, sql.call_row(call)))

    def callback_op(self, row: dict) -> None:
        self._ops.put(("callback", row))

    async def claim(self, call_id: str, tried) -> object | None:
        """Ring an agent for this node's call (see the module's doc); the mirror's Agent, or None."""
        if not self._working():
            return None
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._ops.put(("claim", call_id, frozenset(tried), future))
        agent = await asyncio.wrap_future(future)
        if agent is None:
            return None
        self.directory.apply_rows([agent], partial=True)
        return self.directory.get(agent.name)

    async def callback_change(self, callback_id: str, status: str, agent: str):
        if not self._working():
            raise UserError("this node is stopping", "try again on another node")
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._ops.put(("callback_change", callback_id, status, agent, future))
        task = await asyncio.wrap_future(future)
        self.queues.callbacks.put(task)
        return task

    def _working(self) -> bool:
        """The worker takes items (an item put after it ended would never be answered)."""
        return (not self._closing and not self._stopping.is_set() and bool(self._threads)
                and self._threads[0].is_alive())

    def _post(self, fn, *args) -> None:
        with contextlib.suppress(RuntimeError):      # the loop closed (shutdown): nobody to tell
            self._loop.call_soon_threadsafe(fn, *args)

    def _agent_done(self, name: str, agent) -> None:
        with self._pending_lock:
            self._pending[name] -= 1
            settled = self._pending[name] <= 0
            if settled:
                del self._pending[name]
        if settled and agent is not None:
            self.directory.apply_rows([agent], partial=True)

    def _apply_all(self, agents: list, calls: list, callbacks: list) -> None:
        with self._pending_lock:
            busy = {name for name, count in self._pending.items() if count > 0}
        self.directory.apply_rows(agents, skip=busy)
        self.queues.apply_remote(calls)
        self.queues.callbacks.apply_rows(callbacks)
        for fn in list(self.on_refresh):
            try:
                fn()
            except Exception:
                log.exception("shared agent state: refresh listener failed")

    # ---- the listener thread ---------------------------------------------------------

    def _listen(self) -> None:
        conn = None
        while not self._stopping.is_set():
            try:
                if conn is None:
                    conn = self._connect()
                    conn.execute(f"LISTEN {sql.CHANNEL}")
                    self._ask_refresh()             # what changed while nobody listened
                for note in conn.notifies(timeout=0.5):
                    if note.payload != self.node:
                        self._ask_refresh()
            except Exception as exc:
                if conn is not None:
                    _close(conn)
                    conn = None
                if not _is_down(exc):
                    log.exception("shared agent state: listener error")
                self._stopping.wait(self.retry_s)
        if conn is not None:
            _close(conn)

    def _ask_refresh(self) -> None:
        self._refresh.set()
        self._ops.put(_WAKE)

    # ---- the worker thread -----------------------------------------------------------

    def _connect(self):
        from psycopg.rows import dict_row

        from ivr.store.pgconn import connect

        # keepalives (a server gone without a reset is noticed in ~10 s), the server ending a session
        # idle in a transaction (a node cut off mid-claim does not keep the advisory lock), and
        # statement_timeout (no transaction waits on a lock for ever); the URL's own options kept
        return connect(self.url, application_name=f"ivr-agents {self.node}", connect_timeout_s=self.connect_timeout_s,
                       statement_timeout_ms=10_000, autocommit=True, row_factory=dict_row)

    def _run(self) -> None:
        next_beat = next_poll = 0.0
        stop = False
        while not stop:
            wait_s = max(0.0, min(next_beat, next_poll) - time.monotonic())
            if self.down:
                wait_s = min(wait_s, max(0.0, self._retry_at - time.monotonic()))
            items = []
            try:
                items.append(self._ops.get(timeout=0 if self._refresh.is_set() and not self.down else wait_s))
                while True:
                    items.append(self._ops.get_nowait())
            except queue.Empty:
                pass
            stop = any(item is _STOP for item in items)
            self._backlog.extend(item for item in items if item is not _WAKE and item is not _STOP)
            if self.down and time.monotonic() < self._retry_at and not stop:
                self._answer_now()
                continue
            try:
                if self._conn is None:
                    self._open()
                self._drain()
                now = time.monotonic()
                if now >= next_beat and not stop:
                    self._tx(lambda cur: sql.beat(cur, self.node, self.directory.clock()))
                    next_beat = now + self.heartbeat_s
                if (now >= next_poll or self._refresh.is_set()) and not stop:
                    if now >= next_poll:
                        self._reap()
                        next_poll = now + self.poll_s
                    self._refresh.clear()
                    self._read_all()
            except Exception as exc:
                if not _is_down(exc) and not self.down:
                    # not an outage (e.g. a server in read-only recovery): logged, then retried after retry_s
                    # like one, not at once (a failing heartbeat would otherwise spin this thread)
                    log.exception("shared agent state: worker error")
                self._went_down(exc)
                self._answer_now()
        with contextlib.suppress(queue.Empty):      # asked after the stop: answered, not left waiting
            while True:
                item = self._ops.get_nowait()
                if item is not _WAKE and item is not _STOP:
                    self._backlog.append(item)
        self._answer_now(closing=True)
        if self._conn is not None:
            _close(self._conn)
            self._conn = None

    def _tx(self, fn):
        with self._conn.transaction(), self._conn.cursor() as cur:
            return fn(cur)

    def _open(self) -> None:
        self._conn = self._connect()
        now = self.directory.clock()
        self._tx(lambda cur: sql.beat(cur, self.node, now))
        if not self._connected_once:
            self._tx(lambda cur: sql.adopt(cur, self.directory, self.node))   # a restart's leftovers
        else:
            with self.queues._lock:                 # another node may have reaped them meanwhile
                rows = [sql.call_row(c) for c in self.queues._waiting.values()]
            self._tx(lambda cur: [sql.queue_write(cur, "join", row) for row in rows])
            with self._pending_lock:                # (an agent with changes on their way gets them replayed)
                busy = {name for name, count in self._pending.items() if count > 0}
            with self.directory._lock:              # and the agents it still holds, if released meanwhile
                held = [dataclasses.replace(a) for a in self.directory._agents.values() if a.node == self.node
                        and a.status in ("ringing", "on_call") and a.name not in busy]
            self._tx(lambda cur: sql.reclaim(cur, self.node, held))
            if self._unsure_claims:                 # a ring committed but never answered: nobody rings that phone
                unsure = [c for c in self._unsure_claims if c not in {a.call_id for a in held}]
                self._tx(lambda cur: sql.release_rings(cur, self.directory, self.node, unsure))
                self._unsure_claims.clear()
        if self.down:
            log.warning("shared agent state: PostgreSQL back; %d change(s) of this node replayed", len(self._backlog))
        self._connected_once, self.down = True, False
        self._reap_after = time.monotonic() + self.node_timeout_s
        self._refresh.set()

    def _went_down(self, exc: BaseException) -> None:
        if not self.down:
            log.warning("shared agent state: PostgreSQL unavailable (%s); callers keep waiting and this node's "
                        "changes are kept until it is back", str(exc).strip().splitlines()[0] if str(exc) else exc)
        self.down = True
        self._retry_at = time.monotonic() + self.retry_s
        if self._conn is not None:
            _close(self._conn)
            self._conn = None

    def _answer_now(self, closing: bool = False) -> None:
        """While the database is away, claims get "no agent" and callback changes an error now;
        the other changes wait in order (unless the node is closing)."""
        kept = collections.deque()
        for item in self._backlog:
            if item[0] == "claim":
                item[3].set_result(None)
            elif item[0] == "callback_change":
                item[4].set_exception(UserError("the shared database is unavailable", "try again in a moment"))
            elif not closing:
                kept.append(item)
            elif item[0] == "agent":
                self._post(self._agent_done, item[1], None)
        self._backlog = kept

    def _drain(self) -> None:
        while self._backlog:
            item = self._backlog[0]
            try:
                self._do(item)
            except Exception as exc:
                if _is_down(exc):
                    if item[0] == "claim":      # its commit may have landed: checked once back (_open)
                        self._unsure_claims.add(item[1])
                    raise
                log.exception("shared agent state: %s not applied", item[0])
                if item[0] == "claim":
                    item[3].set_result(None)
                elif item[0] == "callback_change":
                    item[4].set_exception(exc if isinstance(exc, UserError) else UserError(str(exc)))
                elif item[0] == "agent":
                    self._post(self._agent_done, item[1], None)
            self._backlog.popleft()

    def _do(self, item: tuple) -> None:
        kind = item[0]
        if kind == "agent":
            _, name, method, args = item
            agent = self._tx(lambda cur: (sql.apply_agent(cur, self.directory, self.node, name, method, args),
                                          sql.notify(cur, self.node))[0])
            self._post(self._agent_done, name, agent)
        elif kind == "queue":
            self._tx(lambda cur: (sql.queue_write(cur, item[1], item[2]), sql.notify(cur, self.node)))
        elif kind == "callback":
            self._tx(lambda cur: (sql.callback_insert(cur, item[1]), sql.notify(cur, self.node)))
            self._post(self.queues.callbacks.unsaved.discard, item[1]["callback_id"])
        elif kind == "claim":
            _, call_id, tried, future = item
            live_since = self.directory.clock() - self.node_timeout_s
            agent = self._tx(lambda cur: sql.claim(cur, self.directory, self.node, call_id, tried, live_since))
            future.set_result(agent)
        elif kind == "callback_change":
            self._callback_change(*item[1:])
        elif kind == "bye":
            self._tx(lambda cur: (sql.bye(cur, self.directory, self.node), sql.notify(cur, self.node)))

    def _callback_change(self, callback_id: str, status: str, agent: str, future) -> None:
        """No waiting for a task "on its way": one added on this node was written by an earlier item
        of this queue, one added elsewhere is only known here once read from the table. (A wait here
        would hold every claim and heartbeat of this node: a few unknown ids would make it look dead.)"""
        try:
            task = self._tx(lambda cur: sql.callback_change(cur, callback_id, status, agent, self.directory.clock()))
        except LookupError:
            future.set_exception(UserError(f"no callback task {callback_id!r}", "reload the console's callback list"))
            return
        except UserError as exc:
            future.set_exception(exc)
            return
        future.set_result(task)

    def _reap(self) -> None:
        with self.queues._lock:
            local = [sql.call_row(c) for c in self.queues._waiting.values()]
        if self._tx(lambda cur: sql.reconcile(cur, self.directory, self.node, local)):
            self._tx(lambda cur: sql.notify(cur, self.node))
        if time.monotonic() < self._reap_after:
            return
        cutoff = self.directory.clock() - self.node_timeout_s
        gone = self._tx(lambda cur: sql.reap(cur, self.directory, self.node, cutoff))
        if gone:
            self._tx(lambda cur: sql.notify(cur, self.node))

    def _read_all(self) -> None:
        live_since = self.directory.clock() - self.node_timeout_s
        agents, calls, callbacks = self._tx(lambda cur: sql.read_all(cur, self.node, live_since))
        self._post(self._apply_all, agents, calls, callbacks)


def _close(conn) -> None:
    with contextlib.suppress(Exception):   # a dead connection may fail to close: gone anyway
        conn.close()


async def start_shared(service) -> SharedState | None:
    """The service's shared agent state when its records database is PostgreSQL, else None
    (SQLite or none: one node, the directory and queues stay in memory). The node's name is the
    config's `node:` (IVR_NODE), as the console relay uses: keep it stable across restarts."""
    from ivr.service.relay import node_name

    backend = getattr(service.store, "backend", None)
    if getattr(backend, "name", "") != "postgresql":
        return None
    shared = SharedState(backend.url, node_name(service.cfg), service.agents, service.queues,
                         node_timeout_s=service.cfg.agents.node_timeout_s)
    await asyncio.to_thread(shared.check_name)
    shared.start()
    service.dispatcher.share(shared)
    log.info("agents and queues shared through PostgreSQL as node %s", shared.node)
    return shared
