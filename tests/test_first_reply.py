"""The first reply's plumbing: the recognizer queue's order (FIFO, guesses behind confirmed turns), its
batches (a burst at one step decoded in shared passes) and the reply's lead-in. Behaviour only; the
latency itself is measured by scripts/loadgen.py."""

import threading

import numpy as np
import pytest

from ivr.asr.scheduler import MAX_BATCH, Batch, RecognizerQueue
from ivr.call_output import LEAD_IN_MS, trim_lead_in


def _blocked_queue():
    """A one-worker queue whose worker is held until the returned event is set."""
    queue, gate, started = RecognizerQueue(workers=1), threading.Event(), threading.Event()

    def hold():
        started.set()
        gate.wait(10)

    first = queue.submit(hold)
    assert started.wait(10)
    return queue, gate, first


def test_a_burst_is_served_in_order_of_arrival():
    queue, gate, _ = _blocked_queue()
    order: list[int] = []
    jobs = [queue.submit(order.append, i) for i in range(6)]
    assert queue.queued() == 6
    gate.set()
    for job in jobs:
        job.future.result(10)
    assert order == list(range(6))


def test_a_guess_waits_behind_confirmed_turns_and_keeps_its_place_once_confirmed():
    queue, gate, _ = _blocked_queue()
    order: list[str] = []
    guess_a = queue.submit(order.append, "guess a", speculative=True)
    turn_b = queue.submit(order.append, "turn b")
    guess_c = queue.submit(order.append, "guess c", speculative=True)
    turn_d = queue.submit(order.append, "turn d")
    queue.promote(guess_a)   # a's pause became its turn's end: before b, which stopped later
    gate.set()
    for job in (guess_a, turn_b, guess_c, turn_d):
        job.future.result(10)
    assert order == ["guess a", "turn b", "turn d", "guess c"]


def test_a_cancelled_guess_never_runs_and_failures_reach_the_caller():
    queue, gate, _ = _blocked_queue()
    ran: list[str] = []
    dropped = queue.submit(ran.append, "dropped", speculative=True)
    assert dropped.future.cancel()

    def fail():
        raise RuntimeError("decoder failed")

    failing = queue.submit(fail)
    kept = queue.submit(ran.append, "kept")
    gate.set()
    kept.future.result(10)
    with pytest.raises(RuntimeError, match="decoder failed"):
        failing.future.result(10)
    assert ran == ["kept"]


class _Decoder:
    """Batch.run_many stand-in that records the groups it was given; an item "bad" fails alone."""

    def __init__(self):
        self.groups: list[list[str]] = []

    def run_many(self, items):
        self.groups.append(list(items))
        return [ValueError(item) if item == "bad" else item.upper() for item in items]

    def job(self, queue, item, key="menu", speculative=False):
        return queue.submit(lambda: item.upper(), speculative=speculative, batch=Batch(key, self.run_many, item))


def test_a_burst_at_one_step_is_decoded_in_groups_in_order_of_arrival():
    queue, gate, _ = _blocked_queue()
    decoder = _Decoder()
    jobs = [decoder.job(queue, "a"), decoder.job(queue, "b"), decoder.job(queue, "x", key="other"),
            decoder.job(queue, "c"), decoder.job(queue, "gone"), decoder.job(queue, "bad"), decoder.job(queue, "d"),
            decoder.job(queue, "e"), queue.submit(str.upper, "plain")]
    assert jobs[4].future.cancel()   # speech resumed: never decoded
    gate.set()
    results = {}
    for job in jobs[:4] + jobs[5:]:
        try:
            results[job] = job.future.result(10)
        except ValueError as exc:
            results[job] = f"failed {exc}"
    assert decoder.groups == [["a", "b", "c", "bad"], ["d", "e"]]   # MAX_BATCH; "x" ran alone (its own fn)
    assert MAX_BATCH == 4
    assert [results[j] for j in jobs[:4] + jobs[5:]] == ["A", "B", "X", "C", "failed bad", "D", "E", "PLAIN"]


def test_a_confirmed_turn_is_not_decoded_with_guesses_and_a_failed_pass_reaches_all():
    queue, gate, _ = _blocked_queue()
    decoder = _Decoder()
    guess = decoder.job(queue, "guess", speculative=True)
    turns = [decoder.job(queue, "one"), decoder.job(queue, "two")]
    gate.set()
    assert [t.future.result(10) for t in turns] == ["ONE", "TWO"] and guess.future.result(10) == "GUESS"
    assert decoder.groups == [["one", "two"]]   # the guess ran alone, after them

    def broken(items):
        raise RuntimeError("decoder failed")

    queue, gate, _ = _blocked_queue()
    jobs = [queue.submit(lambda: "alone", batch=Batch("k", broken, i)) for i in range(3)]
    gate.set()
    for job in jobs:
        with pytest.raises(RuntimeError, match="decoder failed"):
            job.future.result(10)


def test_no_more_jobs_run_at_once_than_workers():
    queue = RecognizerQueue(workers=2)
    lock, running, peak = threading.Lock(), [0], [0]
    gate = threading.Event()

    def job():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        gate.wait(0.05)
        with lock:
            running[0] -= 1

    jobs = [queue.submit(job) for _ in range(8)]
    for j in jobs:
        j.future.result(10)
    assert peak[0] == 2


def test_a_reply_starts_at_its_first_audible_sample():
    rng = np.random.default_rng(1)
    voice = (rng.standard_normal(1600) * 3000).astype(np.int16)
    voice[0] = 3000
    prompt = np.concatenate([np.zeros(960, np.int16), rng.integers(-20, 20, 160).astype(np.int16), voice])
    trimmed = trim_lead_in(prompt)
    lead = LEAD_IN_MS * 16
    assert len(trimmed) == len(voice) + lead                 # 60 ms of silence became 10 ms
    np.testing.assert_array_equal(trimmed[lead:], voice)     # nothing audible is cut
    silent = np.zeros(800, np.int16)                         # a recorded pause is played as it is
    np.testing.assert_array_equal(trim_lead_in(silent), silent)
    assert len(trim_lead_in(np.zeros(0, np.int16))) == 0
