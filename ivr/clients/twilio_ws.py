"""A Twilio Media Streams caller, for tests and load generation.

Plays the part of Twilio on one call: connected, start, then one 20 ms media message per
20 ms of caller audio (an absolute real-time schedule), DTMF events at their times, and stop
when the audio (plus a tail) is over. Like Twilio it keeps a playback buffer: it echoes each
mark once the audio before it has played, and on clear drops the buffer and echoes pending
marks at once. The result is what the caller heard, on the send clock, and reply latencies.
"""

import asyncio
import inspect
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import numpy as np

from ivr.audio.frames import FRAME_MS
from ivr.audio.g711 import mulaw_decode, mulaw_encode
from ivr.clients.timeline import CallClock, CallResult, Timeline, caller_frames_8k, finish_result
from ivr.transports import twilio_ws as wire

WsCallResult = CallResult


@dataclass(slots=True)
class _State:
    stream_sid: str
    clock: CallClock
    timeline: Timeline = field(default_factory=Timeline)
    result: CallResult = field(default_factory=lambda: CallResult(np.zeros(0, np.int16)))
    pending_marks: list[tuple[float, str]] = field(default_factory=list)   # (due ms, name)
    seq: int = 2
    closed: bool = False

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


async def run_ws_call(url: str, caller_audio_16k: np.ndarray, *, token: str | None = None,
                      token_in: str = "header", custom: dict | None = None,
                      dtmf: list[tuple[int, str]] = (), realtime: bool = True, tail_ms: int = 3000,
                      utterance_ends_ms: list[int] | None = None,
                      on_event: Callable[[dict], object] | None = None, call_sid: str | None = None,
                      close_timeout_s: float = 3.0) -> CallResult:
    """One call against a Media Streams server at `url` (ws://host:port/path).

    `token_in` is "header" (Authorization: Bearer) or "param" (customParameters.token).
    `dtmf` is [(at_ms, key)]. `utterance_ends_ms` says where the caller's utterances end
    (default: found by an energy detector). A refused upgrade raises
    aiohttp.WSServerHandshakeError (its .status is the HTTP status, e.g. 401).
    Latencies are wall-clock and only meaningful with realtime=True.
    """
    if token_in not in ("header", "param"):
        raise ValueError(f"token_in must be 'header' or 'param', not {token_in!r}")
    stream_sid = "MZ" + uuid.uuid4().hex
    call_sid = call_sid or "CA" + uuid.uuid4().hex
    params = {str(k): str(v) for k, v in (custom or {}).items()}
    headers = {}
    if token is not None:
        if token_in == "header":
            headers["Authorization"] = f"Bearer {token}"
        else:
            params["token"] = token
    frames = caller_frames_8k(caller_audio_16k, tail_ms)
    presses = sorted((int(at), str(k)) for at, k in dtmf)
    keys = list(presses)
    async with aiohttp.ClientSession() as session, session.ws_connect(url, headers=headers) as ws:
        await ws.send_str(wire.connected_message())
        await ws.send_str(wire.start_message(stream_sid, call_sid, params))
        state = _State(stream_sid, CallClock(realtime))
        receiver = asyncio.create_task(_receive(ws, state, on_event))
        try:
            await _send(ws, state, frames, keys)
            if not state.closed:
                await ws.send_str(wire.stop_message(stream_sid, call_sid, state.next_seq()))
                await ws.close()
            await asyncio.wait_for(asyncio.shield(receiver), close_timeout_s)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)
    state.result.sent_ms = state.clock.frames_sent * FRAME_MS
    return finish_result(state.result, state.timeline, caller_audio_16k, state.clock.now_ms(),
                         utterance_ends_ms, presses)


async def _send(ws: aiohttp.ClientWebSocketResponse, state: _State, frames: np.ndarray,
                keys: list[tuple[int, str]]) -> None:
    clock = state.clock
    for i, frame in enumerate(frames):
        await clock.wait_for_frame(i)
        if state.closed:
            return
        now_ms = i * FRAME_MS
        while keys and keys[0][0] <= now_ms:
            await ws.send_str(wire.dtmf_message(state.stream_sid, keys.pop(0)[1], state.next_seq()))
        await _echo_due_marks(ws, state)
        await ws.send_str(wire.inbound_media_message(state.stream_sid, mulaw_encode(frame), state.next_seq(),
                                                     i + 1, now_ms))
        clock.frames_sent = i + 1


async def _echo_due_marks(ws: aiohttp.ClientWebSocketResponse, state: _State) -> None:
    now = state.clock.now_ms()
    due = [name for at, name in state.pending_marks if at <= now]
    state.pending_marks = [(at, name) for at, name in state.pending_marks if at > now]
    for name in due:
        await ws.send_str(wire.mark_echo_message(state.stream_sid, name, state.next_seq()))


async def _receive(ws: aiohttp.ClientWebSocketResponse, state: _State,
                   on_event: Callable[[dict], object] | None) -> None:
    result = state.result
    try:
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.CLOSE:
                result.close_code, result.close_reason = msg.data, msg.extra or ""
                break
            if msg.type is aiohttp.WSMsgType.CLOSING:     # we are closing: the server did not end it
                break
            if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                result.close_code = ws.close_code or 1006
                break
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            try:
                event = wire.decode(msg.data)
            except wire.WireError as exc:
                result.events.append({"event": "garbled", "error": str(exc)})
                continue
            now_ms = state.clock.now_ms()
            if isinstance(event, wire.Media):
                result.media_messages += 1
                state.timeline.add(mulaw_decode(event.payload), now_ms)
                continue
            if isinstance(event, wire.Mark):
                result.marks.append(event.name)
                state.pending_marks.append((max(now_ms, state.timeline.queued_until_ms), event.name))
            elif isinstance(event, wire.Clear):
                result.clears += 1
                state.timeline.clear(now_ms)
                state.pending_marks = [(now_ms, name) for _, name in state.pending_marks]
            data = json.loads(msg.data)
            result.events.append(data)
            if on_event is not None:
                outcome = on_event(data)
                if inspect.isawaitable(outcome):
                    await outcome
    finally:
        state.closed = True
