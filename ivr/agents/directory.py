"""The agents: users of the web pages with a phone (a `sip` address in the users file) and a status.

    available -> ringing -> on_call -> wrap_up -> available
                 ringing -> available (no answer / rejected) or away (after `max_misses` in a row)
    away / offline: not offered calls; logged out = offline.

`pick()` chooses the agent for the next call by **longest idle first**: among `available`
agents, the one whose last call (or last status change to available) ended earliest, so work
is spread evenly and an agent just back from a call is the last asked. An agent who missed a
ring counts as idle from the miss, so the next one is tried before them again.

`wrap_up` ends by itself after `wrap_up_s` (a timer on the running loop, and checked lazily
whenever the directory is read). An agent who logs out or goes away during a call keeps the
call (the phone is bridged); the new status applies when it ends, instead of wrap-up.

One event loop: every method is synchronous and quick; a lock makes calls from a worker thread
(e.g. the console's handlers) safe too. Listeners (`on_change`) are called after each change
with the agent's snapshot, outside the lock.

Several nodes (a PostgreSQL records database): `shared` is an `ivr.agents.shared.SharedState`;
this directory is then the node's mirror of the `agent_state` table. Each change is applied here
at once (the caller gets its answer without waiting for the database) and handed to `shared`,
which re-applies it to the locked row in PostgreSQL (the database's row is the truth: a change
that no longer fits it is dropped there) and brings the row back; changes by other nodes arrive
through `apply_rows`. A ring is never started from here then: `SharedState.claim` picks and
rings the agent in one transaction across nodes.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ivr.errors import UserError

log = logging.getLogger("ivr.agents")

STATUSES = ("available", "ringing", "on_call", "wrap_up", "away", "offline")
MANUAL = ("available", "away", "offline")      # what an agent may set (console); the rest is the service's
TRANSITIONS = {
    "offline": {"available", "away"},
    "away": {"available", "offline"},
    "available": {"away", "offline", "ringing"},
    "ringing": {"on_call", "available", "away", "offline"},
    "on_call": {"wrap_up", "available", "away", "offline"},
    "wrap_up": {"available", "away", "offline"},
}


@dataclass(slots=True)
class Agent:
    name: str
    address: str                  # SIP URI of the agent's phone
    role: str = "agent"
    status: str = "offline"
    since_s: float = 0.0          # when the status last changed
    idle_since_s: float = 0.0     # for longest-idle-first
    call_id: str | None = None    # ringing for / talking to
    misses: int = 0               # rings not answered, in a row
    calls: int = 0                # answered since the service started
    after_call: str | None = None  # status asked for during a call (away/offline), applied at its end
    wrap_until_s: float = 0.0
    node: str = ""                # the node holding the call (ringing / on_call), "" when none

    def snapshot(self, now_s: float) -> dict:
        return {"name": self.name, "address": self.address, "role": self.role, "status": self.status,
                "since_s": self.since_s, "in_status_s": round(max(0.0, now_s - self.since_s), 1),
                "idle_s": round(max(0.0, now_s - self.idle_since_s), 1) if self.status == "available" else None,
                "call_id": self.call_id, "node": self.node, "misses": self.misses, "calls": self.calls,
                "wrap_up_left_s": round(max(0.0, self.wrap_until_s - now_s), 1) if self.status == "wrap_up" else None}


class AgentDirectory:
    def __init__(self, *, wrap_up_s: float = 30.0, max_misses: int = 2,
                 clock: Callable[[], float] = time.time) -> None:
        if wrap_up_s < 0 or max_misses < 1:
            raise UserError("agents: wrap_up_s must be >= 0 and max_misses >= 1")
        self.wrap_up_s = wrap_up_s
        self.max_misses = max_misses
        self.clock = clock
        self._agents: dict[str, Agent] = {}
        self._lock = threading.RLock()
        self._listeners: list[Callable[[dict], object]] = []
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.node = ""                # this node's name (several nodes: the `node` of the calls it holds)
        self.shared = None            # ivr.agents.shared.SharedState when the state is in PostgreSQL

    # ---- who the agents are ----------------------------------------------------------

    def sync_users(self, users) -> None:
        """Agents = users (ivr/web/users.py `User`s, a dict or iterable) with a `sip` address.
        New ones start offline; removed ones (or whose address was removed) leave unless on a call."""
        users = users.values() if isinstance(users, dict) else users
        wanted = {u.name: u for u in users if getattr(u, "sip", "")}
        shared: list[tuple] = []
        with self._lock:
            for name in list(self._agents):
                if name not in wanted and self._agents[name].status not in ("ringing", "on_call"):
                    del self._agents[name]
                    shared.append((name, "remove", ()))
            for name, user in wanted.items():
                agent = self._agents.get(name)
                if agent is None:
                    now = self.clock()
                    self._agents[name] = Agent(name, user.sip, user.role, "offline", now, now)
                    shared.append((name, "upsert", (user.sip, user.role)))
                elif (agent.address, agent.role) != (user.sip, user.role):
                    agent.address, agent.role = user.sip, user.role
                    shared.append((name, "upsert", (user.sip, user.role)))
        for op in shared:
            self._share(*op)

    def add(self, name: str, address: str, *, role: str = "agent", status: str = "offline") -> Agent:
        """An agent not from the users file (tests, benchmarks, a static config)."""
        now = self.clock()
        with self._lock:
            agent = self._agents[name] = Agent(name, address, role, "offline", now, now)
        self._share(name, "upsert", (address, role))
        if status != "offline":
            self.set_status(name, status)
        return agent

    def get(self, name: str) -> Agent | None:
        self._tick()
        with self._lock:
            return self._agents.get(name)

    def on_change(self, fn: Callable[[dict], object]) -> None:
        """`fn(snapshot_of_agent)` after every status change (the dispatcher, the console)."""
        self._listeners.append(fn)

    # ---- status --------------------------------------------------------------------

    def set_status(self, name: str, status: str, *, call_id: str | None = None) -> dict:
        """Change an agent's status; raises UserError for an unknown agent or status, or a move
        the state machine does not allow (e.g. available -> on_call without a ring)."""
        if status not in STATUSES:
            raise UserError(f"unknown agent status {status!r}", "one of: " + ", ".join(STATUSES))
        self._tick()
        with self._lock:
            agent = self._agents.get(name)
            if agent is None:
                raise UserError(f"no agent {name!r}", "agents are users with a phone: ivr users add NAME --sip ...")
            if status == agent.status:
                return agent.snapshot(self.clock())
            if agent.status == "on_call" and status in ("away", "offline"):
                agent.after_call = status          # the call goes on; applied when it ends
                snap = agent.snapshot(self.clock())
                snap["after_call"] = status
                self._share(name, "set_status", (status, call_id))
                return snap
            if status not in TRANSITIONS[agent.status]:
                raise UserError(f"agent {name}: cannot go from {agent.status} to {status}")
            self._move(agent, status, call_id)
            snap = agent.snapshot(self.clock())
        self._share(name, "set_status", (status, call_id))
        self._notify(snap)
        return snap

    def _move(self, agent: Agent, status: str, call_id: str | None) -> None:
        now = self.clock()
        old = agent.status
        agent.status, agent.since_s = status, now
        if status == "ringing":
            agent.call_id, agent.node = call_id, self.node
        elif status == "on_call":
            agent.call_id, agent.misses = call_id or agent.call_id, 0
            agent.node = agent.node or self.node
            agent.calls += 1
        elif status == "wrap_up":
            agent.wrap_until_s = now + self.wrap_up_s
            self._arm(agent.name, self.wrap_up_s)
        else:
            agent.call_id, agent.node = None, ""
        if status == "available" and old != "available":
            agent.idle_since_s = now
        if status in ("available", "away", "offline"):
            agent.after_call = None
        log.info("agent %s: %s -> %s%s", agent.name, old, status, f" (call {agent.call_id})" if agent.call_id else "")

    # ---- what the service does with them ---------------------------------------------

    def pick(self, exclude: set[str] | frozenset = frozenset()) -> Agent | None:
        """The available agent idle the longest (not in `exclude`), or None."""
        self._tick()
        with self._lock:
            free = [a for a in self._agents.values() if a.status == "available" and a.name not in exclude]
            return min(free, key=lambda a: (a.idle_since_s, a.name)) if free else None

    def ring(self, name: str, call_id: str) -> dict:
        return self.set_status(name, "ringing", call_id=call_id)

    def answered(self, name: str, call_id: str) -> dict:
        """The agent's phone answered `call_id`: on_call, whatever was set meanwhile (a status chosen
        on the console while it rang, e.g. away, applies when the call ends)."""
        with self._lock:
            agent = self._agents.get(name)
            if agent is None:
                return {}
            if agent.status != "ringing" or agent.call_id not in (None, call_id):
                log.warning("agent %s answered call %s while %s: on the call now", name, call_id, agent.status)
                if agent.status in ("away", "offline"):
                    agent.after_call = agent.status
            after = agent.after_call
            self._move(agent, "on_call", call_id)
            agent.after_call = after
            snap = agent.snapshot(self.clock())
        self._share(name, "answered", (call_id,))
        self._notify(snap)
        return snap

    def missed(self, name: str, call_id: str | None = None) -> dict:
        """The agent's phone did not take the call (no answer, rejected, error): back to available,
        or away after `max_misses` in a row. A ring the caller cancelled is not a miss: `released`."""
        with self._lock:
            agent = self._agents.get(name)
            if agent is None or agent.status != "ringing" or (call_id and agent.call_id != call_id):
                return agent.snapshot(self.clock()) if agent else {}
            agent.misses += 1
            status = "away" if agent.misses >= self.max_misses else "available"
            self._move(agent, status, None)
            snap = agent.snapshot(self.clock())
        self._share(name, "missed", (call_id,))
        self._notify(snap)
        return snap

    def released(self, name: str, call_id: str | None = None) -> dict:
        """A ring ended through nobody's fault (the caller hung up, another agent took it)."""
        with self._lock:
            agent = self._agents.get(name)
            if agent is None or agent.status != "ringing" or (call_id and agent.call_id != call_id):
                return agent.snapshot(self.clock()) if agent else {}
            self._move(agent, "available", None)
            snap = agent.snapshot(self.clock())
        self._share(name, "released", (call_id,))
        self._notify(snap)
        return snap

    def call_ended(self, name: str, call_id: str | None = None) -> dict:
        """The bridged call is over: wrap-up (or the status asked for during the call)."""
        with self._lock:
            agent = self._agents.get(name)
            if agent is None or agent.status != "on_call" or (call_id and agent.call_id != call_id):
                return agent.snapshot(self.clock()) if agent else {}
            then = agent.after_call or ("wrap_up" if self.wrap_up_s > 0 else "available")
            self._move(agent, then, None)
            snap = agent.snapshot(self.clock())
        self._share(name, "call_ended", (call_id,))
        self._notify(snap)
        return snap

    def counts(self) -> dict[str, int]:
        self._tick()
        with self._lock:
            out = dict.fromkeys(STATUSES, 0)
            for agent in self._agents.values():
                out[agent.status] += 1
            return out

    def staffed(self) -> int:
        """Agents logged in and taking calls (not away, not offline): the estimate's n."""
        counts = self.counts()
        return sum(counts[s] for s in ("available", "ringing", "on_call", "wrap_up"))

    def snapshot(self) -> list[dict]:
        self._tick()
        with self._lock:
            now = self.clock()
            return [a.snapshot(now) for a in sorted(self._agents.values(), key=lambda a: a.name)]

    # ---- wrap-up timers ------------------------------------------------------------

    def _arm(self, name: str, delay_s: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return                                  # no loop here: expired lazily on the next read
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        self._timers[name] = loop.call_later(delay_s + 0.001, self._wrap_timer, name)

    def _wrap_timer(self, name: str) -> None:
        self._timers.pop(name, None)
        self._tick()

    def _tick(self) -> None:
        """End the wrap-ups that are due, and tell the listeners."""
        with self._lock:
            changed = self._expire()
        for snap in changed:
            self._notify(snap)

    def _expire(self) -> list[dict]:
        now = self.clock()
        changed = []
        for agent in self._agents.values():
            if agent.status == "wrap_up" and now >= agent.wrap_until_s:
                self._move(agent, "available", None)
                changed.append(agent.snapshot(now))
                self._share(agent.name, "expire", ())
        return changed

    # ---- several nodes: the mirror of the shared table (ivr/agents/shared.py) ----------

    def _share(self, name: str, method: str, args: tuple) -> None:
        if self.shared is not None:
            self.shared.agent_op(name, method, args)

    def apply_rows(self, agents: list[Agent], skip: set[str] | frozenset = frozenset(), *,
                   partial: bool = False) -> None:
        """The shared table's agents replace this mirror (but `skip`: names with changes of ours
        still on their way to the database; `partial`: only these agents, the others stay);
        listeners hear of each agent that changed."""
        changed = []
        with self._lock:
            now = self.clock()
            wanted = {a.name: a for a in agents}
            for name in [] if partial else list(self._agents):
                if name not in wanted and name not in skip:
                    del self._agents[name]
            for name, agent in wanted.items():
                if name in skip:
                    continue
                old = self._agents.get(name)
                self._agents[name] = agent
                if agent.status == "wrap_up" and (old is None or old.status != "wrap_up"):
                    self._arm(name, max(0.0, agent.wrap_until_s - now))   # its end wakes this node's dispatcher
                if old is None or (old.status, old.call_id, old.after_call) != (agent.status, agent.call_id,
                                                                               agent.after_call):
                    changed.append(agent.snapshot(now))
        for snap in changed:
            self._notify(snap)

    def _notify(self, snap: dict) -> None:
        for fn in list(self._listeners):
            try:
                fn(snap)
            except Exception:
                log.exception("agent status listener failed")
