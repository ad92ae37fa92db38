"""An Asterisk AudioSocket caller, for tests and load generation.

Plays the part of Asterisk on one call: the UUID message, then one 20 ms slin frame per 20 ms
(an absolute real-time schedule), DTMF messages (kind 0x03) at their times, and a hang-up
message when the audio (plus a tail) is over. What the server sends back is placed on the
caller's clock (see timeline.py); the result has the same shape as the WebSocket client's.
"""

import asyncio
import contextlib
import inspect
import uuid
from collections.abc import Callable

import numpy as np

from ivr.audio.frames import FRAME_MS
from ivr.clients.timeline import CallClock, CallResult, Timeline, caller_frames_8k, finish_result
from ivr.transports import audiosocket as wire

AudioSocketCallResult = CallResult


async def run_audiosocket_call(host: str, port: int, caller_audio_16k: np.ndarray, *,
                               call_uuid: uuid.UUID | str | None = None, dtmf: list[tuple[int, str]] = (),
                               realtime: bool = True, tail_ms: int = 3000,
                               utterance_ends_ms: list[int] | None = None,
                               on_event: Callable[[dict], object] | None = None,
                               close_timeout_s: float = 3.0) -> CallResult:
    """One call against an AudioSocket server. `close_reason` is "hangup" when the server sent
    the hang-up message, "eof" when it just closed, "" when the caller ended the call."""
    if not isinstance(call_uuid, uuid.UUID):
        call_uuid = uuid.UUID(call_uuid) if call_uuid else uuid.uuid4()
    frames = caller_frames_8k(caller_audio_16k, tail_ms)
    presses = sorted((int(at), str(k)) for at, k in dtmf)
    keys = list(presses)
    reader, writer = await asyncio.open_connection(host, port)
    clock = CallClock(realtime)
    timeline = Timeline()
    result = CallResult(np.zeros(0, np.int16))
    done = asyncio.Event()
    receiver = asyncio.create_task(_receive(reader, clock, timeline, result, done, on_event))
    try:
        writer.write(wire.uuid_message(call_uuid))
        for i, frame in enumerate(frames):
            await clock.wait_for_frame(i)
            if done.is_set():
                break
            while keys and keys[0][0] <= i * FRAME_MS:
                writer.write(wire.dtmf_message(keys.pop(0)[1]))
            writer.write(wire.audio_message(frame))
            await writer.drain()
            clock.frames_sent = i + 1
        if not done.is_set():
            writer.write(wire.hangup_message())
            await writer.drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), close_timeout_s)
    except ConnectionError:
        pass
    finally:
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
    result.sent_ms = clock.frames_sent * FRAME_MS
    return finish_result(result, timeline, caller_audio_16k, clock.now_ms(), utterance_ends_ms, presses)


async def _receive(reader: asyncio.StreamReader, clock: CallClock, timeline: Timeline, result: CallResult,
                   done: asyncio.Event, on_event: Callable[[dict], object] | None) -> None:
    decoder = wire.Decoder(wire.MAX_WIRE_PAYLOAD)
    try:
        while True:
            try:
                data = await reader.read(65536)
            except ConnectionError:
                data = b""
            if not data:
                result.close_reason = result.close_reason or "eof"
                return
            for msg in decoder.feed(data):
                if msg.kind == wire.KIND_AUDIO:
                    result.media_messages += 1
                    timeline.add(wire.parse_audio(msg.payload), clock.now_ms())
                    continue
                event = _event(msg)
                result.events.append(event)
                if on_event is not None:
                    outcome = on_event(event)
                    if inspect.isawaitable(outcome):
                        await outcome
                if msg.kind in (wire.KIND_HANGUP, wire.KIND_ERROR):
                    result.close_reason = event["event"]
                    return
    finally:
        done.set()


def _event(msg: wire.Message) -> dict:
    if msg.kind == wire.KIND_HANGUP:
        return {"event": "hangup"}
    if msg.kind == wire.KIND_ERROR:
        return {"event": "error", "code": msg.payload.hex()}
    if msg.kind == wire.KIND_DTMF:
        return {"event": "dtmf", "digit": msg.payload.decode("ascii", "replace")}
    return {"event": "unknown", "kind": msg.kind, "length": len(msg.payload)}
