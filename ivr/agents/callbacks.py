"""Callback tasks: a caller in a queue asked to be called back instead of waiting.

    open -> taken (an agent has it, from the console) -> done | failed (no reach) ; taken -> open (released)

Kept in memory (the authority on this node: two agents taking the same task get one yes and
one UserError) and, when the service has a records database, written to its `callbacks`
table through the records store's writer queue (so a database outage spools them like call
records: none is lost). Open and taken tasks are read back at start-up.

Several nodes (PostgreSQL, `shared` set: ivr/agents/shared.py): the `callbacks` table is the
authority. A new task is also written at once by the shared-state worker (and NOTIFY), the open
and taken tasks of every node are mirrored here (`apply_rows`), and taking, releasing or finishing
one is a single conditional UPDATE in PostgreSQL (`QueueManager.take_callback_async`): of two
agents on two nodes taking the same task, one gets it, the other a UserError.
"""

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from ivr.errors import UserError

log = logging.getLogger("ivr.agents")

STATUSES = ("open", "taken", "done", "failed")
COLUMNS = ("callback_id", "call_id", "number", "queue", "created_at", "status", "caller", "language",
           "reason", "agent", "updated_at", "data")


@dataclass(slots=True)
class Callback:
    callback_id: str
    call_id: str
    number: str                  # confirmed by the caller (caller ID or a `phone` slot)
    queue: str
    created_at: float
    status: str = "open"
    caller: str = ""             # the caller ID the call came from
    language: str = ""
    reason: str = ""
    agent: str = ""              # who took it
    updated_at: float = 0.0
    data: dict = field(default_factory=dict)   # context for the agent (intent, slots masked, waited_ms)

    def row(self) -> dict:
        return asdict(self)


class CallbackBook:
    def __init__(self, store=None, *, clock: Callable[[], float] = time.time, keep_done: int = 500) -> None:
        self.store = store               # ivr.store.RecordStore or None (memory only)
        self.clock = clock
        self.keep_done = keep_done
        self._tasks: dict[str, Callback] = {}
        self._lock = threading.Lock()
        self.shared = None                # ivr.agents.shared.SharedState (several nodes)
        self.unsaved: set[str] = set()    # added here, not yet in the shared table

    def load(self) -> int:
        """Read the open and taken tasks from the database (blocking: run in a thread at start)."""
        if self.store is None:
            return 0
        try:
            rows = self.store.backend.fetch(
                "SELECT * FROM callbacks WHERE status IN ('open', 'taken') ORDER BY created_at")
        except Exception as exc:   # the database may be down at start: memory until it is back
            log.warning("callbacks: could not read the open tasks (%s); new ones are still kept", exc)
            return 0
        with self._lock:
            for row in rows:
                task = from_row(row)
                self._tasks[task.callback_id] = task
        return len(rows)

    def apply_rows(self, tasks: list[Callback]) -> None:
        """Several nodes: the open and taken tasks in the shared table replace this node's (but
        those just added here and not yet written there)."""
        with self._lock:
            fresh = {t.callback_id: t for t in tasks}
            for callback_id, task in list(self._tasks.items()):
                if (task.status in ("open", "taken") and callback_id not in fresh
                        and callback_id not in self.unsaved):
                    del self._tasks[callback_id]
            self._tasks.update(fresh)

    def put(self, task: Callback) -> None:
        with self._lock:
            self._tasks[task.callback_id] = task
            self._trim()

    def add(self, *, call_id: str, number: str, queue: str, caller: str = "", language: str = "",
            reason: str = "", data: dict | None = None) -> Callback:
        if not number:
            raise UserError("a callback needs a number", "confirm the caller ID or collect a phone slot first")
        now = self.clock()
        task = Callback(f"cb-{secrets.token_hex(6)}", call_id, number, queue, now, "open", caller, language,
                        reason, "", now, dict(data or {}))
        with self._lock:
            self._tasks[task.callback_id] = task
        self._save(task)
        if self.shared is not None:
            self.unsaved.add(task.callback_id)
            self.shared.callback_op(task.row())
        log.info("callback %s stored for call %s (queue %s)", task.callback_id, call_id, queue)
        return task

    def take(self, callback_id: str, agent: str) -> Callback:
        """An agent takes an open task; a second agent taking the same one gets a UserError."""
        return self._change(callback_id, "taken", agent, allowed_from=("open",))

    def release(self, callback_id: str, agent: str) -> Callback:
        return self._change(callback_id, "open", agent, allowed_from=("taken",), same_agent=True)

    def finish(self, callback_id: str, agent: str, status: str = "done") -> Callback:
        if status not in ("done", "failed"):
            raise UserError(f"a callback ends done or failed, not {status!r}")
        return self._change(callback_id, status, agent, allowed_from=("taken",), same_agent=True)

    def _change(self, callback_id: str, status: str, agent: str, *, allowed_from: tuple[str, ...],
                same_agent: bool = False) -> Callback:
        with self._lock:
            task = self._tasks.get(callback_id)
            if task is None:
                raise UserError(f"no callback task {callback_id!r}")
            if task.status not in allowed_from:
                by = f" by {task.agent}" if task.agent else ""
                raise UserError(f"callback {callback_id} is {task.status}{by}")
            if same_agent and task.agent and task.agent != agent:
                raise UserError(f"callback {callback_id} is {task.agent}'s")
            task.status, task.updated_at = status, self.clock()
            task.agent = "" if status == "open" else agent
            self._trim()
        self._save(task)
        return task

    def get(self, callback_id: str) -> Callback | None:
        return self._tasks.get(callback_id)

    def tasks(self, status: str | None = None) -> list[Callback]:
        with self._lock:
            tasks = [t for t in self._tasks.values() if status is None or t.status == status]
        return sorted(tasks, key=lambda t: t.created_at)

    def snapshot(self) -> list[dict]:
        return [t.row() for t in self.tasks() if t.status in ("open", "taken")]

    def _trim(self) -> None:
        finished = [t for t in self._tasks.values() if t.status in ("done", "failed")]
        for task in sorted(finished, key=lambda t: t.updated_at)[:max(0, len(finished) - self.keep_done)]:
            del self._tasks[task.callback_id]

    def _save(self, task: Callback) -> None:
        if self.store is not None:
            self.store.put_callback(task.row())


def from_row(row: dict) -> Callback:
    """A task from a `callbacks` row (JSON `data` as text or already decoded)."""
    data = row.get("data")
    values = {k: row.get(k) for k in COLUMNS}
    values["data"] = json.loads(data) if isinstance(data, str) and data else (data or {})
    values = {k: ("" if v is None and k not in ("created_at", "updated_at") else v) for k, v in values.items()}
    return Callback(**values)
