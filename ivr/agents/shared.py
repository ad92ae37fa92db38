"""Agents, waiting callers and callbacks shared by several nodes through PostgreSQL.

With a PostgreSQL records database every `ivr serve` node runs one `SharedState` (the service
makes it; SQLite or no database: one node, everything stays in memory as before). The tables
(migration 7): `agent_state` (one row per agent: status, since, call id, misses, the `node`
holding the call), `queue_calls` (one row per waiting caller: queue, node, joined_at, state)
and `agent_nodes` (a heartbeat per node); callbacks are the records' `callbacks` table.

No database work runs on the event loop. Every change this node makes (the console's statuses,
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

`SharedState` here is what the event loop calls (start, stop, changes put on the queue, claims)
and what it applies to the mirror; the listener and worker threads (and their connection) are its
base, `SharedThreads` (ivr/agents/shared_threads.py).
"""

import asyncio
import collections
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable

from ivr.agents import shared_sql as sql
from ivr.agents.shared_threads import _STOP, SharedThreads, _is_down
from ivr.errors import UserError

log = logging.getLogger("ivr.agents")


class SharedState(SharedThreads):
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
