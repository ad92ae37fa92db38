"""The two threads of the shared agent state (ivr/agents/shared.py) that talk to PostgreSQL.

The listener (`LISTEN ivr_agents`, its own connection) asks for a re-read when another node changed
something. The worker applies this node's queued changes in order, each in a transaction, answers
claims and callback changes, beats the heartbeat, reaps dead nodes, re-reads the tables, and keeps
the changes while the database is away (the module doc of ivr/agents/shared.py tells the whole story).
`SharedThreads` is the base of `SharedState`: it uses the state `SharedState.__init__` sets and hands
results back to the event loop (`_post`: `_agent_done`, `_apply_all`).
"""

import collections
import contextlib
import dataclasses
import logging
import queue
import time

from ivr.agents import shared_sql as sql
from ivr.errors import UserError

log = logging.getLogger("ivr.agents")

_STOP = object()
_WAKE = None


def _is_down(exc: BaseException) -> bool:
    import psycopg

    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


class SharedThreads:
    def _post(self, fn, *args) -> None:
        with contextlib.suppress(RuntimeError):      # the loop closed (shutdown): nobody to tell
            self._loop.call_soon_threadsafe(fn, *args)

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
