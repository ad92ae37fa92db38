"""Recognizer work of every call, on one worker thread per core, in order of arrival.

A turn's decode is queued first come, first served (FIFO), so a burst of callers who stop
talking together is served in the order they stopped, and no more decodes run at once than
there are cores (whisper keeps one single-threaded model copy per core: more would only
thrash). A *speculative* decode (started at a short pause, before the turn is confirmed:
`ivr/call_early.py`) waits behind every confirmed one, so a guess never delays a caller whose
turn has ended; once its turn is confirmed it is `promote`d and keeps its place in the order
of arrival (it was queued earlier than the decodes of callers who stopped later). A job
cancelled before it starts (speech resumed) is never run.
"""

import heapq
import itertools
import os
import threading
from concurrent.futures import Future

CONFIRMED, SPECULATIVE = 0, 1


class Job:
    __slots__ = ("args", "fn", "future", "priority", "seq")

    def __init__(self, seq: int, priority: int, fn, args: tuple) -> None:
        self.future: Future = Future()
        self.seq, self.priority, self.fn, self.args = seq, priority, fn, args

    def key(self) -> tuple[int, int]:
        return (self.priority, self.seq)


class RecognizerQueue:
    def __init__(self, workers: int | None = None, name: str = "ivr-asr") -> None:
        self.workers = max(1, workers or max(2, os.cpu_count() or 2))
        self._name = name
        self._heap: list[tuple[int, int, Job]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self.running = 0   # jobs being run now

    def submit(self, fn, *args, speculative: bool = False) -> Job:
        """Queue `fn(*args)`; its result (or exception) arrives in `job.future`."""
        job = Job(next(self._seq), SPECULATIVE if speculative else CONFIRMED, fn, args)
        with self._cond:
            heapq.heappush(self._heap, (*job.key(), job))
            if len(self._threads) < self.workers:
                thread = threading.Thread(target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
            self._cond.notify()
        return job

    def promote(self, job: Job) -> None:
        """A speculative job's turn is confirmed: it goes before later arrivals and every guess."""
        with self._cond:
            if job.priority == CONFIRMED:
                return
            job.priority = CONFIRMED
            for i, (_, _, queued) in enumerate(self._heap):
                if queued is job:
                    self._heap[i] = (*job.key(), job)
                    heapq.heapify(self._heap)
                    break

    def queued(self) -> int:
        """Jobs waiting for a worker (not counting those running)."""
        with self._cond:
            return len(self._heap)

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                job = heapq.heappop(self._heap)[2]
                if not job.future.set_running_or_notify_cancel():
                    continue   # cancelled while queued
                self.running += 1
            try:
                job.future.set_result(job.fn(*job.args))
            except BaseException as exc:   # delivered to the waiting call, which decides
                job.future.set_exception(exc)
            finally:
                with self._cond:
                    self.running -= 1
                job = None
