"""Asterisk AudioSocket: the codec (tables), the TCP server against the real client and raw
sockets on 127.0.0.1 (UUID, audio, DTMF, hang-up, error, truncated, oversized, unknown kinds,
busy, transfer, allow list), and the demo flow end to end with whisper and piper (slow)."""

import asyncio
import uuid

import numpy as np
import pytest

from ivr.clients import run_audiosocket_call
from ivr.clients.timeline import voiced_frames
from ivr.errors import UserError
from ivr.transports import audiosocket as wire
from ivr.transports.audiosocket import AudioSocketServer
from tests.test_twilio_ws import ScriptedCall, Slots, demo_handler, heard_after, tone, transcribe, warm_prompts

__all__ = ["warm_prompts"]    # a fixture, used below

CALL_UUID = uuid.UUID("40325ec2-5efd-4bd3-805f-53576e581d13")


async def serve(handler, slots, **kwargs) -> tuple[AudioSocketServer, str, int]:
    server = AudioSocketServer("127.0.0.1", 0, handler=handler, admission=slots, **kwargs)
    host, port = await server.start()
    return server, host, port


async def raw_exchange(host: str, port: int, data: bytes, timeout_s: float = 5.0) -> bytes:
    """Write `data`, half-close, and read everything the server sends until it closes."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        received = await asyncio.wait_for(reader.read(), timeout_s)
    except ConnectionResetError:        # the server closed without reading everything
        received = b""
    writer.close()
    return received


def slin_frames(n: int) -> bytes:
    return b"".join(wire.audio_message(np.zeros(160, np.int16)) for _ in range(n))


def kinds(data: bytes) -> list[int]:
    return [m.kind for m in wire.Decoder(wire.MAX_WIRE_PAYLOAD).feed(data)]


# ---- codec --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("encoded", "expected"), [
    (wire.hangup_message(), b"\x00\x00\x00"),
    (wire.uuid_message(CALL_UUID), b"\x01\x00\x10" + CALL_UUID.bytes),
    (wire.dtmf_message("7"), b"\x03\x00\x01\x37"),
    (wire.audio_message(np.array([1, -2], np.int16)), b"\x10\x00\x04\x01\x00\xfe\xff"),
    (wire.error_message(0x01), b"\xff\x00\x01\x01"),
    (wire.error_message(), b"\xff\x00\x00"),
])
def test_encode(encoded, expected):
    assert encoded == expected


def test_decoder_takes_any_split():
    stream = (wire.uuid_message(CALL_UUID) + wire.audio_message(np.arange(160, dtype=np.int16))
              + wire.dtmf_message("#") + wire.encode(0x42, b"xyz") + wire.hangup_message())
    expected = wire.Decoder().feed(stream)
    assert [m.kind for m in expected] == [0x01, 0x10, 0x03, 0x42, 0x00]
    for step in (1, 2, 3, 7, 100):
        decoder, got = wire.Decoder(), []
        for i in range(0, len(stream), step):
            got += decoder.feed(stream[i : i + step])
        assert got == expected and decoder.pending == 0


def test_decoder_truncated_and_oversized():
    decoder = wire.Decoder(max_payload=640)
    assert decoder.feed(wire.audio_message(np.zeros(160, np.int16))[:100]) == []
    assert decoder.pending == 100                       # cut mid-message
    decoder = wire.Decoder(max_payload=640)
    assert decoder.feed(wire.hangup_message() + b"\x10\x02\x81" + bytes(641)) == [wire.Message(0)]
    assert "641 bytes" in decoder.error and decoder.feed(wire.hangup_message()) == []


@pytest.mark.parametrize(("payload", "key"), [(b"5", "5"), (b"#", "#"), (b"a", "A"), (b"x", None), (b"12", None),
                                              (b"", None)])
def test_parse_dtmf(payload, key):
    assert wire.parse_dtmf(payload) == key


def test_parse_audio_and_errors():
    assert wire.parse_audio(b"\x01\x00\xfe\xff\x07").tolist() == [1, -2]     # stray odd byte dropped
    assert wire.describe_error(b"\x01") == "0x01 (caller hung up)"
    assert wire.describe_error(b"\x06") == "0x06 (frame forwarding error, memory error)"
    assert wire.describe_error(b"") == "no code"


# ---- server ---------------------------------------------------------------------------------------

def test_non_loopback_needs_an_allow_list():
    server = AudioSocketServer("0.0.0.0", 0, handler=None, admission=Slots())
    with pytest.raises(UserError, match="no authentication"):
        asyncio.run(server.start())
    with pytest.raises(UserError, match="allow"):
        AudioSocketServer("0.0.0.0", 0, handler=None, admission=Slots(), allow=["not-a-cidr"])


def test_peer_outside_the_allow_list_is_refused():
    slots = Slots()
    call = ScriptedCall(slots)

    async def main():
        server, host, port = await serve(call, slots, allow=["10.0.0.0/8"])
        try:
            return await raw_exchange(host, port, wire.uuid_message(CALL_UUID) + slin_frames(5)), server
        finally:
            await server.stop()

    received, server = asyncio.run(main())
    assert received == b"" and not call.infos and server.counters["refused_peer"] == 1


def test_call_audio_dtmf_and_hangup_by_the_flow():
    slots = Slots()
    call = ScriptedCall(slots, play=(10, 35), end_at=60)

    async def main():
        server, host, port = await serve(call, slots)
        try:
            return await run_audiosocket_call(host, port, np.zeros(3 * 16000, np.int16), call_uuid=CALL_UUID,
                                              dtmf=[(300, "4"), (400, "#")], tail_ms=0)
        finally:
            await server.stop()

    result = asyncio.run(main())
    info = call.infos[0]
    assert (info.transport_id, info.called, info.kind) == (str(CALL_UUID), str(CALL_UUID), "audiosocket")
    assert info.remote.startswith("127.0.0.1:") and slots.released == [info]
    assert call.keys == ["4", "#"] and call.frames == 60
    assert result.events[-1] == {"event": "hangup"} and result.close_reason == "hangup"
    assert 50 <= result.media_messages <= 60                    # one frame out per frame in, silence too
    voiced = voiced_frames(result.received_16k)
    # Sent at frame 10 (resampling delays it; a busy machine more): heard once, whole, within the 3 s call.
    assert abs(int(voiced.sum()) - 25) <= 2 and 10 <= int(np.argmax(voiced)) < 3000 // 20 - 25


def test_caller_hangup_message_ends_the_call():
    slots = Slots()
    call = ScriptedCall(slots)

    async def main():
        server, host, port = await serve(call, slots)
        try:
            received = await raw_exchange(host, port, wire.uuid_message(CALL_UUID) + slin_frames(30)
                                          + wire.hangup_message() + slin_frames(30))
            await asyncio.wait_for(call.done.wait(), 5)
            return received
        finally:
            await server.stop()

    received = asyncio.run(main())
    assert 24 <= call.frames <= 30                    # nothing after the hang-up message counts
    assert set(kinds(received)) <= {wire.KIND_AUDIO, wire.KIND_HANGUP}


@pytest.mark.parametrize(("tail", "counter"), [
    (wire.error_message(0x01), "peer_error"),                          # Asterisk: the caller hung up
    (wire.audio_message(np.zeros(160, np.int16))[:150], "truncated"),  # connection cut mid-frame
    (b"\x10\xff\xff" + bytes(100), "oversized"),                       # 64 KiB announced: over the limit
])
def test_call_ends_cleanly_on(tail, counter):
    slots = Slots()
    call = ScriptedCall(slots)

    async def main():
        server, host, port = await serve(call, slots)
        try:
            received = await raw_exchange(host, port, wire.uuid_message(CALL_UUID) + slin_frames(25) + tail)
            await asyncio.wait_for(call.done.wait(), 5)
            return received, server
        finally:
            await server.stop()

    received, server = asyncio.run(main())
    assert server.counters[counter] == 1 and slots.released and 19 <= call.frames <= 25
    if counter == "oversized":
        assert kinds(received)[-1] == wire.KIND_HANGUP


def test_unknown_kinds_and_bad_dtmf_are_ignored():
    slots = Slots()
    call = ScriptedCall(slots)
    junk = wire.encode(0x42, b"xyz") + wire.encode(0x02, b"\x01\x35\x00\x00\x00\x00") + wire.encode(0x03, b"Z")

    async def main():
        server, host, port = await serve(call, slots)
        try:
            await raw_exchange(host, port, wire.uuid_message(CALL_UUID) + slin_frames(20) + junk
                               + slin_frames(20) + wire.dtmf_message("9") + wire.hangup_message())
            await asyncio.wait_for(call.done.wait(), 5)
            return server
        finally:
            await server.stop()

    server = asyncio.run(main())
    assert server.counters["unknown_kind"] == 2 and server.counters["bad_dtmf"] == 1
    assert call.keys == ["9"] and 36 <= call.frames <= 40


@pytest.mark.parametrize("first", [slin_frames(1), wire.dtmf_message("1"), wire.encode(0x01, b"short")])
def test_anything_before_a_valid_uuid_is_an_error(first):
    slots = Slots()
    call = ScriptedCall(slots)

    async def main():
        server, host, port = await serve(call, slots)
        try:
            return await raw_exchange(host, port, first + wire.uuid_message(CALL_UUID)), server
        finally:
            await server.stop()

    received, server = asyncio.run(main())
    assert kinds(received) == [wire.KIND_ERROR] and not call.infos and not slots.admitted
    assert server.counters["protocol_error"] == 1


def test_busy_plays_the_busy_prompt_then_hangs_up():
    slots = Slots(limit=0)
    call = ScriptedCall(slots)

    async def main():
        server, host, port = await serve(call, slots, busy_audio=tone(20, hz=480))
        try:
            return await run_audiosocket_call(host, port, np.zeros(10 * 16000, np.int16), tail_ms=0)
        finally:
            await server.stop()

    result = asyncio.run(main())
    assert not call.infos and not slots.released
    assert abs(int(voiced_frames(result.received_16k).sum()) - 20) <= 2
    # The server hung up, before the caller's 10 s of audio ran out (audio time, not a speed limit).
    assert result.close_reason == "hangup" and result.sent_ms < 10_000


def test_transfer_tells_the_hook_then_hangs_up():
    slots = Slots()
    call = ScriptedCall(slots, play=(5, 15), end_at=25, end="transfer")
    hooked = []

    async def main():
        server, host, port = await serve(call, slots, on_transfer=lambda *args: hooked.append(args))
        try:
            return await run_audiosocket_call(host, port, np.zeros(2 * 16000, np.int16), call_uuid=CALL_UUID,
                                              tail_ms=0)
        finally:
            await server.stop()

    result = asyncio.run(main())
    (info, target, reason, context), = hooked
    assert (info.transport_id, target, reason, context) == (str(CALL_UUID), "sip:agents@127.0.0.1:5080",
                                                       "caller asked for an agent", {"intent": "agent"})
    assert result.close_reason == "hangup"


def test_stop_hangs_up_running_calls_after_the_deadline():
    slots = Slots()
    call = ScriptedCall(slots)

    async def main():
        server, host, port = await serve(call, slots)
        client = asyncio.create_task(run_audiosocket_call(host, port, np.zeros(10 * 16000, np.int16), tail_ms=0))
        await asyncio.sleep(0.5)
        await server.stop(deadline_s=0.2)
        return await asyncio.wait_for(client, 5)

    result = asyncio.run(main())
    assert call.done.is_set() and slots.active == 0 and result.sent_ms < 10_000   # ended before the caller did


# ---- end to end with the demo flow (whisper + piper) ------------------------------------------------------

@pytest.mark.slow
def test_demo_flow_over_audiosocket(demo_flow, whisper_asr, warm_prompts, line_audio):
    """Two concurrent calls: speech "track my order" over the menu (barge-in), and DTMF kind 0x03."""
    slots, traces = Slots(), {}
    speech = line_audio([("pause", 3000), ("say", "track my order"), ("pause", 300)])
    quiet = line_audio([("pause", 3500)])

    async def main():
        server, host, port = await serve(demo_handler(demo_flow, whisper_asr, warm_prompts, slots, traces), slots)
        try:
            return await asyncio.gather(run_audiosocket_call(host, port, speech, tail_ms=4500),
                                        run_audiosocket_call(host, port, quiet, dtmf=[(3000, "2")], tail_ms=3500))
        finally:
            await server.stop()

    spoken, keyed = asyncio.run(main())
    assert len(traces) == 2 and slots.active == 0
    by_kind = {t.turns[1].kind: t for t in traces.values()}
    assert by_kind["speech"].turns[1].match["choice"] == "track" and by_kind["speech"].turns[1].barge_in
    assert by_kind["dtmf"].turns[1].heard == "2" and by_kind["dtmf"].turns[1].match["choice"] == "hours"
    # One reply per turn, none before the endpointer's silence; how fast is for scripts/loadgen.py.
    assert len(spoken.reply_latencies_ms) == 1 and spoken.reply_latencies_ms[0] > 150
    assert len(keyed.reply_latencies_ms) == 1 and keyed.reply_latencies_ms[0] >= 0
    assert spoken.unanswered_turns == 0 and keyed.unanswered_turns == 0
    reply = transcribe(whisper_asr, heard_after(spoken, spoken.turn_ends_ms[0], 10_000))
    assert "your order shipped" in reply and "friday" in reply, reply
    hours = transcribe(whisper_asr, heard_after(keyed, 3000, 10_000))
    assert "open monday to friday" in hours, hours


@pytest.mark.slow
def test_peer_vanishing_ends_the_call_with_a_trace(demo_flow, whisper_asr, warm_prompts):
    slots, traces = Slots(), {}

    async def main():
        server, host, port = await serve(demo_handler(demo_flow, whisper_asr, warm_prompts, slots, traces), slots)
        try:
            _, writer = await asyncio.open_connection(host, port)
            writer.write(wire.uuid_message(CALL_UUID) + slin_frames(50))
            await writer.drain()
            writer.transport.abort()             # no hang-up message, no FIN handshake to wait for
            for _ in range(100):
                if traces:
                    break
                await asyncio.sleep(0.05)
        finally:
            await server.stop()

    asyncio.run(main())
    (trace,) = traces.values()
    assert trace.outcome.kind == "caller_hangup" and trace.outcome.why   # the service made the id, not the UUID
    assert trace.stats["frames"] <= 50 and slots.released
