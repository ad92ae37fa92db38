"""Queues of callers waiting for an agent, their positions and estimated waits, and callbacks.

Every agent serves every queue; callers are served first come first served across queues
(the oldest waiting call gets the next free agent). A call being offered to an agent
(`ringing`) keeps its place: if the agent does not answer it is offered to the next one.

**Estimated wait** (what the caller hears, and the console shows):

    wait_s = max(0, p - f) * H / n        (None when n == 0: nobody logged in)

with `p` the caller's 1-based position in their queue, `f` the agents available now, `n` the
agents staffed (logged in and not away: available, ringing, on a call or in wrap-up), `H` the
mean handle time (talk time + wrap-up) of the last `recent_calls` answered calls of this queue
(in memory, filled at start-up from the records database, then from each call that ends),
or `default_handle_s` while fewer than 3 are known. It is the expected wait for exponential
handle times: with all n agents busy, completions come at rate n/H whatever the elapsed
times, and the caller needs p - f of them. `scripts/bench_queue.py` compares it with the
real wait on a simulated day.

Several nodes (a PostgreSQL records database, `shared` set: ivr/agents/shared.py): this node's
callers are written to the shared `queue_calls` table as they join, are offered and leave, and
the other nodes' callers are mirrored in `_remote`, so positions, estimates and `snapshot()` are
the whole cluster's (each call with its `node`). The local `WaitingCall`s stay the truth for
this node's own callers.
"""

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ivr.agents.callbacks import CallbackBook
from ivr.agents.directory import AgentDirectory

log = logging.getLogger("ivr.agents")

MIN_SAMPLES = 3


@dataclass(slots=True)
class WaitingCall:
    call_id: str
    queue: str
    caller: str = ""
    caller_name: str = ""
    language: str = ""
    intent: str = ""
    reason: str = ""
    context: dict = field(default_factory=dict)   # slots (masked), path, transcript, faq: the screen pop
    joined_at: float = 0.0
    state: str = "waiting"          # waiting | ringing (offered to `agent`) | answered
    agent: str = ""
    tried: set = field(default_factory=set)       # agents who missed it
    node: str = ""                                # the node the caller is on (several nodes)

    def snapshot(self, now_s: float, position: int | None, wait_s: float | None) -> dict:
        return {"call_id": self.call_id, "queue": self.queue, "caller": self.caller, "caller_name": self.caller_name,
                "language": self.language, "intent": self.intent, "reason": self.reason,
                "joined_at": self.joined_at, "waited_s": round(max(0.0, now_s - self.joined_at), 1),
                "state": self.state, "agent": self.agent, "node": self.node, "position": position,
                "estimated_wait_s": None if wait_s is None else round(wait_s)}


class QueueManager:
    def __init__(self, directory: AgentDirectory, *, default_handle_s: float = 180.0, recent_calls: int = 20,
                 store=None, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.default_handle_s = default_handle_s
        self.recent_calls = recent_calls
        self.store = store
        self.clock = clock
        self.callbacks = CallbackBook(store, clock=clock)
        self._waiting: dict[str, WaitingCall] = {}     # call_id -> call, in arrival order
        self._handle: dict[str, deque] = {}             # queue -> recent handle times (s)
        self._lock = threading.RLock()
        self._listeners: list[Callable[[str, dict], object]] = []
        self.node = ""                                   # this node's name (several nodes)
        self.shared = None                               # ivr.agents.shared.SharedState (PostgreSQL)
        self._remote: dict[str, WaitingCall] = {}       # the other nodes' callers (mirror of queue_calls)

    # ---- start-up --------------------------------------------------------------------

    def load(self) -> None:
        """Recent handle times and open callbacks from the records database (blocking: a thread)."""
        if self.store is None:
            return
        self.callbacks.load()
        try:
            rows = self.store.backend.fetch(
                "SELECT e.at_s AS answered_at, c.ended_at AS ended_at, e.data AS data FROM events e "
                "JOIN calls c ON c.call_id = e.call_id WHERE e.kind = 'AgentAnswered' AND c.ended_at IS NOT NULL "
                "ORDER BY e.at_s DESC LIMIT ?", (self.recent_calls * 20,))
        except Exception as exc:
            log.warning("queues: no handle times from the records database (%s); using %.0f s until calls end",
                        exc, self.default_handle_s)
            return
        wrap = self.directory.wrap_up_s
        for row in reversed(rows):
            try:
                data = json.loads(row["data"]) if isinstance(row["data"], str) else (row["data"] or {})
                talk_s = float(row["ended_at"]) - float(row["answered_at"])
            except (TypeError, ValueError):
                continue
            if talk_s >= 0:
                self._handle.setdefault(str(data.get("queue") or ""), deque(maxlen=self.recent_calls)).append(
                    talk_s + wrap)

    def on_change(self, fn: Callable[[str, dict], object]) -> None:
        """`fn(what, data)` after a change: ("joined"|"left"|"offered"|"answered", call snapshot) or
        ("callback", task row). For the dispatcher and the console."""
        self._listeners.append(fn)

    # ---- callers ---------------------------------------------------------------------

    def join(self, call_id: str, queue: str, *, caller: str = "", caller_name: str = "", language: str = "",
             intent: str = "", reason: str = "", context: dict | None = None) -> WaitingCall:
        with self._lock:
            call = self._waiting.get(call_id)
            if call is None:
                call = WaitingCall(call_id, queue, caller, caller_name, language, intent, reason, dict(context or {}),
                                   self.clock(), node=self.node)
                self._waiting[call_id] = call
                if self.shared is not None:
                    self.shared.queue_op("join", call)
        self._notify("joined", self.describe(call_id) or {})
        return call

    def leave(self, call_id: str, reason: str = "") -> WaitingCall | None:
        with self._lock:
            call = self._waiting.pop(call_id, None)
        if call is not None:
            if self.shared is not None:
                self.shared.queue_op("leave", call)
            self._notify("left", {"call_id": call_id, "queue": call.queue, "reason": reason, "agent": call.agent})
        return call

    def get(self, call_id: str) -> WaitingCall | None:
        return self._waiting.get(call_id)

    def _find(self, call_id: str) -> WaitingCall | None:
        return self._waiting.get(call_id) or self._remote.get(call_id)

    def _order(self) -> list[WaitingCall]:
        """Every caller in the queues, oldest first: this node's, and the other nodes' when shared."""
        with self._lock:
            if not self._remote:
                return list(self._waiting.values())
            calls = [*self._waiting.values(), *(c for k, c in self._remote.items() if k not in self._waiting)]
        return sorted(calls, key=lambda c: (c.joined_at, c.call_id))

    def position(self, call_id: str) -> int | None:
        """1-based place in its queue (calls being offered to an agent count: they keep their place)."""
        with self._lock:
            call = self._find(call_id)
            if call is None or call.state == "answered":
                return None
            ahead = 0
            for other in self._order():
                if other is call:
                    return ahead + 1
                if other.queue == call.queue and other.state != "answered":
                    ahead += 1
        return None

    def handle_time_s(self, queue: str) -> float:
        times = self._handle.get(queue)
        if not times or len(times) < MIN_SAMPLES:
            return self.default_handle_s
        return sum(times) / len(times)

    def record_handle(self, queue: str, talk_s: float) -> None:
        """A call answered from `queue` ended after `talk_s` of talk: its handle time (+ wrap-up)."""
        with self._lock:
            self._handle.setdefault(queue, deque(maxlen=self.recent_calls)).append(
                max(0.0, talk_s) + self.directory.wrap_up_s)

    def estimated_wait_s(self, call_id: str) -> float | None:
        position = self.position(call_id)
        call = self._find(call_id)
        if position is None or call is None:
            return None
        return self.estimate(call.queue, position)

    def estimate(self, queue: str, position: int) -> float | None:
        counts = self.directory.counts()
        staffed = counts["available"] + counts["ringing"] + counts["on_call"] + counts["wrap_up"]
        if staffed == 0:
            return None
        return max(0, position - counts["available"]) * self.handle_time_s(queue) / staffed

    # ---- offering calls to agents (the dispatcher) -------------------------------------

    def snapshot_order(self) -> list[WaitingCall]:
        """The calls in the queues, oldest first (a copy of the list; the calls themselves)."""
        with self._lock:
            return list(self._waiting.values())

    def next_waiting(self) -> WaitingCall | None:
        """The oldest call waiting for an agent (not being offered right now)."""
        with self._lock:
            for call in self._waiting.values():
                if call.state == "waiting":
                    return call
        return None

    def offered(self, call_id: str, agent: str) -> None:
        with self._lock:
            call = self._waiting.get(call_id)
            if call is not None:
                call.state, call.agent = "ringing", agent
                if self.shared is not None:
                    self.shared.queue_op("state", call)
        self._notify("offered", {"call_id": call_id, "agent": agent})

    def not_taken(self, call_id: str, agent: str, *, missed: bool = True) -> None:
        """The offer to `agent` ended without an answer: the call waits again, in its place."""
        with self._lock:
            call = self._waiting.get(call_id)
            if call is not None and call.state == "ringing" and call.agent == agent:
                call.state, call.agent = "waiting", ""
                if missed:
                    call.tried.add(agent)
                if self.shared is not None:
                    self.shared.queue_op("state", call)
        self._notify("waiting", {"call_id": call_id, "agent": agent})

    def answered(self, call_id: str, agent: str) -> None:
        with self._lock:
            call = self._waiting.get(call_id)
            if call is not None:
                call.state, call.agent = "answered", agent
                if self.shared is not None:
                    self.shared.queue_op("state", call)
        self._notify("answered", {"call_id": call_id, "agent": agent})

    # ---- callbacks -----------------------------------------------------------------

    def request_callback(self, call_id: str, number: str, queue: str, **details):
        task = self.callbacks.add(call_id=call_id, number=number, queue=queue, **details)
        self._notify("callback", task.row())
        return task

    def take_callback(self, callback_id: str, agent: str):
        task = self.callbacks.take(callback_id, agent)
        self._notify("callback", task.row())
        return task

    def finish_callback(self, callback_id: str, agent: str, status: str = "done"):
        task = self.callbacks.finish(callback_id, agent, status)
        self._notify("callback", task.row())
        return task

    async def take_callback_async(self, callback_id: str, agent: str):
        """`take_callback`, atomic across nodes when shared (one UPDATE ... WHERE status = 'open' in
        PostgreSQL, off the event loop): of two agents on two nodes, one gets the task, the other
        a UserError."""
        if self.shared is None:
            return self.take_callback(callback_id, agent)
        task = await self.shared.callback_change(callback_id, "taken", agent)
        self._notify("callback", task.row())
        return task

    async def finish_callback_async(self, callback_id: str, agent: str, status: str = "done"):
        if self.shared is None:
            return self.finish_callback(callback_id, agent, status)
        if status not in ("done", "failed"):
            from ivr.errors import UserError

            raise UserError(f"a callback ends done or failed, not {status!r}")
        task = await self.shared.callback_change(callback_id, status, agent)
        self._notify("callback", task.row())
        return task

    # ---- views -----------------------------------------------------------------------

    def describe(self, call_id: str) -> dict | None:
        call = self._find(call_id)
        if call is None:
            return None
        position = self.position(call_id)
        wait = self.estimate(call.queue, position) if position else None
        return call.snapshot(self.clock(), position, wait)

    def snapshot(self) -> dict:
        """{"queues": {name: [waiting call dicts, in order]}, "callbacks": [open/taken tasks],
        "handle_s": {queue: mean handle time used}}: plain data for the console."""
        ids = [c.call_id for c in self._order()]
        queues: dict[str, list[dict]] = {}
        for call_id in ids:
            info = self.describe(call_id)
            if info is not None:
                queues.setdefault(info["queue"], []).append(info)
        return {"queues": queues, "callbacks": self.callbacks.snapshot(),
                "handle_s": {q: round(self.handle_time_s(q), 1) for q in set(queues) | set(self._handle)}}

    def apply_remote(self, calls: list[WaitingCall]) -> None:
        """The other nodes' callers, from the shared table (this node's own are its `_waiting`)."""
        with self._lock:
            fresh = {c.call_id: c for c in calls if c.node != self.node and c.call_id not in self._waiting}
            before = {k: (c.state, c.agent) for k, c in self._remote.items()}
            self._remote = fresh
            changed = before != {k: (c.state, c.agent) for k, c in fresh.items()}
        if changed:
            self._notify("waiting", {"remote": len(fresh)})

    def _notify(self, what: str, data: dict) -> None:
        for fn in list(self._listeners):
            try:
                fn(what, data)
            except Exception:
                log.exception("queue listener failed")
