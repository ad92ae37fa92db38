"""The queue step end to end in the call loop (replayed caller audio, real prompts and recognizer),
with the real dispatcher, directory, queue manager and records database: an empty queue, a
callback asked for by key and stored, a call handed to an agent over a bridge-style transport,
and a failed transfer that reaches the flow's `on_fail`."""

import asyncio
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ivr import callevents as ev
from ivr.agents import AgentDirectory, QueueManager
from ivr.agents.dispatch import Dispatcher
from ivr.call import Call
from ivr.flow.interpreter import Interpreter
from ivr.flow.loader import load_flow
from ivr.transports.base import TransferFailed
from ivr.transports.wavfile import WavReplayTransport

pytestmark = pytest.mark.slow

FLOW = """\
name: queue_test
language: en-US
start: menu
steps:
  menu:
    ask: Say agent, or press 0.
    choices:
      agent: {say: "[an] agent", dtmf: "0", goto: wait}
  wait:
    say: Please hold.
    queue: {name: support, hold_music: hold.wav, announce_every: 3s, max_wait: 20s, callback_key: "1",
            on_empty: closed, on_callback: bye}
  closed:
    say: Nobody is here.
    hangup: true
  bye:
    say: Goodbye.
    hangup: true
"""


class Replay(WavReplayTransport):
    """Replayed caller audio that lets the event loop run between frames (the dispatcher's tasks)."""

    async def inbound(self):
        async for frame in super().inbound():
            await asyncio.sleep(0)
            yield frame


@pytest.fixture
def queue_flow(tmp_path):
    tone = (np.sin(2 * np.pi * 440 * np.arange(16000) / 16000) * 6000).astype(np.int16)
    sf.write(str(tmp_path / "hold.wav"), tone, 16000, subtype="PCM_16")
    (tmp_path / "flow.yaml").write_text(FLOW)
    return load_flow(tmp_path / "flow.yaml")


def run_call(flow, asr, prompts, transport, dispatcher, events, caller="+15550001234"):
    async def go():
        call = Call("q1", Interpreter(flow), asr, prompts, transport, caller=caller, emit=events.append,
                    queue_port=dispatcher.port(transport) if dispatcher else None)
        transport.keep_going = lambda: call.busy or call.queued is not None
        trace = await call.run()
        await asyncio.sleep(0.05)
        if dispatcher:
            await dispatcher.close()
        return trace

    return asyncio.run(asyncio.wait_for(go(), 120))


def services(**agents):
    directory = AgentDirectory(wrap_up_s=5)
    for name, status in agents.items():
        directory.add(name, f"sip:{name}@127.0.0.1:5999", status=status)
    queues = QueueManager(directory, default_handle_s=120)
    return directory, queues


def tone_frames(frames, hz: float) -> int:
    """How many 20 ms frames are (almost only) a tone at `hz`."""
    t = np.arange(320) / 16000
    ref = np.exp(-2j * np.pi * hz * t)
    count = 0
    for frame in frames:
        x = frame.astype(np.float64)
        energy = float(np.dot(x, x))
        if energy > 1e6 and abs(np.dot(x, ref)) ** 2 * 2 / len(x) > 0.8 * energy:
            count += 1
    return count


def kinds(events, cls):
    return [e for e in events if isinstance(e, cls)]


def test_empty_queue_reaches_on_empty(queue_flow, whisper_asr, prompt_cache, line_audio):
    directory, queues = services()                       # nobody logged in
    events: list = []
    dispatcher = Dispatcher(directory, queues, events.append)
    transport = Replay(line_audio([("pause", 2500), ("keys", "0"), ("pause", 3000)]))
    trace = run_call(queue_flow, whisper_asr, prompt_cache, transport, dispatcher, events)
    assert trace.path == ["menu", "wait", "closed"]
    said = [s for t in trace.turns for s in t.said]
    assert "Nobody is here." in said
    left = kinds(events, ev.QueueLeft)
    assert [(e.queue, e.reason) for e in left] == [("support", "empty")]
    assert trace.outcome.kind == "hangup"


def test_callback_by_key_is_confirmed_and_stored(tmp_path, queue_flow, whisper_asr, prompt_cache, line_audio):
    from ivr.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'r.sqlite3'}", spool_dir=tmp_path / "spool").start()
    directory, queues = services(alice="available")
    directory.ring("alice", "other-call")
    directory.answered("alice", "other-call")           # busy: the caller waits
    queues.store = queues.callbacks.store = store
    events: list = []
    dispatcher = Dispatcher(directory, queues, events.append)
    transport = Replay(line_audio([("pause", 2500), ("keys", "0"), ("pause", 12000), ("keys", "1"),
                                   ("pause", 7000), ("keys", "1"), ("pause", 3000)]))
    trace = run_call(queue_flow, whisper_asr, prompt_cache, transport, dispatcher, events)
    store.flush()
    rows = store.backend.fetch("SELECT * FROM callbacks")
    store.close()
    assert trace.path == ["menu", "wait", "bye"]
    said = " ".join(s for t in trace.turns for s in t.said)
    assert "You are number 1 in the queue." in said
    assert "We will call you back at 1 5 5 5 0 0 0 1 2 3 4." in said
    requested = kinds(events, ev.CallbackRequested)
    assert len(requested) == 1 and requested[0].number == "+15550001234"
    assert [(r["callback_id"], r["number"], r["queue"], r["status"]) for r in rows] == [
        (requested[0].callback_id, "+15550001234", "support", "open")]
    assert [e.reason for e in kinds(events, ev.QueueLeft)] == ["callback"]
    assert queues.snapshot()["queues"] == {}                    # the place was given up
    assert [t.status for t in queues.callbacks.tasks()] == ["open"]
    # the hold music played between the announcements (a 440 Hz tone in what the caller heard)
    assert tone_frames(transport.outbound_frames, 440) >= 100     # 2 s or more of it


def test_agent_takes_the_call_over_a_bridge(queue_flow, whisper_asr, prompt_cache, line_audio):
    """A transport that cannot ring a phone (Twilio, AudioSocket): the chosen agent's address goes
    to the telephony side as the transfer target, with the screen pop published at the ring."""
    directory, queues = services(bob="available", alice="available")   # bob idle the longest
    events: list = []
    dispatcher = Dispatcher(directory, queues, events.append)
    transport = Replay(line_audio([("pause", 2500), ("say", "agent"), ("pause", 6000)]))
    trace = run_call(queue_flow, whisper_asr, prompt_cache, transport, dispatcher, events)
    assert ("transfer", "sip:bob@127.0.0.1:5999") in [(k, d) for _, k, d in transport.events]
    assert trace.outcome.kind == "transfer" and trace.outcome.target == "sip:bob@127.0.0.1:5999"
    ringing = kinds(events, ev.AgentRinging)[0]
    assert ringing.agent == "bob" and ringing.queue == "support" and ringing.caller == "+15550001234"
    assert ringing.intent == "agent" and ringing.path[-2:] == ("menu", "wait")
    assert any("agent" in t["heard"].lower() for t in ringing.transcript)
    assert [e.agent for e in kinds(events, ev.AgentAnswered)] == ["bob"]
    assert [(e.reason, e.agent) for e in kinds(events, ev.QueueLeft)] == [("answered", "bob")]
    assert directory.get("bob").status == "on_call" and directory.get("alice").status == "available"


def test_failed_transfer_reaches_on_fail(tmp_path, whisper_asr, prompt_cache, line_audio):
    (tmp_path / "f.yaml").write_text(textwrap.dedent("""\
        name: onfail
        language: en-US
        start: to_agent
        steps:
          to_agent:
            say: Connecting you.
            transfer: sip:agents@127.0.0.1:5999
            on_fail: sorry
          sorry:
            say: Please leave a message after the tone.
            hangup: true
        """))

    class Unreachable(Replay):
        async def transfer(self, target, reason, context):
            raise TransferFailed("agent line answered 486 Busy Here")

    events: list = []
    transport = Unreachable(line_audio([("pause", 9000)]))
    trace = run_call(load_flow(Path(tmp_path / "f.yaml")), whisper_asr, prompt_cache, transport, None, events)
    assert trace.path == ["to_agent", "sorry"]
    said = [s for t in trace.turns for s in t.said]
    assert said[-1] == "Please leave a message after the tone."
    assert kinds(events, ev.TransferFailed)[0].why.endswith("486 Busy Here")
    assert [k for _, k, _ in transport.events][-1] == "hangup"
