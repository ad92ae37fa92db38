"""Twilio Media Streams bridge: the codec (tables), the aiohttp server against the real client on
127.0.0.1 (auth, busy, marks, clear, transfer, garbled and oversized input), and the demo flow
end to end with whisper and piper (slow)."""

import asyncio
import json
import logging

import aiohttp
import numpy as np
import pytest

from ivr.clients import run_ws_call
from ivr.clients.timeline import voiced_frames
from ivr.errors import UserError
from ivr.transports import twilio_ws as wire
from ivr.transports.ws_server import WsBridgeServer

TOKEN = "s3cret-token-for-tests"


# ---- helpers shared with test_audiosocket.py --------------------------------------------------

class Slots:
    """A real Admission: at most `limit` calls at once."""

    def __init__(self, limit: int = 4) -> None:
        self.limit, self.active = limit, 0
        self.admitted, self.released = [], []

    def admit(self, info) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        self.admitted.append(info)
        return True

    def release(self, info) -> None:
        self.active -= 1
        self.released.append(info)


def tone(n_frames: int, hz: float = 440.0, level: int = 8000) -> np.ndarray:
    t = np.arange(n_frames * 320) / 16000
    return (np.sin(2 * np.pi * hz * t) * level).astype(np.int16)


class ScriptedCall:
    """A stand-in call loop: one frame out per frame in; a tone over frames [start, stop);
    keys recorded (and a clear on a key if asked); ends itself after `end_at` frames; `stall`:
    (frame, seconds) waits that long before that frame, as the call loop waits for a decode."""

    def __init__(self, slots: Slots, play=(10, 35), end_at: int | None = None, end: str = "hangup",
                 clear_on_key: bool = False, target: str = "sip:agents@127.0.0.1:5080",
                 stall: tuple[int, float] | None = None) -> None:
        self.slots, self.play, self.end_at, self.end, self.stall = slots, play, end_at, end, stall
        self.clear_on_key, self.target = clear_on_key, target
        self.frames, self.keys, self.transports, self.infos = 0, [], [], []
        self.done = asyncio.Event()
        self.cleared = False
        self.audio = tone(play[1] - play[0])

    async def __call__(self, transport, info) -> None:
        self.transports.append(transport)
        self.infos.append(info)
        try:
            async for item in transport.inbound():
                if isinstance(item, str):
                    self.keys.append(item)
                    if self.clear_on_key:
                        self.cleared = True
                        await transport.clear()
                    continue
                if self.stall is not None and self.frames == self.stall[0]:
                    await asyncio.sleep(self.stall[1])
                n = self.frames - self.play[0]
                playing = 0 <= n < len(self.audio) // 320 and not self.cleared
                await transport.send(self.audio[n * 320 : (n + 1) * 320] if playing else np.zeros(320, np.int16))
                self.frames += 1
                if self.end_at is not None and self.frames >= self.end_at:
                    if self.end == "transfer":
                        await transport.transfer(self.target, "caller asked for an agent", {"intent": "agent"})
                    else:
                        await transport.hangup("script done")
                    break
        finally:
            self.done.set()
            self.slots.release(info)


def demo_handler(flow, asr, prompts, slots: Slots, traces: dict):
    """The real call loop on the demo flow, as `ivr serve` runs it."""
    from ivr.call import Call
    from ivr.flow.interpreter import Interpreter

    async def handler(transport, info) -> None:
        try:
            call = Call(info.call_id, Interpreter(flow), asr, prompts, transport,
                        caller=info.caller, called=info.called)
            traces[info.call_id] = await call.run()
        finally:
            slots.release(info)
    return handler


@pytest.fixture(scope="module")
def warm_prompts(demo_flow, prompt_cache):
    """The prompt cache with the demo flow's prompts synthesised, as `ivr serve` starts."""
    prompt_cache.warm(demo_flow.prompts())
    return prompt_cache


def transcribe(asr, audio: np.ndarray) -> str:
    from ivr.flow.patterns import normalize

    session = asr.session()
    session.feed(audio)
    return normalize(session.finish().text)


def heard_after(result, t_ms: int, duration_ms: int) -> np.ndarray:
    # Whisper tiny stumbles on windows cut mid-word: callers pass the rest of the call.
    start = t_ms * 16
    return result.received_16k[start : start + duration_ms * 16]


async def serve(handler, slots, **kwargs) -> tuple[WsBridgeServer, str]:
    server = WsBridgeServer("127.0.0.1", 0, handler=handler, admission=slots, **kwargs)
    host, port = await server.start()
    return server, f"ws://{host}:{port}/media"


def silent_caller(call, slots, seconds: int, *, dtmf=(), **server_kwargs):
    """A caller who says nothing for `seconds` (keys at `dtmf`), against a bridge serving `call`."""
    async def main():
        server, url = await serve(call, slots, **server_kwargs)
        try:
            return await run_ws_call(url, np.zeros(seconds * 16000, np.int16), dtmf=list(dtmf), tail_ms=0)
        finally:
            await server.stop()

    return asyncio.run(main())


# ---- codec --------------------------------------------------------------------------------------

START = {"event": "start", "sequenceNumber": "1", "streamSid": "MZ1",
         "start": {"accountSid": "AC1", "streamSid": "MZ1", "callSid": "CA1", "tracks": ["inbound"],
                   "customParameters": {"from": "+15550001", "to": "+15550002"},
                   "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}


@pytest.mark.parametrize(("message", "expected"), [
    ({"event": "connected", "protocol": "Call", "version": "1.0.0"}, wire.Connected("Call", "1.0.0")),
    (START, wire.Start("MZ1", "CA1", "AC1", ("inbound",), {"from": "+15550001", "to": "+15550002"})),
    ({"event": "media", "sequenceNumber": "3", "streamSid": "MZ1",
      "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": "/wAA"}},
     wire.Media(b"\xff\x00\x00", "inbound", 1, 5)),
    ({"event": "dtmf", "streamSid": "MZ1", "sequenceNumber": "5", "dtmf": {"track": "inbound_track", "digit": "1"}},
     wire.Dtmf("1")),
    ({"event": "dtmf", "streamSid": "MZ1", "dtmf": {"digit": "#"}}, wire.Dtmf("#")),
    ({"event": "mark", "streamSid": "MZ1", "sequenceNumber": "4", "mark": {"name": "prompt-1"}}, wire.Mark("prompt-1")),
    ({"event": "stop", "sequenceNumber": "5", "stop": {"accountSid": "AC1", "callSid": "CA1"}, "streamSid": "MZ1"},
     wire.Stop("CA1")),
    ({"event": "clear", "streamSid": "MZ1"}, wire.Clear()),
    ({"event": "transcription", "streamSid": "MZ1"}, wire.Unknown("transcription")),
])
def test_decode(message, expected):
    assert wire.decode(json.dumps(message)) == expected


@pytest.mark.parametrize(("text", "kind"), [
    ("hello", "bad_json"),
    ("[1, 2]", "bad_json"),
    ('{"streamSid": "MZ1"}', "bad_field"),
    ('{"event": "media", "media": {"payload": "***not base64***"}}', "bad_payload"),
    ('{"event": "media", "media": {}}', "bad_field"),
    ('{"event": "dtmf", "dtmf": {"digit": "12"}}', "bad_field"),
    ('{"event": "mark", "mark": "x"}', "bad_field"),
    ('{"event": "start", "start": {"callSid": "CA1"}}', "bad_field"),
])
def test_decode_rejects(text, kind):
    with pytest.raises(wire.WireError) as err:
        wire.decode(text)
    assert err.value.kind == kind


def test_outbound_messages_round_trip():
    payload = bytes(range(256))
    assert wire.decode(wire.media_message("MZ1", payload)) == wire.Media(payload)
    assert json.loads(wire.mark_message("MZ1", "m")) == {"event": "mark", "streamSid": "MZ1", "mark": {"name": "m"}}
    assert json.loads(wire.clear_message("MZ1")) == {"event": "clear", "streamSid": "MZ1"}
    start = wire.decode(wire.start_message("MZ9", "CA9", {"token": "t"}))
    assert (start.stream_sid, start.call_sid, start.custom_parameters) == ("MZ9", "CA9", {"token": "t"})


@pytest.mark.parametrize("target", ["sip:agents@127.0.0.1:5080", "sip:" + "a" * 300 + "@127.0.0.1",
                                    "sip:客服@127.0.0.1" + "é" * 80])
def test_close_reason_fits_and_stays_json(target):
    text = wire.close_reason("transfer", target=target, reason="caller asked for an agent " * 5)
    assert len(text.encode("utf-8")) <= wire.CLOSE_REASON_MAX_BYTES
    data = json.loads(text)
    assert data["action"] == "transfer"
    assert target.startswith(data["target"]) and len(data["target"]) >= min(len(target), 40)


# ---- server: binding and auth -----------------------------------------------------------------------

def test_non_loopback_without_token_refuses_to_start():
    server = WsBridgeServer("0.0.0.0", 0, handler=None, admission=Slots())
    with pytest.raises(UserError, match="without a token"):
        asyncio.run(server.start())


def test_loopback_without_token_warns(caplog):
    async def main():
        server, _ = await serve(ScriptedCall(Slots()), Slots())
        await server.stop()

    with caplog.at_level(logging.WARNING, logger="ivr.transports.ws"):
        asyncio.run(main())
    assert "unauthenticated-on-loopback" in caplog.text


@pytest.mark.parametrize(("token", "token_in", "outcome"), [
    (TOKEN, "header", "accepted"),
    (TOKEN, "param", "accepted"),
    ("wrong", "header", 401),
    ("wrong", "param", 1008),
    (None, "header", 1008),
])
def test_auth(token, token_in, outcome, caplog):
    slots = Slots()
    call = ScriptedCall(slots, end_at=20)

    async def main():
        server, url = await serve(call, slots, token=TOKEN)
        try:
            return await run_ws_call(url, np.zeros(16000, np.int16), token=token, token_in=token_in,
                                     custom={"from": "+15550001", "to": "+15550002"}, tail_ms=0)
        finally:
            await server.stop()

    with caplog.at_level(logging.DEBUG):
        if outcome == 401:
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                asyncio.run(main())
            assert err.value.status == 401
        else:
            result = asyncio.run(main())
    assert TOKEN not in caplog.text and "Bearer" not in caplog.text         # secrets never logged
    if outcome == "accepted":
        assert result.close_code == 1000
        info = call.infos[0]
        assert (info.kind, info.caller, info.called) == ("ws", "+15550001", "+15550002")
        assert info.params == {"from": "+15550001", "to": "+15550002"}     # the token is not passed on
        assert info.transport_id.startswith("CA") and len(info.call_id) == 32 and slots.released == [info]
    elif outcome == 1008:
        assert result.close_code == 1008 and not call.infos and not slots.admitted


# ---- server: audio out, marks, clear, hang-up, transfer, busy -----------------------------------------

def test_prompt_stretch_is_sent_with_a_mark_and_silence_is_not_sent():
    slots = Slots()
    call = ScriptedCall(slots, play=(10, 35), end_at=60)

    result = silent_caller(call, slots, 3)
    voiced = voiced_frames(result.received_16k)
    assert abs(int(voiced.sum()) - 25) <= 2                      # the 25-frame tone, once
    # Sent at frame 10; 8 kHz <-> 16 kHz resampling (soxr HQ, ~66 ms each way) delays it, a busy machine
    # more: never earlier, and whole within the 3 s call.
    assert 10 <= int(np.argmax(voiced)) < 3000 // 20 - 25
    assert result.marks == ["prompt-1"]
    assert call.transports[0].played_marks == ["prompt-1"]       # echoed after playing, before hang-up
    assert result.close_code == 1000
    assert json.loads(result.close_reason) == {"action": "hangup", "reason": "script done"}
    assert call.frames == 60 and result.media_messages <= 30     # 60 frames out, only the tone sent


def test_frames_sent_while_catching_up_go_out_together_and_whole():
    # The loop stalls 1 s (a decode) before frame 5: 50 caller frames queue, and the 70-frame tone from frame
    # 10 is sent while it catches up. The start goes out frame by frame, then (Twilio 100 ms ahead) the rest of
    # the catch-up in messages of up to 200 ms; every frame is heard once, without a gap.
    slots = Slots()
    call = ScriptedCall(slots, play=(10, 80), end_at=100, stall=(5, 1.0))

    result = silent_caller(call, slots, 3)
    voiced = np.nonzero(voiced_frames(result.received_16k))[0]
    assert abs(len(voiced) - 70) <= 2 and voiced[-1] - voiced[0] == len(voiced) - 1   # whole, no gap
    assert result.marks == ["prompt-1"] and result.close_code == 1000
    assert result.media_messages <= 50                                # not one message per frame (70)


def test_barge_in_sends_clear_and_the_rest_of_the_prompt_is_never_heard():
    slots = Slots()
    call = ScriptedCall(slots, play=(5, 205), clear_on_key=True)

    result = silent_caller(call, slots, 2, dtmf=[(1000, "5")])
    assert call.keys == ["5"] and result.clears == 1
    assert call.transports[0].counters["clears"] == 1
    voiced = voiced_frames(result.received_16k)
    last_voiced_ms = int(np.nonzero(voiced)[0][-1]) * 20
    # Heard up to the key press; the rest of the 4 s prompt (to 4.1 s) never, though the call ran 2 s.
    assert 900 <= last_voiced_ms < 2000


def test_transfer_marks_calls_the_hook_then_closes_with_a_json_reason():
    slots = Slots()
    target = "sip:agents@127.0.0.1:5080;" + "x" * 200
    call = ScriptedCall(slots, play=(5, 30), end_at=40, end="transfer", target=target)
    hooked = []

    async def on_transfer(info, target_, reason, context):
        hooked.append((info.call_id, target_, reason, context, call.transports[0].ws.closed))

    result = silent_caller(call, slots, 3, on_transfer=on_transfer)
    assert result.marks == ["prompt-1", "transfer"]
    assert hooked == [(call.infos[0].call_id, target, "caller asked for an agent", {"intent": "agent"}, False)]
    assert result.close_code == 1000 and len(result.close_reason.encode()) <= 123
    reason = json.loads(result.close_reason)
    assert reason["action"] == "transfer" and target.startswith(reason["target"])
    assert call.transports[0].played_marks == ["prompt-1", "transfer"]


def test_busy_plays_the_busy_prompt_then_closes():
    slots = Slots(limit=0)
    call = ScriptedCall(slots)

    result = silent_caller(call, slots, 2, busy_audio=tone(20, hz=480))
    assert not call.infos and not slots.released                  # never admitted, never released
    assert abs(int(voiced_frames(result.received_16k).sum()) - 20) <= 2
    assert result.marks == ["busy"] and result.close_code == 1000
    assert json.loads(result.close_reason) == {"action": "hangup", "reason": "busy"}


def test_stop_closes_running_calls_after_the_deadline():
    slots = Slots()
    call = ScriptedCall(slots)

    async def main():
        server, url = await serve(call, slots)
        client = asyncio.create_task(run_ws_call(url, np.zeros(10 * 16000, np.int16), tail_ms=0))
        await asyncio.sleep(0.5)
        await server.stop(deadline_s=0.2)
        return await asyncio.wait_for(client, 5)

    result = asyncio.run(main())
    assert result.close_code == 1001 and call.done.is_set() and slots.active == 0
    assert result.sent_ms < 10_000                                 # ended before the caller's audio did


# ---- server: garbage in ---------------------------------------------------------------------------------

async def _raw_call(url: str, messages: list, finish: str = "stop", max_message_bytes: int | None = None):
    """Send raw messages (str or bytes) after connected/start; then stop, abort or wait for close."""
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str(wire.connected_message())
        await ws.send_str(wire.start_message("MZraw", "CAraw", {}))
        for m in messages:
            await (ws.send_bytes(m) if isinstance(m, bytes) else ws.send_str(m))
        if finish == "stop":
            await ws.send_str(wire.stop_message("MZraw", "CAraw", 99))
        elif finish == "abort":
            ws._response.connection.transport.abort()
            return None
        msg = await ws.receive(timeout=5)
        return msg.type, msg.data


def _media(n_frames: int) -> list[str]:
    silence = bytes([0xFF]) * 160
    return [wire.inbound_media_message("MZraw", silence, i, i, i * 20) for i in range(n_frames)]


def test_garbled_messages_are_counted_and_ignored():
    slots = Slots()
    call = ScriptedCall(slots)
    garbage = ["not json at all", '{"event": "media", "media": {"payload": "%%%"}}', '{"event": "party"}',
               b"\x00\x01binary", '{"event": "dtmf", "dtmf": {"digit": "X"}}',
               wire.mark_echo_message("MZraw", "never-sent", 1)]

    async def main():
        server, url = await serve(call, slots)
        try:
            await _raw_call(url, _media(25) + garbage + _media(25) + [wire.dtmf_message("MZraw", "7", 3)])
            await asyncio.wait_for(call.done.wait(), 5)
            return server
        finally:
            await server.stop()

    server = asyncio.run(main())
    # The call went on through the garbage (the resampler still holds the last ~66 ms at stop).
    assert 45 <= call.frames <= 50 and call.keys == ["7"]
    for kind in ("bad_json", "bad_payload", "unknown_event", "non_text", "bad_field", "unknown_mark"):
        assert server.counters[kind] == 1, kind


def test_oversized_message_closes_with_1009():
    slots = Slots()
    call = ScriptedCall(slots)

    async def main():
        server, url = await serve(call, slots, max_message_bytes=4096)
        try:
            kind, code = await _raw_call(url, [*_media(20), "x" * 10_000], finish="wait")
            await asyncio.wait_for(call.done.wait(), 5)
            return kind, code, server
        finally:
            await server.stop()

    kind, code, server = asyncio.run(main())
    assert kind is aiohttp.WSMsgType.CLOSE and code == 1009
    assert server.counters["oversized"] == 1 and 14 <= call.frames <= 20


def test_no_start_message_is_a_policy_violation():
    async def main():
        server, url = await serve(ScriptedCall(Slots()), Slots(), start_timeout_ms=300)
        try:
            async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
                await ws.send_str(wire.connected_message())
                msg = await ws.receive(timeout=5)
                return msg.type, msg.data
        finally:
            await server.stop()

    assert asyncio.run(main()) == (aiohttp.WSMsgType.CLOSE, 1008)


# ---- end to end with the demo flow (whisper + piper) ------------------------------------------------------

@pytest.mark.slow
def test_demo_flow_over_websocket(demo_flow, whisper_asr, warm_prompts, line_audio):
    """Two concurrent calls: speech "track my order" over the menu (barge-in), and key 2."""
    slots, traces = Slots(), {}
    speech = line_audio([("pause", 3000), ("say", "track my order"), ("pause", 300)])
    quiet = line_audio([("pause", 3500)])

    async def main():
        server, url = await serve(demo_handler(demo_flow, whisper_asr, warm_prompts, slots, traces), slots,
                                  token=TOKEN)
        try:
            return await asyncio.gather(
                run_ws_call(url, speech, token=TOKEN, custom={"from": "+15550001"}, tail_ms=4500),
                run_ws_call(url, quiet, token=TOKEN, token_in="param", dtmf=[(3000, "2")], tail_ms=3500))
        finally:
            await server.stop()

    spoken, keyed = asyncio.run(main())
    assert len(traces) == 2 and slots.active == 0
    by_caller = {t.turns[1].kind: t for t in traces.values()}
    speech_turn = by_caller["speech"].turns[1]
    assert speech_turn.match["choice"] == "track" and speech_turn.barge_in
    assert by_caller["dtmf"].turns[1].heard == "2" and by_caller["dtmf"].turns[1].match["choice"] == "hours"

    assert spoken.clears >= 1 and keyed.clears >= 1                 # barge-in cleared the menu prompt
    # One reply per turn, none before the endpointer's silence; how fast is for scripts/loadgen.py.
    assert len(spoken.reply_latencies_ms) == 1 and spoken.reply_latencies_ms[0] > 150
    assert len(keyed.reply_latencies_ms) == 1 and keyed.reply_latencies_ms[0] >= 0
    assert spoken.unanswered_turns == 0 and keyed.unanswered_turns == 0
    # What the caller heard after their turn (whisper on the received line audio).
    reply = transcribe(whisper_asr, heard_after(spoken, spoken.turn_ends_ms[0], 10_000))
    assert "your order shipped" in reply and "friday" in reply, reply
    hours = transcribe(whisper_asr, heard_after(keyed, 3000, 10_000))
    assert "open monday to friday" in hours, hours
    greeting = transcribe(whisper_asr, heard_after(keyed, 0, 1800))
    assert "calling" in greeting, greeting
    assert spoken.media_messages < spoken.sent_ms // 20 - 40        # the silent stretch was not sent


@pytest.mark.slow
def test_peer_vanishing_ends_the_call_with_a_trace(demo_flow, whisper_asr, prompt_cache):
    slots, traces = Slots(), {}

    async def main():
        server, url = await serve(demo_handler(demo_flow, whisper_asr, prompt_cache, slots, traces), slots)
        try:
            await _raw_call(url, _media(50), finish="abort")
            for _ in range(100):
                if traces:
                    break
                await asyncio.sleep(0.05)
        finally:
            await server.stop()

    asyncio.run(main())
    (trace,) = traces.values()
    assert trace.outcome.kind == "caller_hangup" and trace.outcome.why   # the service made the id, not "CAraw"
    assert trace.stats["frames"] <= 50 and slots.released
