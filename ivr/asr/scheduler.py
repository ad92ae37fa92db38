"""Recognizer work of every call, on one worker thread per core, in order of arrival.

A turn's decode is queued first come, first served (FIFO), so a burst of callers who stop
talking together is served in the order they stopped, and no more decodes run at once than
there are cores (whisper keeps one single-threaded model copy per core: more would only
thrash). A *speculative* decode (started at a short pause, before the turn is confirmed:
`ivr/call_early.py`) waits behind every confirmed one, so a guess never delays a caller whose
turn has ended; once its turn is confirmed it is `promote`d and keeps its place in the order
of arrival (it was queued earlier than the decodes of callers who stopped later). A job
cancelled before it starts (speech resumed) is never run.

Decodes that can share one model pass carry a `Batch` (whisper: the same step's prompt, a short
utterance). A worker that takes such a job takes up to MAX_BATCH - 1 more of the same key still
queued, next in order, and runs them together: whisper's decoder then costs ~19 instead of ~34 ms
an utterance (batch of 4; the encoder costs the same per utterance batched or not), so a burst of
callers at the same step is served ~15 % sooner; a job alone in the queue runs alone, as before.
"""

import heapq
import itertools
import os
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

CONFIRMED, SPECULATIVE = 0, 1
# Decodes run together at most: whisper tiny.en's decoder per utterance 34 ms alone, 24 ms in twos, 19 ms in
# fours, no less in eights; its encoder per utterance ~58 ms in ones to fours, 82 ms in eights (the cache).
MAX_BATCH = 4


@dataclass(frozen=True, slots=True)
class Batch:
    """How a job may share a pass with others: those of the same `key` are run as `run_many([item, ...])`,
    which returns one result per item (an exception instance for an item that failed) in their order."""

    key: Hashable
    run_many: Callable[[list], list]
    item: Any


class Job:
    __slots__ = ("args", "batch", "fn", "future", "priority", "seq")

    def __init__(self, seq: int, priority: int, fn, args: tuple, batch: Batch | None = None) -> None:
        self.future: Future = Future()
        self.seq, self.priority, self.fn, self.args, self.batch = seq, priority, fn, args, batch

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

    def submit(self, fn, *args, speculative: bool = False, batch: Batch | None = None) -> Job:
        """Queue `fn(*args)`; its result (or exception) arrives in `job.future`. With `batch`, the job may
        instead run in `batch.run_many` with queued jobs of the same key (what fn would give, in one pass)."""
        job = Job(next(self._seq), SPECULATIVE if speculative else CONFIRMED, fn, args, batch)
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
                jobs = [job, *self._take_batch(job)]
                self.running += len(jobs)
            try:
                if len(jobs) == 1:
                    self._run_one(job)
                else:
                    self._run_batch(jobs)
            finally:
                with self._cond:
                    self.running -= len(jobs)
                job = jobs = None

    def _take_batch(self, job: Job) -> list[Job]:
        """The queued jobs of `job`'s batch key and priority (a confirmed turn does not wait for guesses), next in
        order, up to MAX_BATCH in all; marked running (called with the lock held)."""
        if job.batch is None:
            return []
        mates = []
        for entry in sorted(self._heap):
            if len(mates) == MAX_BATCH - 1:
                break
            other = entry[2]
            if other.priority == job.priority and other.batch is not None and other.batch.key == job.batch.key:
                self._heap.remove(entry)
                if other.future.set_running_or_notify_cancel():
                    mates.append(other)
        if mates:
            heapq.heapify(self._heap)
        return mates

    @staticmethod
    def _run_one(job: Job) -> None:
        try:
            job.future.set_result(job.fn(*job.args))
        except BaseException as exc:   # delivered to the waiting call, which decides
            job.future.set_exception(exc)

    @staticmethod
    def _run_batch(jobs: list[Job]) -> None:
        try:
            results = jobs[0].batch.run_many([j.batch.item for j in jobs])
            if len(results) != len(jobs):
                raise RuntimeError(f"a batch of {len(jobs)} decodes gave {len(results)} results")
        except BaseException as exc:   # the whole pass failed: every caller in it hears of it
            for j in jobs:
                j.future.set_exception(exc)
            return
        for j, result in zip(jobs, results, strict=True):
            if isinstance(result, BaseException):
                j.future.set_exception(result)
            else:
                j.future.set_result(result)
