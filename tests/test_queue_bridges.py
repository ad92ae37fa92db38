"""The queue over the Twilio Media Streams bridge (the real server and client on 127.0.0.1): the
caller waits hearing its position and hold music; when an agent becomes free the agent's address
is handed to the telephony side as the transfer target (the bridge's transfer hook)."""

import asyncio

import numpy as np
import pytest
import soundfile as sf

from ivr import callevents as ev
from ivr.agents import AgentDirectory, QueueManager
from ivr.agents.dispatch import Dispatcher
from ivr.call import Call
from ivr.clients import run_ws_call
from ivr.flow.interpreter import Interpreter
from ivr.flow.loader import load_flow
from ivr.transports.ws_server import WsBridgeServer
from tests.test_queue import FLOW, tone_frames
from tests.test_twilio_ws import TOKEN, Slots, transcribe

pytestmark = pytest.mark.slow


def test_queue_over_twilio_hands_the_agent_to_the_telephony_side(tmp_path, whisper_asr, prompt_cache, line_audio):
    tone = (np.sin(2 * np.pi * 440 * np.arange(16000) / 16000) * 6000).astype(np.int16)
    sf.write(str(tmp_path / "hold.wav"), tone, 16000, subtype="PCM_16")
    (tmp_path / "flow.yaml").write_text(FLOW)
    flow = load_flow(tmp_path / "flow.yaml")
    prompt_cache.warm(["Say agent, or press 0.", "Please hold.", "You are number 1 in the queue.",
                       "The wait is about 2 minutes.", "To be called back instead, press 1."])
    directory = AgentDirectory(wrap_up_s=0)
    directory.add("alice", "sip:alice@127.0.0.1:5070", status="available")
    directory.ring("alice", "earlier-call")
    directory.answered("alice", "earlier-call")        # busy when the caller arrives
    queues = QueueManager(directory, default_handle_s=120)
    events: list = []
    dispatcher = Dispatcher(directory, queues, events.append)
    slots, traces, handed = Slots(), [], []

    async def handler(transport, info):
        try:
            call = Call(info.call_id, Interpreter(flow), whisper_asr, prompt_cache, transport, caller=info.caller,
                        emit=events.append, queue_port=dispatcher.port(transport))
            traces.append(await call.run())
        finally:
            slots.release(info)

    async def on_transfer(info, target, reason, context):
        handed.append((target, reason, context))

    async def main():
        server = WsBridgeServer("127.0.0.1", 0, handler=handler, admission=slots, token=TOKEN,
                                on_transfer=on_transfer)
        host, port = await server.start()
        loop = asyncio.get_running_loop()
        loop.call_later(14, directory.call_ended, "alice", "earlier-call")   # alice is free after 14 s
        try:
            return await run_ws_call(f"ws://{host}:{port}/media", line_audio([("pause", 25000)]), token=TOKEN,
                                     custom={"from": "+15550001"}, dtmf=[(2500, "0")], tail_ms=2000)
        finally:
            await dispatcher.close()
            await server.stop()

    result = asyncio.run(asyncio.wait_for(main(), 90))
    assert handed and handed[0][0] == "sip:alice@127.0.0.1:5070"
    assert handed[0][2]["agent"] == "alice" and handed[0][2]["intent"] == "agent"
    assert traces[0].outcome.kind == "transfer" and traces[0].path == ["menu", "wait"]
    assert [e.agent for e in events if isinstance(e, ev.AgentAnswered)] == ["alice"]
    waited = [e.waited_ms for e in events if isinstance(e, ev.QueueLeft)]
    assert len(waited) == 1 and waited[0] >= 9000
    heard = transcribe(whisper_asr, result.received_16k[2500 * 16 : 11000 * 16])
    assert "number 1 in the queue" in heard or "number one in the queue" in heard, heard
    frames = result.received_16k[: len(result.received_16k) // 320 * 320].reshape(-1, 320)
    assert tone_frames(list(frames), 440) >= 50                     # the hold music reached the caller
