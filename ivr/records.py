"""Call records as JSON files, written by a hub subscriber in its own thread.

Each event of a call is appended (and flushed) to `RECORDS/.partial/CALL_ID.jsonl` as it
arrives, so a crash of the service keeps every turn already done. At `CallEnded` the events
are folded into the record (`ivr.trace.TraceBuilder`: the `ivr replay --json` trace plus a
`call` section) and written to `RECORDS/YYYY-MM-DD/CALL_ID.json` (UTC day the call began),
then the JSONL goes. At start-up, `recover()` turns the JSONL files a crash left into records
with outcome `interrupted`.

Events come from the hub, already through its filter (redaction): this writer stores what it
is given and never sees the call loop. Transcripts follow the records database's rule
(`ivr.store.TranscriptPolicy`, config `records.transcripts`): for a flow whose transcripts are
not kept, heard/said texts (the store's `TEXT_KEYS`) are emptied before anything is written,
the JSONL included.
"""

import dataclasses
import json
import logging
import re
import threading
import time
from pathlib import Path

from ivr.callevents import CallBegan, CallEnded, CallEvent, from_dict, to_dict
from ivr.store.store import TEXT_KEYS, TranscriptPolicy
from ivr.trace import Outcome, TraceBuilder, write_json

log = logging.getLogger("ivr.records")
PARTIAL_DIR = ".partial"


def _safe(call_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", call_id)[:120] or "call"


def record_of(builder: TraceBuilder) -> dict:
    """The record of a call: its trace, plus who/when/how it came in."""
    data = builder.trace.to_dict()
    began, ended = builder.began, builder.ended
    if began is not None:
        data["call"] = {"kind": began.transport, "transport_id": began.transport_id, "caller": began.caller,
                        "called": began.called, "remote": began.remote, "flow_version": began.flow_version,
                        "language": began.language, "started_at": round(began.at_s, 3),
                        "recording": began.recording or None,
                        "ended_at": round(ended.at_s, 3) if ended is not None else None}
    return data


def without_text(event: CallEvent) -> CallEvent:
    """The event with its heard/said texts emptied (a flow whose transcripts are not kept)."""
    changes = {f.name: type(getattr(event, f.name))() for f in dataclasses.fields(event)
               if f.name in TEXT_KEYS and getattr(event, f.name)}
    return dataclasses.replace(event, **changes) if changes else event


class JsonRecords:
    """`hub.subscribe(JsonRecords(dir), thread=True)`: one JSON record per call."""

    def __init__(self, directory: Path, transcripts: TranscriptPolicy | None = None) -> None:
        self.directory = Path(directory)
        self.transcripts = transcripts or TranscriptPolicy()
        self._drop_text: set[str] = set()   # calls whose flow keeps no transcripts
        self.partial = self.directory / PARTIAL_DIR
        self._open: dict[str, tuple] = {}   # call id -> (file, TraceBuilder)
        self._lock = threading.Lock()
        self.written = 0
        self.failed = 0

    def __call__(self, event: CallEvent) -> None:
        with self._lock:
            self._handle(event)

    def _handle(self, event: CallEvent) -> None:
        if isinstance(event, CallBegan) and not self.transcripts.keep(event.flow):
            self._drop_text.add(event.call_id)
        if event.call_id in self._drop_text:
            event = without_text(event)
            if isinstance(event, CallEnded):
                self._drop_text.discard(event.call_id)
        entry = self._open.get(event.call_id)
        if entry is None:
            if not isinstance(event, CallBegan):
                log.warning("call %s: %s before CallBegan (its start was lost): starting its record here",
                            event.call_id, type(event).__name__)
            self.partial.mkdir(parents=True, exist_ok=True)
            handle = open(self.partial / f"{_safe(event.call_id)}.jsonl", "a", encoding="utf-8")  # noqa: SIM115
            entry = self._open[event.call_id] = (handle, TraceBuilder(event.call_id))
        handle, builder = entry
        builder.apply(event)
        try:
            handle.write(json.dumps(to_dict(event), ensure_ascii=False) + "\n")
            handle.flush()
        except OSError:
            log.exception("call %s: could not append to its event log", event.call_id)
        if isinstance(event, CallEnded):
            del self._open[event.call_id]
            handle.close()
            self._write(builder, Path(handle.name))

    def _write(self, builder: TraceBuilder, partial: Path) -> None:
        call_id = builder.trace.call_id
        began_s = builder.began.at_s if builder.began is not None else time.time()
        day = time.strftime("%Y-%m-%d", time.gmtime(began_s))
        try:
            write_json(self.directory / day / f"{_safe(call_id)}.json", record_of(builder))
        except (OSError, ValueError, TypeError):
            self.failed += 1
            log.exception("call %s: could not write its record; its events stay in %s", call_id, partial)
            return
        self.written += 1
        partial.unlink(missing_ok=True)

    def recover(self) -> int:
        """Records for the calls a crash left half-written (outcome `interrupted`). Returns how many."""
        if not self.partial.is_dir():
            return 0
        count = 0
        for path in sorted(self.partial.glob("*.jsonl")):
            builder = TraceBuilder(path.stem)
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError:
                log.exception("cannot read %s", path)
                continue
            for line in lines:
                try:
                    builder.apply(from_dict(json.loads(line)))
                except (ValueError, TypeError):
                    continue   # the line being written when the process died
            if builder.trace.outcome is None:
                builder.trace.outcome = Outcome("interrupted", reason="the service stopped during the call",
                                                why="recovered from its event log at start-up")
            self._write(builder, path)
            count += 1
        if count:
            log.warning("recovered %d call record(s) left by a crash", count)
        return count

    def close(self) -> None:
        """At shutdown, after the hub has drained: calls never ended keep their JSONL (recovered next start)."""
        with self._lock:
            for handle, _ in self._open.values():
                handle.close()
            if self._open:
                log.warning("%d call(s) had no end event; their event logs stay in %s", len(self._open), self.partial)
            self._open.clear()

