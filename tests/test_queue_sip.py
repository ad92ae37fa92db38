"""A queue with real phones: baresip calls in, waits hearing its position and hold music; the first
agent's phone (baresip, never answers) rings out and the next agent's (baresip, auto-answer) takes
the call; caller and agent hear each other (each side's recording transcribed with whisper)."""

import asyncio
import shutil

import numpy as np
import pytest
import soundfile as sf

from ivr import callevents as ev
from ivr.agents import AgentDirectory, QueueManager
from ivr.agents.dispatch import Dispatcher
from ivr.call import Call, CallConfig
from ivr.flow.interpreter import Interpreter
from ivr.flow.loader import load_flow
from ivr.transports.sip.server import SipServer
from tests.sip_phones import heard, phone
from tests.test_queue import FLOW, tone_frames
from tests.test_sip_baresip import HOST, until

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip is not installed")]


class QueueService:
    """What `ivr serve` runs for each call, with the real dispatcher behind the queue port."""

    def __init__(self, flow, asr, prompts, dispatcher, events) -> None:
        self.flow, self.asr, self.prompts, self.dispatcher, self.events = flow, asr, prompts, dispatcher, events
        self.calls: list[Call] = []
        self.traces: list = []

    def admit(self, info) -> bool:
        return True

    def release(self, info) -> None:
        pass

    async def __call__(self, transport, info) -> None:
        call = Call(info.call_id, Interpreter(self.flow), self.asr, self.prompts, transport, CallConfig(live=True),
                    caller=info.caller, called=info.called, emit=self.events.append,
                    queue_port=self.dispatcher.port(transport))
        self.calls.append(call)
        self.traces.append(await call.run())


def test_queue_rings_the_next_agent_and_bridges(tmp_path, piper, whisper_asr, prompt_cache):
    tone = (np.sin(2 * np.pi * 440 * np.arange(16000) / 16000) * 6000).astype(np.int16)
    sf.write(str(tmp_path / "hold.wav"), tone, 16000, subtype="PCM_16")
    (tmp_path / "flow.yaml").write_text(FLOW)
    flow = load_flow(tmp_path / "flow.yaml")
    prompt_cache.warm(["Say agent, or press 0.", "Please hold.", "You are number 1 in the queue.",
                       "The wait is less than a minute.", "To be called back instead, press 1."])
    caller, _, caller_rec = phone(tmp_path, "carol", [("pause", 16000), ("say", "I have a question about my bill."),
                                                      ("pause", 2500), ("say", "A question about my bill."),
                                                      ("pause", 12000)], piper, f"<sip:carol@{HOST}>;regint=0")
    bob, bob_port, _ = phone(tmp_path, "bob", [("pause", 20000)], piper, f"<sip:bob@{HOST}>;regint=0")
    alice, alice_port, alice_rec = phone(tmp_path, "alice", [("pause", 1000), ("say", "Hello, this is Alice "
                                         "from support."), ("pause", 13000)], piper,
                                         f"<sip:alice@{HOST}>;answermode=auto;regint=0")
    directory = AgentDirectory(wrap_up_s=30, max_misses=2)
    directory.add("bob", f"sip:bob@{HOST}:{bob_port}", status="available")       # idle the longest: rung first
    directory.add("alice", f"sip:alice@{HOST}:{alice_port}", status="available")
    queues = QueueManager(directory, default_handle_s=60)
    events: list = []
    dispatcher = Dispatcher(directory, queues, events.append, ring_timeout_s=9)
    service = QueueService(flow, whisper_asr, prompt_cache, dispatcher, events)

    async def go():
        server = SipServer(HOST, 0, handler=service, admission=service)
        _, port = await server.start()
        try:
            for p in (bob, alice, caller):
                await p.start()
            caller.command("dial", f"sip:ivr@{HOST}:{port}")
            await caller.wait_event("CALL_ESTABLISHED", 5)
            await until(lambda: service.calls and service.calls[0].listening, 10, "the menu never listened")
            caller.command("sndcode", "0")
            await bob.wait_event("CALL_INCOMING", 10)            # bob's phone rings, nobody answers
            await alice.wait_event("CALL_ESTABLISHED", 15)       # then alice's, which answers
            await alice.wait_event("CALL_CLOSED", 30)            # alice's WAV ends: she hangs up
            await caller.wait_event("CALL_CLOSED", 10)           # and the caller gets the BYE
            await until(lambda: directory.get("alice").status == "wrap_up", 5, "alice never went to wrap-up")
            await until(lambda: service.traces, 5, "the call loop did not finish")
        finally:
            for p in (caller, alice, bob):
                await p.stop()
            await dispatcher.close()
            await server.stop(1)

    asyncio.run(asyncio.wait_for(go(), 90))
    trace = service.traces[0]
    assert trace.path == ["menu", "wait"] and trace.outcome.kind == "transfer"
    assert trace.outcome.target == f"sip:alice@{HOST}:{alice_port}"
    rings = [(e.agent, e.attempt) for e in events if isinstance(e, ev.AgentRinging)]
    assert rings == [("bob", 1), ("alice", 2)]
    failed = [(e.agent, e.why) for e in events if isinstance(e, ev.AgentFailed)]
    assert failed == [("bob", "no_answer")]
    assert [e.agent for e in events if isinstance(e, ev.AgentAnswered)] == ["alice"]
    pop = [e for e in events if isinstance(e, ev.AgentRinging)][1]
    assert pop.queue == "support" and pop.intent == "agent" and pop.caller == "carol"
    assert pop.context["call_id"] == trace.call_id and pop.path[-1] == "wait"
    assert [(e.reason, e.agent) for e in events if isinstance(e, ev.QueueLeft)] == [("answered", "alice")]
    assert directory.get("bob").status == "available" and directory.get("bob").misses == 1

    caller_words, caller_audio = heard(caller_rec, whisper_asr)
    assert "number 1 in the queue" in caller_words or "number one in the queue" in caller_words, caller_words
    assert "alice" in caller_words and "support" in caller_words, caller_words
    assert tone_frames(list(caller_audio[: len(caller_audio) // 320 * 320].reshape(-1, 320)), 440) >= 25
    agent_words, _ = heard(alice_rec, whisper_asr)
    assert "bill" in agent_words, agent_words


def test_caller_hanging_up_while_the_agent_rings_cancels_the_ring(tmp_path, piper, whisper_asr, prompt_cache):
    sf.write(str(tmp_path / "hold.wav"), np.zeros(8000, np.int16), 16000, subtype="PCM_16")
    (tmp_path / "flow.yaml").write_text(FLOW)
    flow = load_flow(tmp_path / "flow.yaml")
    caller, _, _ = phone(tmp_path, "carol", [("pause", 20000)], piper, f"<sip:carol@{HOST}>;regint=0")
    bob, bob_port, _ = phone(tmp_path, "bob", [("pause", 20000)], piper, f"<sip:bob@{HOST}>;regint=0")
    directory = AgentDirectory(wrap_up_s=30)
    directory.add("bob", f"sip:bob@{HOST}:{bob_port}", status="available")
    queues = QueueManager(directory)
    events: list = []
    dispatcher = Dispatcher(directory, queues, events.append, ring_timeout_s=20)
    service = QueueService(flow, whisper_asr, prompt_cache, dispatcher, events)

    async def go():
        server = SipServer(HOST, 0, handler=service, admission=service)
        _, port = await server.start()
        try:
            for p in (bob, caller):
                await p.start()
            caller.command("dial", f"sip:ivr@{HOST}:{port}")
            await caller.wait_event("CALL_ESTABLISHED", 5)
            await until(lambda: service.calls and service.calls[0].listening, 10, "the menu never listened")
            caller.command("sndcode", "0")
            await bob.wait_event("CALL_INCOMING", 10)
            caller.command("hangup")
            await bob.wait_event("CALL_CLOSED", 10)            # the ring was cancelled
            await until(lambda: service.traces, 5, "the call loop did not finish")
            await until(lambda: any(isinstance(e, ev.AgentFailed) for e in events), 5, "no AgentFailed")
        finally:
            for p in (caller, bob):
                await p.stop()
            await dispatcher.close()
            await server.stop(1)

    asyncio.run(asyncio.wait_for(go(), 60))
    assert [(e.agent, e.why) for e in events if isinstance(e, ev.AgentFailed)] == [("bob", "cancelled")]
    assert [e.reason for e in events if isinstance(e, ev.QueueLeft)] == ["caller_hangup"]
    assert (directory.get("bob").status, directory.get("bob").misses) == ("available", 0)   # not a miss
    assert queues.snapshot()["queues"] == {}
    assert service.traces[0].outcome.kind == "caller_hangup"


def test_callback_by_key_from_a_sip_phone(tmp_path, piper, whisper_asr, prompt_cache):
    from ivr.store import open_store

    sf.write(str(tmp_path / "hold.wav"), np.zeros(8000, np.int16), 16000, subtype="PCM_16")
    (tmp_path / "flow.yaml").write_text(FLOW)
    flow = load_flow(tmp_path / "flow.yaml")
    caller, _, records = phone(tmp_path, "carol", [("pause", 30000)], piper, f"<sip:15550001234@{HOST}>;regint=0")
    store = open_store(f"sqlite:///{tmp_path / 'r.sqlite3'}", spool_dir=tmp_path / "spool").start()
    directory = AgentDirectory()
    directory.add("bob", f"sip:bob@{HOST}:9", status="available")
    directory.ring("bob", "other")
    directory.answered("bob", "other")                 # on another call: the caller waits
    queues = QueueManager(directory, store=store)
    events: list = []
    dispatcher = Dispatcher(directory, queues, events.append)
    service = QueueService(flow, whisper_asr, prompt_cache, dispatcher, events)

    async def go():
        server = SipServer(HOST, 0, handler=service, admission=service)
        _, port = await server.start()
        try:
            await caller.start()
            caller.command("dial", f"sip:ivr@{HOST}:{port}")
            await caller.wait_event("CALL_ESTABLISHED", 5)
            await until(lambda: service.calls and service.calls[0].listening, 10, "the menu never listened")
            call = service.calls[0]
            caller.command("sndcode", "0")
            await until(lambda: call.queued is not None and call.queued.joined, 10, "never queued")
            await asyncio.sleep(1.0)
            caller.command("sndcode", "1")                       # the callback key
            await until(lambda: call.listening and call.listen and call.listen.step == "wait", 15,
                        "the number was never read back")
            caller.command("sndcode", "1")                       # confirmed
            await caller.wait_event("CALL_CLOSED", 15)
            await until(lambda: service.traces, 5, "the call loop did not finish")
        finally:
            await caller.stop()
            await dispatcher.close()
            await server.stop(1)

    asyncio.run(asyncio.wait_for(go(), 60))
    store.flush()
    rows = store.backend.fetch("SELECT number, queue, status FROM callbacks")
    store.close()
    assert rows == [{"number": "15550001234", "queue": "support", "status": "open"}]
    assert service.traces[0].path == ["menu", "wait", "bye"]
    assert [e.number for e in events if isinstance(e, ev.CallbackRequested)] == ["15550001234"]
    said = [s for t in service.traces[0].turns for s in t.said]
    assert said[-1] == "Goodbye." and said.count("You are number 1 in the queue.") <= 1   # none after the key
    words, _ = heard(records, whisper_asr)
    assert "call you back" in words and "confirm" in words, words
