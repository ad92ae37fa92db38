"""The records store: calls, turns and events written turn by turn by one writer thread.

The call side only puts operations on a queue (never blocks, never waits for the disk);
the writer thread commits them, a batch per transaction, as they come. If the database is
away (PostgreSQL stopped, SQLite read-only, disk full, file damaged), operations go to the
spool on disk, and the writer retries every `retry_s`; when the database answers again the
spool is written first, in order, then new operations. Nothing is lost and calls go on.

Recording consent: `transcripts` says per flow whether what the caller said and what the
machine said are kept; when not, turns keep everything else (steps, choices, scores,
timings) and the texts are dropped here, before anything is queued or spooled.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ivr.store.backends import Backend
from ivr.store.spool import Spool

log = logging.getLogger("ivr.store")

BATCH_MAX = 500
TEXT_KEYS = ("text", "texts", "heard", "said", "alternatives", "transcript")   # transcript: what an agent is shown


@dataclass(slots=True)
class TranscriptPolicy:
    """Keep heard/said texts? `flows` overrides `default` by flow name."""

    default: bool = True
    flows: dict[str, bool] = field(default_factory=dict)

    def keep(self, flow: str) -> bool:
        return self.flows.get(flow, self.default)


class RecordStore:
    def __init__(self, backend: Backend, spool_dir: Path, *, retention_days: float | None = None,
                 transcripts: TranscriptPolicy | None = None, retry_s: float = 2.0,
                 purge_every_s: float = 3600.0, clock: Callable[[], float] = time.time) -> None:
        self.backend = backend
        self.spool = Spool(spool_dir)
        self.retention_days = retention_days
        self.transcripts = transcripts or TranscriptPolicy()
        self.retry_s = retry_s
        self.purge_every_s = purge_every_s
        self.clock = clock
        self.written = 0
        self.rejected = 0
        self.purged = 0
        self.down = False
        self._retry_at = 0.0
        self._next_purge = 0.0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._keep_text: dict[str, bool] = {}
        self._seq: dict[str, int] = {}

    # ---- life --------------------------------------------------------------------

    def start(self) -> "RecordStore":
        """Open (and migrate) the database, then start the writer. Raises UserError with what
        to do when the database cannot be used at all."""
        self.backend.open()
        self._thread = threading.Thread(target=self._run, name="ivr-store-writer", daemon=True)
        self._thread.start()
        return self

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued so far is committed or spooled."""
        if self._thread is None or not self._thread.is_alive():
            return self._queue.empty()
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write (or spool) what is queued, then stop the writer and disconnect."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("records store: the writer did not finish within %.0f s", timeout_s)
        self._thread = None

    def status(self) -> dict:
        return {"backend": self.backend.name, "down": self.down, "spooled": self.spool.count,
                "written": self.written, "rejected": self.rejected, "purged": self.purged}

    # ---- the call side: queue and return ---------------------------------------------

    def begin_call(self, row: dict) -> None:
        call_id = row["call_id"]
        keep = self.transcripts.keep(str(row.get("flow") or ""))
        self._keep_text[call_id] = keep
        self._seq[call_id] = 0
        self._put({"op": "call", "row": {**row, "transcripts": keep}})

    def add_turn(self, row: dict) -> None:
        if not self._keep_text.get(row["call_id"], self.transcripts.default):
            row = {**row, "heard": None, "said": None, "data": _without_text(row.get("data"))}
        self._put({"op": "turn", "row": row})

    def add_event(self, call_id: str, kind: str, t_ms: int, at_s: float, data: dict | None = None) -> None:
        if not self._keep_text.get(call_id, self.transcripts.default):
            data = _without_text(data)
        seq = self._seq.get(call_id, 0)
        self._seq[call_id] = seq + 1
        self._put({"op": "event", "row": {"call_id": call_id, "seq": seq, "kind": kind, "t_ms": t_ms,
                                          "at_s": at_s, "data": data}})

    def end_call(self, row: dict) -> None:
        call_id = row["call_id"]
        self._keep_text.pop(call_id, None)
        self._seq.pop(call_id, None)
        if row.get("started_at") is None:   # only used if the call's start never reached the database
            ended = row.get("ended_at") or self.clock()
            row = {**row, "started_at": ended - (row.get("duration_ms") or 0) / 1000}
        self._put({"op": "end", "row": row})

    def add_disposition(self, row: dict) -> None:
        """The agent console's disposition of a call: {call_id, agent, disposition, notes, at_s, data};
        a second one by the same agent replaces the first."""
        self._put({"op": "disposition", "row": row})

    def put_callback(self, row: dict) -> None:
        """A callback task (ivr/agents/callbacks.py), inserted or updated by its callback_id."""
        self._put({"op": "callback", "row": row})

    def _put(self, op: dict) -> None:
        self._queue.put(op)

    # ---- the writer thread ---------------------------------------------------------

    def _run(self) -> None:
        if self.spool.pending:
            self._recover()
        stop = False
        while not stop:
            wait_s = self.retry_s if (self.down or self.spool.pending) else 60.0
            batch: list = []
            try:
                batch.append(self._queue.get(timeout=wait_s))
                while len(batch) < BATCH_MAX:
                    batch.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            stop = any(item is None for item in batch)
            flushes = [item for item in batch if isinstance(item, threading.Event)]
            ops = [item for item in batch if isinstance(item, dict)]
            try:
                if ops:
                    self._deliver(ops)
                elif self.spool.pending and self.clock() >= self._retry_at:
                    self._recover()
                if self.retention_days and self.clock() >= self._next_purge and not self.down:
                    self._purge()
            except Exception:   # the writer must outlive anything: log it and go on
                log.exception("records store: writer error")
            for event in flushes:
                event.set()
        self.spool.seal()
        self.backend.close()

    def _deliver(self, ops: list[dict]) -> None:
        if self.spool.pending and self.clock() >= self._retry_at:
            self._recover()
        if self.spool.pending:
            self._to_spool(ops)
            return
        rest = self._write(ops)
        if rest:
            self._to_spool(rest)

    def _write(self, ops: list[dict]) -> list[dict]:
        """Commit `ops`; returns those not written because the database is down."""
        try:
            self.backend.write(ops)
            self.written += len(ops)
            return []
        except Exception as exc:
            if self.backend.down(exc):
                self._went_down(exc)
                return ops
            if len(ops) == 1:
                self.rejected += 1
                log.error("records store: the database refused a %s record for call %s (%s); kept in %s",
                          ops[0]["op"], ops[0]["row"].get("call_id"), exc, self.spool.folder / "rejected.jsonl")
                self.spool.reject(ops[0], f"{type(exc).__name__}: {exc}")
                return []
        for index, op in enumerate(ops):   # one operation is bad: find it, write the others
            if self._write([op]):
                return ops[index:]
        return []

    def _went_down(self, exc: BaseException) -> None:
        if not self.down:
            log.error("records store: %s database unavailable (%s); spooling records to %s until it is back",
                      self.backend.name, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                      self.spool.folder)
        self.down = True
        self._retry_at = self.clock() + self.retry_s

    def _to_spool(self, ops: list[dict]) -> None:
        try:
            self.spool.append(ops)
        except OSError:
            log.exception("records store: cannot spool %d record(s) to %s; keeping them in memory",
                          len(ops), self.spool.folder)
            for op in ops:
                self._queue.put(op)
            time.sleep(min(self.retry_s, 1.0))

    def _recover(self) -> None:
        """Reconnect and write the spool, oldest first."""
        self._retry_at = self.clock() + self.retry_s
        try:
            if self.down:
                self.backend.reconnect()
            self.spool.seal()
            total = 0
            for path in self.spool.files():
                ops = list(self.spool.read(path))
                for start in range(0, len(ops), BATCH_MAX):
                    if self._write(ops[start:start + BATCH_MAX]):
                        return          # down again: the file stays, replayed whole next time
                self.spool.done(path, len(ops))
                total += len(ops)
            self.spool.pending = False
            self.spool.count = 0
        except Exception as exc:
            if self.backend.down(exc):
                self._went_down(exc)
                return
            raise
        if self.down or total:
            log.warning("records store: %s database back; %d spooled record(s) written", self.backend.name, total)
        self.down = False

    def _purge(self) -> None:
        self._next_purge = self.clock() + self.purge_every_s
        before = self.clock() - self.retention_days * 86400
        try:
            count = self.backend.purge(before)
        except Exception as exc:
            if self.backend.down(exc):
                self._went_down(exc)
                return
            raise
        self.purged += count
        if count:
            log.info("records store: retention deleted %d call(s) older than %g days", count, self.retention_days)


def _without_text(data: dict | None) -> dict | None:
    if not data:
        return data
    return {k: v for k, v in data.items() if k not in TEXT_KEYS}
