"""The `Transport` of one Asterisk AudioSocket call, after its UUID message.

We answer with 20 ms audio frames, one per inbound frame (silence included: Asterisk plays what
it gets, when it gets it), and 0x00 to hang up. The wire codec is `audiosocket_codec.py`; the
listener is `audiosocket.py`.
"""

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import AsyncIterator

import numpy as np

from ivr.audio.frames import FRAME_SAMPLES, INTERNAL_RATE_HZ
from ivr.audio.resample import Resampler, resample
from ivr.transports.audiosocket_codec import (
    KIND_AUDIO,
    KIND_DTMF,
    KIND_ERROR,
    KIND_HANGUP,
    WIRE_FRAME_SAMPLES,
    WIRE_RATE_HZ,
    Decoder,
    Message,
    audio_message,
    describe_error,
    hangup_message,
    parse_audio,
    parse_dtmf,
)
from ivr.transports.base import CallInfo, EndCause, InboundItem, TransferHook, notify_transfer

log = logging.getLogger("ivr.transports.audiosocket")     # shared with the listener

COMPLAINTS_LOGGED = 3



class AudioSocketTransport:
    """The `Transport` of one AudioSocket connection, after its UUID."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: CallInfo,
                 decoder: Decoder, pending: list[Message], *, on_transfer: TransferHook | None = None,
                 idle_timeout_ms: int = 10_000) -> None:
        self.reader, self.writer, self.info = reader, writer, info
        self.decoder = decoder
        self._pending = deque(pending)
        self.on_transfer = on_transfer
        self.idle_timeout_s = idle_timeout_ms / 1000
        self.log = logging.LoggerAdapter(log, {"call_id": info.call_id})
        self.counters: Counter[str] = Counter()
        self._up = Resampler(WIRE_RATE_HZ, INTERNAL_RATE_HZ, low_latency=True)
        self._down = Resampler(INTERNAL_RATE_HZ, WIRE_RATE_HZ, low_latency=True)
        self._in_buf = np.zeros(0, np.int16)
        self._out_buf = np.zeros(0, np.int16)
        self._closed = False
        self.end_cause: EndCause | None = None   # why the peer's side ended, when it did

    @property
    def closed(self) -> bool:
        return self._closed

    async def inbound(self) -> AsyncIterator[InboundItem]:
        while not self._closed:
            if not self._pending and not await self._read():
                return
            msg = self._pending.popleft()
            if msg.kind == KIND_AUDIO:
                self._in_buf = np.concatenate([self._in_buf, self._up.process(parse_audio(msg.payload))])
                while len(self._in_buf) >= FRAME_SAMPLES:
                    frame, self._in_buf = self._in_buf[:FRAME_SAMPLES].copy(), self._in_buf[FRAME_SAMPLES:]
                    yield frame
            elif msg.kind == KIND_DTMF:
                key = parse_dtmf(msg.payload)
                if key:
                    yield key
                else:
                    self._complain("bad_dtmf", f"DTMF payload {msg.payload[:4]!r}")
            elif msg.kind == KIND_HANGUP:
                self.log.info("caller side hung up")
                self._ended_by("caller_hangup", "hangup", "hangup message")
                return
            elif msg.kind == KIND_ERROR:
                self.counters["peer_error"] += 1
                self.log.warning("peer reported an error: %s; ending the call", describe_error(msg.payload))
                self._ended_by("protocol_error", "peer_error", f"AudioSocket peer error: {describe_error(msg.payload)}")
                return
            else:
                self._complain("unknown_kind", f"message kind 0x{msg.kind:02x}")

    async def _read(self) -> bool:
        """Read until at least one whole message is pending; False when the call is over."""
        while not self._pending:
            if self.decoder.error:
                self.counters["oversized"] += 1
                self.log.warning("%s: hanging up", self.decoder.error)
                self._ended_by("protocol_error", "oversized", f"AudioSocket: {self.decoder.error}")
                await self.hangup("oversized message")
                return False
            try:
                data = await asyncio.wait_for(self.reader.read(65536), self.idle_timeout_s)
            except TimeoutError:
                self.log.warning("no data for %.0f s: the peer is gone", self.idle_timeout_s)
                self._ended_by("peer_lost", "idle", f"no data for {self.idle_timeout_s:.0f} s")
                return False
            except ConnectionError as exc:
                self._ended_by("caller_hangup", "connection_lost", f"connection lost: {exc}")
                return False
            if not data:
                if self.decoder.pending:
                    self.counters["truncated"] += 1
                    self.log.info("connection closed mid-message (%d bytes): call over", self.decoder.pending)
                    self._ended_by("protocol_error", "truncated",
                                   f"connection closed in the middle of a message ({self.decoder.pending} bytes)")
                else:
                    self._ended_by("caller_hangup", "closed", "connection closed without a hangup message")
                return False
            self._pending.extend(self.decoder.feed(data))
        return True

    def _ended_by(self, kind: str, reason: str, why: str) -> None:
        if not self._closed and self.end_cause is None:   # not when we ended the call ourselves
            self.end_cause = EndCause(kind, reason, why)

    def _complain(self, kind: str, detail: str) -> None:
        self.counters[kind] += 1
        if self.counters[kind] <= COMPLAINTS_LOGGED:
            self.log.warning("ignored: %s (%s #%d)", detail, kind, self.counters[kind])

    async def send(self, frame: np.ndarray) -> None:
        if self._closed:
            return
        self._out_buf = np.concatenate([self._out_buf, self._down.process(frame)])
        whole = len(self._out_buf) // WIRE_FRAME_SAMPLES * WIRE_FRAME_SAMPLES
        if whole:
            chunks = self._out_buf[:whole].reshape(-1, WIRE_FRAME_SAMPLES)
            self._out_buf = self._out_buf[whole:]
            await self._write(b"".join(audio_message(c) for c in chunks))

    async def _write(self, data: bytes) -> None:
        if self._closed:
            return
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            self.log.info("peer gone while sending")
            self._ended_by("caller_hangup", "connection_lost", f"connection lost while sending: {exc}")
            self._closed = True

    async def play(self, samples_16k: np.ndarray) -> None:
        """Play audio paced in real time (Asterisk does not buffer), outside the call loop."""
        pcm = resample(samples_16k, INTERNAL_RATE_HZ, WIRE_RATE_HZ)
        pcm = np.pad(pcm, (0, -len(pcm) % WIRE_FRAME_SAMPLES))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i, chunk in enumerate(pcm.reshape(-1, WIRE_FRAME_SAMPLES)):
            await asyncio.sleep(max(0.0, t0 + i * 0.02 - loop.time()))
            await self._write(audio_message(chunk))
            if self._closed:
                return

    async def clear(self) -> None:
        """Nothing is queued downstream (frames go out paced, one per inbound frame)."""
        self.counters["clears"] += 1

    async def hangup(self, reason: str) -> None:
        if self._closed:
            return
        self.log.info("hanging up (%s)", reason)
        await self._write(hangup_message())
        await self.close()

    async def transfer(self, target: str, reason: str, context: dict) -> None:
        """AudioSocket cannot transfer: tell the hook (the dialplan asks the service), then hang up."""
        await notify_transfer(self.on_transfer, self.info, target, reason, context, self.log)
        await self.hangup(f"transfer to {target}")

    async def close(self) -> None:
        self._closed = True
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()

