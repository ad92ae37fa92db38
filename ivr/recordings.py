"""Optional stereo call recordings: caller left, machine right, one WAV per call.

    recorder = Recorder(records_dir, RecordingPolicy(default=False, flows={"support": True})).start()
    tap = recorder.open(call_id, flow_name, began_at_s)      # None: this flow is not recorded
    Call(..., tap=tap)                                        # the call loop hands it each frame
    tap.close()                                               # after the call

The call loop knows nothing of files: after each 20 ms frame it calls `tap(inbound, outbound,
private)` in audio time (`ivr/call.py`). The tap copies the frame into a small buffer and,
every `BATCH_FRAMES`, puts it on one bounded queue; a single writer thread appends to
`RECORDS/YYYY-MM-DD/CALL_ID.wav` (UTC day the call began), PCM16 at the call's internal rate
(16 kHz). The stdlib `wave` writer rewrites the RIFF/data sizes after every append, so a crash
keeps a readable file of everything written up to the last batch (at most 200 ms lost).

`private` is true while the flow is at a step collecting a `sensitive: true` slot (the call's
`Redactor.sensitive_steps`: the prompt, the keyed tones or spoken digits, the read-back and
the yes/no): both channels are written as silence then, and for `PRIVATE_TAIL_FRAMES` after
(the last key's tone goes on after the frame that completed the slot moved the flow on), so the
recording never holds a card number or PIN. If the writer falls behind and the queue is full, the batch is replaced by
silence of the same length (the file stays in time with the call) and counted in `dropped_ms`.

Retention: with `retention_days`, the writer deletes recordings whose file is older than that
(checked hourly), as the records store deletes the rows.
"""

import logging
import queue
import re
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ivr.audio.frames import FRAME_MS, FRAME_SAMPLES, INTERNAL_RATE_HZ

log = logging.getLogger("ivr.recordings")
BATCH_FRAMES = 10            # 200 ms per queue item: what a crash may lose
QUEUE_BATCHES = 500          # 100 s of audio over all calls before batches turn to silence
PURGE_EVERY_S = 3600.0
PRIVATE_TAIL_FRAMES = 25     # 500 ms: a key tone still sounding when its keys ended the sensitive step
DAY_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class RecordingPolicy:
    """Record calls? Off unless consent was given: `flows` overrides `default` by flow name."""

    default: bool = False
    flows: dict[str, bool] = field(default_factory=dict)

    def keep(self, flow: str) -> bool:
        return self.flows.get(flow, self.default)

    @property
    def any(self) -> bool:
        return self.default or any(self.flows.values())


def _safe(call_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", call_id)[:120] or "call"


def _mono(frame, n: int) -> np.ndarray:
    if frame is None:
        return np.zeros(n, dtype=np.int16)
    samples = np.asarray(frame)
    if samples.dtype != np.int16:
        samples = np.clip(np.round(samples * 32767 if samples.dtype.kind == "f" else samples),
                          -32768, 32767).astype(np.int16)
    if len(samples) != n:
        samples = np.pad(samples[:n], (0, max(0, n - len(samples))))
    return samples


class CallTap:
    """One call's recording; called by the call loop once per frame (never blocks it)."""

    def __init__(self, recorder: "Recorder", call_id: str, path: Path) -> None:
        self.recorder = recorder
        self.call_id = call_id
        self.path = path
        self.frames = 0
        self.private_frames = 0
        self.dropped_ms = 0
        self.closed = False
        self._buffer = np.zeros((BATCH_FRAMES * FRAME_SAMPLES, 2), dtype=np.int16)
        self._filled = 0
        self._gap = 0          # bytes of silence owed to the file (queue was full)
        self.failed = False
        self._tail = 0         # frames still silenced after the sensitive step

    def __call__(self, inbound, outbound, private: bool = False) -> None:
        if self.closed:
            return
        rows = self._buffer[self._filled * FRAME_SAMPLES:(self._filled + 1) * FRAME_SAMPLES]
        silent = private or self._tail > 0
        self._tail = PRIVATE_TAIL_FRAMES if private else max(0, self._tail - 1)
        if silent:
            rows[:] = 0
            self.private_frames += 1
        else:
            rows[:, 0] = _mono(inbound, FRAME_SAMPLES)
            rows[:, 1] = _mono(outbound, FRAME_SAMPLES)
        self._filled += 1
        self.frames += 1
        if self._filled == BATCH_FRAMES:
            self._flush()

    def _flush(self, last: bool = False) -> None:
        data = self._buffer[:self._filled * FRAME_SAMPLES].tobytes()
        self._filled = 0
        if self._gap:    # silence for the batches the writer could not take: the file stays in time
            data = bytes(self._gap) + data
        try:
            self.recorder.queue.put_nowait((self, data, last))
            self._gap = 0
            return
        except queue.Full:
            if not self.dropped_ms:
                log.warning("call %s: recording writer behind; writing silence for what it could not take",
                            self.call_id)
            self.dropped_ms += (len(data) - self._gap) // 4 * 1000 // INTERNAL_RATE_HZ
            self._gap = len(data)
        if last:   # the file must still be closed: wait a little for the writer
            try:
                self.recorder.queue.put((self, bytes(self._gap), True), timeout=5.0)
            except queue.Full:
                log.error("call %s: recording writer stuck; %s is closed at shutdown", self.call_id, self.path)

    def close(self) -> None:
        """The call is over: write what is buffered and close the file (in the writer thread)."""
        if not self.closed:
            self.closed = True
            self._flush(last=True)


class Recorder:
    """One writer thread for every call's recording."""

    def __init__(self, directory: Path, policy: RecordingPolicy | None = None, *, retention_days: float = 0,
                 queue_batches: int = QUEUE_BATCHES) -> None:
        self.directory = Path(directory)
        self.policy = policy or RecordingPolicy()
        self.retention_days = retention_days
        self.queue: queue.Queue = queue.Queue(maxsize=queue_batches)
        self._files: dict[CallTap, wave.Wave_write] = {}
        self._thread: threading.Thread | None = None
        self._next_purge = 0.0
        self.saved = 0
        self.failed = 0
        self.purged = 0

    def start(self) -> "Recorder":
        self._thread = threading.Thread(target=self._run, name="ivr-recordings", daemon=True)
        self._thread.start()
        return self

    def open(self, call_id: str, flow: str, began_at_s: float | None = None) -> CallTap | None:
        """A tap for this call, or None when its flow is not recorded."""
        if not self.policy.keep(flow):
            return None
        day = time.strftime("%Y-%m-%d", time.gmtime(time.time() if began_at_s is None else began_at_s))
        return CallTap(self, call_id, self.directory / day / f"{_safe(call_id)}.wav")

    def close(self, timeout_s: float = 10.0) -> None:
        """Write everything queued, close the files, stop the writer."""
        if self._thread is not None and self._thread.is_alive():
            self.queue.put(None)
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("recordings: the writer did not finish within %.0f s", timeout_s)
        self._thread = None

    # ---- the writer thread ---------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                item = self.queue.get(timeout=60.0)
            except queue.Empty:
                item = ...
            if item is None:
                break
            try:
                if item is not ...:
                    self._write(*item)
                if self.retention_days and time.time() >= self._next_purge:
                    self.purge()
            except Exception:   # the writer must outlive anything: log it and go on
                log.exception("recordings: writer error")
        for tap in list(self._files):
            self._close(tap)

    def _write(self, tap: CallTap, data: bytes, last: bool) -> None:
        out = self._files.get(tap)
        if out is None and not tap.failed:
            try:
                tap.path.parent.mkdir(parents=True, exist_ok=True)
                out = wave.open(str(tap.path), "wb")   # noqa: SIM115 - kept open for the call's length
                out.setnchannels(2)
                out.setsampwidth(2)
                out.setframerate(INTERNAL_RATE_HZ)
                self._files[tap] = out
            except OSError as exc:
                tap.failed = True
                self.failed += 1
                log.error("call %s: cannot write its recording %s (%s); the call goes on unrecorded",
                          tap.call_id, tap.path, exc)
        if out is not None and data:
            try:
                out.writeframes(data)    # rewrites the header's sizes: a crash leaves a readable file
                out._file.flush()
            except OSError as exc:
                log.error("call %s: recording %s stopped (%s)", tap.call_id, tap.path, exc)
                self._close(tap)
                tap.failed = True
                self.failed += 1
                return
        if last:
            self._close(tap)

    def _close(self, tap: CallTap) -> None:
        out = self._files.pop(tap, None)
        if out is None:
            return
        try:
            out.close()
            self.saved += 1
            log.info("call %s: recording saved to %s (%.1f s, %.1f s silenced as sensitive)", tap.call_id,
                     tap.path, tap.frames * FRAME_MS / 1000, tap.private_frames * FRAME_MS / 1000)
        except OSError as exc:
            self.failed += 1
            log.error("call %s: could not finish its recording %s (%s)", tap.call_id, tap.path, exc)

    def purge(self, now_s: float | None = None) -> int:
        """Delete recordings older than `retention_days` (by the file's time). Returns how many."""
        now_s = time.time() if now_s is None else now_s
        self._next_purge = now_s + PURGE_EVERY_S
        if not self.retention_days or not self.directory.is_dir():
            return 0
        before = now_s - self.retention_days * 86400
        open_paths = {tap.path for tap in self._files}
        count = 0
        for day in self.directory.iterdir():
            if not (day.is_dir() and DAY_DIR.match(day.name)):
                continue
            for path in day.glob("*.wav"):
                try:
                    if path not in open_paths and path.stat().st_mtime < before:
                        path.unlink()
                        count += 1
                except OSError as exc:
                    log.error("recordings: retention could not delete %s (%s)", path, exc)
        self.purged += count
        if count:
            log.info("recordings: retention deleted %d recording(s) older than %g days", count, self.retention_days)
        return count
