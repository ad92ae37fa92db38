"""The `Transport` of one Twilio Media Streams call: audio conversion (8 kHz mu-law <-> 16 kHz
frames), marks, clear, and how the call ends. The listener that accepts the WebSocket is
`ws_server.py`; the codec is `twilio_ws.py`. See docs/transports.md.

Inbound frames are yielded as they arrive (Twilio sends media continuously, silence too); a
reader task queues them, so mark echoes are seen even while the call loop waits on ASR.
Outbound, all-zero frames are not sent: Twilio plays silence when its buffer runs dry, and
sending silence would only let its buffer (our latency) grow after a stall. While the call loop
catches up on caller frames queued during a decode it sends a frame per queued frame, faster than
real time; once Twilio holds 100 ms not yet played, those frames go out as one media message when
the loop yields (at most `MAX_COALESCED_BYTES`), not one message (one socket write, one wake-up of
the peer) each. The start of a prompt and every frame sent in step with the caller go out at once.
"""

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator

import numpy as np
from aiohttp import WSCloseCode, WSMsgType, web

from ivr.audio.frames import FRAME_SAMPLES, INTERNAL_RATE_HZ
from ivr.audio.g711 import mulaw_decode, mulaw_encode
from ivr.audio.resample import Resampler
from ivr.transports import twilio_ws as wire
from ivr.transports.base import CallInfo, EndCause, InboundItem, TransferHook, notify_transfer

log = logging.getLogger("ivr.transports.ws")     # shared with ws_server: one logger for the bridge

CHUNK_BYTES = 160                       # 20 ms of 8 kHz mu-law
MULAW_SILENCE = b"\xff"
MAX_BACKLOG_FRAMES = 3000               # 60 s of caller audio waiting for the call loop
MAX_DRAIN_S = 30.0
MAX_COALESCED_BYTES = 10 * CHUNK_BYTES  # 200 ms of audio in one media message while the loop catches up
MIN_AHEAD_TO_COALESCE_S = 0.1           # ... and only once Twilio holds this much audio not yet played
COMPLAINTS_LOGGED = 3                   # per kind and call; the rest are only counted



class TwilioStreamTransport:
    """The `Transport` of one call over an accepted Media Streams WebSocket."""

    def __init__(self, ws: web.WebSocketResponse, start: wire.Start, info: CallInfo, *,
                 on_transfer: TransferHook | None = None, idle_timeout_ms: int = 10_000,
                 drain_slack_ms: int = 1000) -> None:
        self.ws = ws
        self.stream_sid = start.stream_sid
        self.info = info
        self.log = logging.LoggerAdapter(log, {"call_id": info.call_id})
        self.on_transfer = on_transfer
        self.idle_timeout_s = idle_timeout_ms / 1000
        self.drain_slack_s = drain_slack_ms / 1000
        self.counters: Counter[str] = Counter()
        self.played_marks: list[str] = []      # echoed marks whose audio was played
        self.cleared_marks: list[str] = []     # echoed after a clear: their audio was dropped
        self._outstanding: set[str] = set()
        self._cleared: set[str] = set()
        self._marks_done = asyncio.Event()
        self._marks_done.set()
        self._items: asyncio.Queue[InboundItem | None] = asyncio.Queue()
        self._up = Resampler(wire.WIRE_RATE_HZ, INTERNAL_RATE_HZ, low_latency=True)
        self._down = Resampler(INTERNAL_RATE_HZ, wire.WIRE_RATE_HZ, low_latency=True)
        self._in_buf = np.zeros(0, np.int16)
        self._out_buf = bytearray()
        self._playing = False
        self._flushes: set[asyncio.Task] = set()
        self._flush_queued = False    # a send of the coalesced frames is scheduled for when the loop yields
        self._stretches = 0
        self._play_end = 0.0          # loop time by which Twilio should have played all we sent
        self._closed = False
        self.end_cause: EndCause | None = None   # why the peer's side ended, when it did

    # ---- inbound -----------------------------------------------------------------------

    async def inbound(self) -> AsyncIterator[InboundItem]:
        while (item := await self._items.get()) is not None:
            yield item

    async def pump(self) -> None:
        """Read the socket until stop, close or silence; feed `inbound()`; see mark echoes."""
        try:
            while True:
                try:
                    msg = await self.ws.receive(timeout=self.idle_timeout_s)
                except TimeoutError:
                    self.log.warning("no message for %.0f s: the peer is gone", self.idle_timeout_s)
                    self._ended_by("peer_lost", "idle", f"no message for {self.idle_timeout_s:.0f} s")
                    break
                if msg.type is WSMsgType.TEXT:
                    if self._handle(msg.data):
                        self._ended_by("caller_hangup", "stop", "stop message")
                        break
                elif msg.type is WSMsgType.BINARY:
                    self._complain("non_text", "binary WebSocket message")
                elif msg.type is WSMsgType.ERROR:
                    code = getattr(msg.data, "code", None)
                    if code == WSCloseCode.MESSAGE_TOO_BIG:
                        self.counters["oversized"] += 1
                        self.log.warning("message over the size limit: closed with 1009")
                        limit = getattr(self.ws, "_max_msg_size", "the")
                        self._ended_by("protocol_error", "oversized",
                                       f"WebSocket message over {limit} bytes (closed with 1009)")
                    elif code is not None:   # a WebSocket protocol violation (bad frame, bad UTF-8...)
                        self.log.warning("WebSocket error: %s", msg.data)
                        self._ended_by("protocol_error", "websocket_error", f"WebSocket error {code}: {msg.data}")
                    else:                    # the connection itself broke
                        self.log.warning("WebSocket error: %s", msg.data)
                        self._ended_by("caller_hangup", "connection_lost", f"connection lost: {msg.data}")
                    break
                else:    # close, closing, closed: the peer hung up (or we did)
                    self._ended_by("caller_hangup", "closed",
                                   f"WebSocket closed by the peer without a stop message (code {self.ws.close_code})")
                    break
        finally:
            self._closed = self._closed or self.ws.closed
            self._items.put_nowait(None)
            self._marks_done.set()

    def _handle(self, text: str) -> bool:
        """Handle one message; True when the stream stopped."""
        try:
            event = wire.decode(text)
        except wire.WireError as exc:
            self._complain(exc.kind, str(exc))
            return False
        if isinstance(event, wire.Media):
            if event.track not in ("inbound", "inbound_track"):
                self.counters["other_track"] += 1
                return False
            self._in_buf = np.concatenate([self._in_buf, self._up.process(mulaw_decode(event.payload))])
            while len(self._in_buf) >= FRAME_SAMPLES:
                self._queue(self._in_buf[:FRAME_SAMPLES].copy())
                self._in_buf = self._in_buf[FRAME_SAMPLES:]
        elif isinstance(event, wire.Dtmf):
            self._queue(event.digit)
        elif isinstance(event, wire.Mark):
            self._mark_returned(event.name)
        elif isinstance(event, wire.Stop):
            self.log.info("stream stopped by the caller side")
            return True
        elif isinstance(event, wire.Unknown):
            self._complain("unknown_event", f"unknown event {event.event!r}")
        else:
            self._complain("unexpected_event", f"unexpected {type(event).__name__.lower()} message")
        return False

    def _ended_by(self, kind: str, reason: str, why: str) -> None:
        if not self._closed and self.end_cause is None:   # not when we ended the call ourselves
            self.end_cause = EndCause(kind, reason, why)

    def _queue(self, item: InboundItem) -> None:
        if self._items.qsize() >= MAX_BACKLOG_FRAMES:   # the call loop is far behind: drop the oldest
            self._items.get_nowait()
            self._complain("backlog_dropped", "call loop too slow: dropping old caller audio")
        self._items.put_nowait(item)

    def _complain(self, kind: str, detail: str) -> None:
        self.counters[kind] += 1
        if self.counters[kind] <= COMPLAINTS_LOGGED:
            self.log.warning("ignored: %s (%s #%d)", detail, kind, self.counters[kind])

    def _mark_returned(self, name: str) -> None:
        if name in self._outstanding:
            self._outstanding.discard(name)
            self.played_marks.append(name)
        elif name in self._cleared:
            self._cleared.discard(name)
            self.cleared_marks.append(name)
        else:
            self._complain("unknown_mark", f"mark {name[:40]!r} we never sent")
        if not self._outstanding:
            self._marks_done.set()

    # ---- outbound ----------------------------------------------------------------------

    async def send(self, frame: np.ndarray) -> None:
        if self._closed:
            return
        if not frame.any():
            if self._playing:
                await self._end_stretch()
            return
        self._playing = True
        self._out_buf += mulaw_encode(self._down.process(frame))
        if len(self._out_buf) < CHUNK_BYTES:
            return
        if (self._items.qsize() and len(self._out_buf) < MAX_COALESCED_BYTES
                and self._play_end - asyncio.get_running_loop().time() >= MIN_AHEAD_TO_COALESCE_S):
            # The call loop is catching up on queued caller frames and sends the next one in this same turn of
            # the event loop, and Twilio has audio to play meanwhile: send them together once the loop yields.
            if not self._flush_queued:
                self._flush_queued = True
                asyncio.get_running_loop().call_soon(self._flush_soon)
            return
        await self._send_whole()

    async def _send_whole(self) -> None:
        """Send the whole 20 ms chunks waiting in the outbound buffer."""
        whole = len(self._out_buf) // CHUNK_BYTES * CHUNK_BYTES
        if whole:
            chunk = bytes(self._out_buf[:whole])
            del self._out_buf[:whole]
            await self._send_audio(chunk)

    def _flush_soon(self) -> None:
        self._flush_queued = False
        if self._closed or len(self._out_buf) < CHUNK_BYTES:
            return   # sent meanwhile (or cleared, or the stretch's end took it)
        task = asyncio.ensure_future(self._send_whole())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _send_audio(self, mulaw: bytes) -> None:
        now = asyncio.get_running_loop().time()
        self._play_end = max(self._play_end, now) + len(mulaw) / wire.WIRE_RATE_HZ
        await self._send(wire.media_message(self.stream_sid, mulaw))

    async def _end_stretch(self) -> None:
        """A prompt stretch ended: send its tail (whole 20 ms chunks) and a mark after it."""
        self._out_buf += mulaw_encode(self._down.flush())
        if len(self._out_buf) % CHUNK_BYTES:
            self._out_buf += MULAW_SILENCE * (CHUNK_BYTES - len(self._out_buf) % CHUNK_BYTES)
        if self._out_buf:
            await self._send_audio(bytes(self._out_buf))
        self._out_buf.clear()
        self._playing = False
        self._stretches += 1
        await self._mark(f"prompt-{self._stretches}")

    async def _mark(self, name: str) -> None:
        self._outstanding.add(name)
        self._marks_done.clear()
        await self._send(wire.mark_message(self.stream_sid, name))

    async def _send(self, text: str) -> None:
        if self._closed:
            return
        try:
            await self.ws.send_str(text)
        except (ConnectionError, RuntimeError) as exc:
            self.log.info("peer gone while sending")
            self._ended_by("caller_hangup", "connection_lost", f"connection lost while sending: {exc}")
            self._closed = True
            self._marks_done.set()

    async def clear(self) -> None:
        self._out_buf.clear()
        self._down.flush()
        self._playing = False
        self._cleared |= self._outstanding      # Twilio echoes these at once: not played
        self._outstanding.clear()
        self._marks_done.set()
        self._play_end = asyncio.get_running_loop().time()
        self.counters["clears"] += 1
        await self._send(wire.clear_message(self.stream_sid))

    async def _drain(self) -> None:
        """Wait until Twilio has played what we sent (marks echoed) or it should have."""
        if self._playing:
            await self._end_stretch()
        loop = asyncio.get_running_loop()
        wait_s = min(MAX_DRAIN_S, max(0.0, self._play_end - loop.time()) + self.drain_slack_s)
        try:
            await asyncio.wait_for(self._marks_done.wait(), wait_s)
        except TimeoutError:
            self.log.info("marks %s not echoed within %.1f s: closing anyway", sorted(self._outstanding), wait_s)

    async def hangup(self, reason: str) -> None:
        if self._closed:
            return
        await self._drain()
        await self.close(WSCloseCode.OK, wire.close_reason("hangup", reason=reason))

    async def transfer(self, target: str, reason: str, context: dict) -> None:
        """Twilio cannot transfer from inside a stream: mark, tell the hook, close with a reason.

        The hook runs before the close so that a `<Connect action>` request, which Twilio
        makes once the socket closes, finds the decision already recorded."""
        if self._closed:
            return
        if self._playing:
            await self._end_stretch()
        await self._mark("transfer")
        await self._drain()
        await notify_transfer(self.on_transfer, self.info, target, reason, context, self.log)
        await self.close(WSCloseCode.OK, wire.close_reason("transfer", target=target, reason=reason))

    async def close(self, code: int = WSCloseCode.OK, reason: str = "") -> None:
        self._closed = True
        if not self.ws.closed:
            await self.ws.close(code=code, message=reason.encode("utf-8"))
