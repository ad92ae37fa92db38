"""RTP media for one call: G.711 audio and RFC 4733 DTMF over UDP, in the call loop's format.

Pure part, in `rtp_packet.py` (re-exported here): `Codec`, `PCMU`/`PCMA`, `parse_rtp`/`build_rtp`.
I/O part: `RtpSession` owns the socket and two 20 ms clocks.
- Playout (started by the first `inbound()`): every tick pops the jitter buffer, decodes and
  upsamples to one 16 kHz frame; missing audio becomes silence, so frames keep coming at wall
  time whether or not the peer sends. DTMF keys go out as soon as they arrive.
- Sender (started by `open()`): every tick sends one packet to the remote: the next queued
  frame, or silence when none is queued; DTMF event packets take the audio's place.
Inbound ends on `close()` or when the peer has sent nothing for `inactivity_timeout_ms`.
No RTCP is sent or read.
"""

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from ivr.audio.dtmf import generate_dtmf
from ivr.audio.frames import FRAME_MS, FRAME_SAMPLES, INTERNAL_RATE_HZ, silence, split_frames
from ivr.audio.g711 import alaw_decode, alaw_encode, mulaw_decode, mulaw_encode
from ivr.audio.resample import FrameResampler
from ivr.transports.sip.jitter import JitterBuffer
from ivr.transports.sip.rfc4733 import DtmfReceiver, build_events, parse_event
from ivr.transports.sip.rtp_packet import PCMA, PCMU, Codec, RtpPacket, build_rtp, parse_rtp

__all__ = ["PCMA", "PCMU", "Codec", "FrameResampler", "RtpPacket", "RtpSession", "build_rtp", "parse_rtp"]

log = logging.getLogger(__name__)

RTCP_PTS = range(72, 77)             # RTCP sent on the RTP port (rtcp-mux): SR, RR, SDES, BYE, APP
MAX_OUT_QUEUE_FRAMES = 1500          # 30 s of outbound audio; beyond that frames are dropped
MAX_IN_QUEUE_FRAMES = 3000           # 60 s of inbound backlog if nobody reads inbound()
MAX_BEHIND_S = 0.2                   # sender this late skips ticks instead of bursting

_DECODE = {PCMU.payload_type: mulaw_decode, PCMA.payload_type: alaw_decode}
_ENCODE = {PCMU.name: mulaw_encode, PCMA.name: alaw_encode}


@dataclass(eq=False)
class _Event:
    payloads: list[bytes]
    done: asyncio.Future[None]
    ts: int | None = None
    sent: int = 0


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, session: "RtpSession") -> None:
        self.session = session

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.session._received(data, addr)

    def error_received(self, exc: Exception) -> None:   # e.g. ICMP port unreachable: peer not up yet
        self.session.log.debug("RTP socket error: %s", exc)


class RtpSession:
    """One call's media. `open()` binds and starts sending (silence until audio is queued) once
    `set_remote()` names the peer; only packets from that exact host:port are accepted.
    `inbound()` yields a 16 kHz frame every 20 ms plus DTMF keys (single reader). Audio packets
    are decoded by their own payload type (0 or 8), whatever `codec` says; `codec` is what we
    send. `inactivity_timeout_ms` <= 0 disables the timeout.
    """

    def __init__(self, local_host: str = "127.0.0.1", *, codec: Codec = PCMU, dtmf_pt: int | None = 101,
                 jitter_ms: int = 60, inactivity_timeout_ms: int = 30_000, call_id: str = "") -> None:
        self.local_host = local_host
        self.local_port = 0
        self.call_id = call_id
        self.log = logging.LoggerAdapter(log, {"call_id": call_id or "-"})
        self.jitter_ms = jitter_ms
        self.inactivity_timeout_ms = inactivity_timeout_ms
        self.codec = codec
        self.dtmf_pt = dtmf_pt
        self.set_codec(codec, dtmf_pt)
        self._jitter = JitterBuffer(jitter_ms, codec.rate_hz, FRAME_MS)
        self._line_samples = codec.rate_hz * FRAME_MS // 1000
        self._up = FrameResampler(codec.rate_hz, INTERNAL_RATE_HZ, FRAME_SAMPLES)
        self._down = FrameResampler(INTERNAL_RATE_HZ, codec.rate_hz, self._line_samples)
        self._dtmf_rx = DtmfReceiver()
        self._transport: asyncio.DatagramTransport | None = None
        self._remote: tuple[str, int] | None = None
        self._in: asyncio.Queue[np.ndarray | str | None] = asyncio.Queue()
        self._out: deque[np.ndarray] = deque()
        self._events: deque[_Event] = deque()
        self._tasks: list[asyncio.Task] = []
        self._playing = self._closed = self._ended = self._held = False
        self._last_rx = 0.0
        self._ssrc = secrets.randbits(32)
        self._seq = secrets.randbits(16)
        self._ts = secrets.randbits(32)
        self._start_spurt = True        # marker on the next packet that carries sound
        self._prev_voiced = False
        self._warned: set[str] = set()
        self._counts = dict.fromkeys(("packets_in", "packets_out", "wrong_source", "bad_packets", "other_pt",
                                      "dtmf_in", "dtmf_out", "dropped_silence", "dropped_overflow", "dropped_inbound",
                                      "cleared", "send_errors"), 0)

    # ---- control -----------------------------------------------------------------------

    async def open(self, port: int = 0) -> int:
        if self._transport is not None or self._closed:
            raise RuntimeError("RtpSession.open() called twice, or after close()")
        loop = asyncio.get_running_loop()
        tries = 8 if port == 0 else 1                 # RTP likes even ports; take one if it comes quickly
        for attempt in range(tries):
            transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self),
                                                               local_addr=(self.local_host, port))
            self.local_port = transport.get_extra_info("sockname")[1]
            if self.local_port % 2 == 0 or attempt == tries - 1:
                break
            transport.close()
        self._transport = transport
        self._tasks.append(asyncio.create_task(self._send_loop(), name=f"rtp-send-{self.call_id}"))
        self.log.debug("RTP on %s:%d", self.local_host, self.local_port)
        return self.local_port

    def set_remote(self, host: str, port: int) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"bad RTP port {port}")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            family = socket.AF_INET6 if ":" in self.local_host else socket.AF_INET
            ip = ipaddress.ip_address(socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)[0][4][0])
        self._remote = (str(ip), port)

    def set_codec(self, codec: Codec, dtmf_pt: int | None) -> None:
        if codec.name not in _ENCODE or codec.rate_hz != self.codec.rate_hz:
            raise ValueError(f"unsupported codec {codec} (PCMU or PCMA at 8000 Hz)")
        if dtmf_pt is not None and not 0 <= dtmf_pt < 128:
            raise ValueError(f"bad telephone-event payload type {dtmf_pt}")
        self.codec, self.dtmf_pt = codec, dtmf_pt
        self._encode = _ENCODE[codec.name]

    def hold(self, held: bool) -> None:
        """While held nothing is sent (time still passes: queued audio drains, timestamps advance)
        and silence from the peer does not count towards the inactivity timeout."""
        if self._held and not held:
            self._start_spurt = True
            self._last_rx = asyncio.get_running_loop().time()
        self._held = held

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._transport is not None:
            self._transport.close()
        for event in self._events:
            if not event.done.done():
                event.done.set_result(None)
        self._end_inbound("closed")

    @property
    def stats(self) -> dict:
        j = self._jitter.stats
        return {**self._counts, "lost": j.lost, "late": j.late, "reordered": j.reordered,
                "duplicates": j.duplicates, "resyncs": j.resyncs, "skipped_frames": j.skipped_frames,
                "queued_frames": len(self._out)}

    def _warn_once(self, what: str, msg: str, *args: object) -> None:
        if what not in self._warned:
            self._warned.add(what)
            self.log.warning(msg, *args)

    # ---- inbound -----------------------------------------------------------------------

    async def inbound(self) -> AsyncIterator[np.ndarray | str]:
        if not self._playing and not self._ended:
            self._playing = True
            self._last_rx = asyncio.get_running_loop().time()
            self._tasks.append(asyncio.create_task(self._play_loop(), name=f"rtp-play-{self.call_id}"))
        while True:
            item = await self._in.get()
            if item is None:
                self._in.put_nowait(None)    # any other reader ends too
                return
            yield item

    def _end_inbound(self, why: str) -> None:
        if self._ended:
            return
        self._ended = True
        self.end_why = why
        while not self._in.empty():          # hang-up beats any backlog
            self._in.get_nowait()
        self._in.put_nowait(None)
        self.log.info("RTP inbound ended (%s): %s", why, self.stats)

    def _received(self, data: bytes, addr: tuple) -> None:
        if self._closed:
            return
        if self._remote is None or (addr[0], addr[1]) != self._remote:
            self._counts["wrong_source"] += 1
            self._warn_once("source", "RTP from %s:%s dropped: expected %s", addr[0], addr[1], self._remote)
            return
        self._last_rx = asyncio.get_running_loop().time()
        pkt = parse_rtp(data)
        if pkt is None or pkt.payload_type in RTCP_PTS:
            self._counts["bad_packets"] += pkt is None
            return
        self._counts["packets_in"] += 1
        samples = None
        if pkt.payload_type == self.dtmf_pt:
            event = parse_event(pkt.payload)
            key = event and self._dtmf_rx.feed(pkt.timestamp, event, pkt.ssrc)
            if key:
                self._counts["dtmf_in"] += 1
                self._in.put_nowait(key)
        elif pkt.payload_type in _DECODE:
            samples = _DECODE[pkt.payload_type](pkt.payload)
        else:                                # comfort noise, unnegotiated types: silence
            self._counts["other_pt"] += 1
        if self._playing:
            self._jitter.put(pkt.seq, pkt.timestamp, samples, ssrc=pkt.ssrc, marker=pkt.marker)

    async def _play_loop(self) -> None:
        loop = asyncio.get_running_loop()
        tick_s = FRAME_MS / 1000
        timeout_s = self.inactivity_timeout_ms / 1000
        gap = np.zeros(self._line_samples, dtype=np.int16)
        next_t = loop.time()
        while not self._ended:
            now = loop.time()
            if next_t > now:
                await asyncio.sleep(next_t - now)
            elif now - next_t > 2.0:         # the process stalled: don't flood the call with a burst
                self._warn_once("stall", "RTP playout stalled for %.1f s", now - next_t)
                next_t = now
            try:
                pcm = self._jitter.pop()
                frame = self._up.process(gap if pcm is None else pcm)
            except Exception:                # a bug here must end the call, not leave it hanging
                self.log.exception("RTP playout failed")
                self._end_inbound("playout error")
                return
            if self._in.qsize() < MAX_IN_QUEUE_FRAMES:
                self._in.put_nowait(frame)
            else:
                self._counts["dropped_inbound"] += 1
            next_t += tick_s
            if timeout_s > 0 and not self._held and loop.time() - self._last_rx > timeout_s:
                self._end_inbound(f"no RTP for {self.inactivity_timeout_ms} ms")

    # ---- outbound ----------------------------------------------------------------------

    async def send(self, frame: np.ndarray) -> None:
        if not isinstance(frame, np.ndarray) or frame.dtype != np.int16 or frame.shape != (FRAME_SAMPLES,):
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ValueError(f"send needs one {FRAME_SAMPLES}-sample int16 frame, got {got}")
        if self._closed:
            return
        if len(self._out) > 2 and not frame.any():    # the loop is catching up: don't let silence add latency
            self._counts["dropped_silence"] += 1
        elif len(self._out) >= MAX_OUT_QUEUE_FRAMES:
            self._counts["dropped_overflow"] += 1
            self._warn_once("overflow", "RTP outbound queue full (%d frames): dropping audio", len(self._out))
        else:
            self._out.append(frame)

    async def clear(self) -> None:
        self._counts["cleared"] += len(self._out)
        self._out.clear()

    async def send_dtmf(self, key: str, duration_ms: int = 100) -> None:
        """Send one key as RFC 4733 events (in-band tones if the peer has no telephone-event);
        returns when it has been sent."""
        if self._transport is None:
            raise RuntimeError("RtpSession.send_dtmf() before open()")
        if self._closed:
            return
        if self.dtmf_pt is None:
            for frame in split_frames(generate_dtmf(key, INTERNAL_RATE_HZ, tone_ms=duration_ms)):
                self._out.append(frame)
            self._out.extend([silence()] * 2)
            return
        payloads = build_events(key, duration_ms, rate_hz=self.codec.rate_hz, ptime_ms=FRAME_MS)
        event = _Event(payloads, asyncio.get_running_loop().create_future())
        self._events.append(event)
        await event.done

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        tick_s = FRAME_MS / 1000
        next_t = loop.time()
        while True:
            now = loop.time()
            if next_t > now:
                await asyncio.sleep(next_t - now)
            elif now - next_t > MAX_BEHIND_S:    # skip the missed ticks; the timestamps show the gap
                missed = int((now - next_t) / tick_s)
                self._ts = (self._ts + missed * self._line_samples) % (1 << 32)
                next_t += missed * tick_s
            try:
                self._send_tick()
            except Exception:
                self._counts["send_errors"] += 1
                if self._counts["send_errors"] == 1:
                    self.log.exception("RTP send failed")
            next_t += tick_s

    def _send_tick(self) -> None:
        ts = self._ts
        self._ts = (ts + self._line_samples) % (1 << 32)
        if self._events:
            self._send_event(ts)
            return
        frame = self._out.popleft() if self._out else None
        voiced = frame is not None and bool(frame.any())
        pcm = self._down.process(frame if frame is not None else silence())
        if self._remote is None or self._held or self._transport is None:
            return
        marker = self._start_spurt or (voiced and not self._prev_voiced)
        self._transmit(self.codec.payload_type, ts, self._encode(pcm), marker)
        self._start_spurt, self._prev_voiced = False, voiced

    def _send_event(self, ts: int) -> None:
        event = self._events[0]
        if event.ts is None:
            event.ts = ts                     # every packet of the event carries its start time
        if self._remote is not None and not self._held and self._transport is not None and self.dtmf_pt is not None:
            self._transmit(self.dtmf_pt, event.ts, event.payloads[event.sent], event.sent == 0)
        event.sent += 1
        if event.sent == len(event.payloads):
            self._events.popleft()
            self._counts["dtmf_out"] += 1
            self._start_spurt = True
            if not event.done.done():
                event.done.set_result(None)

    def _transmit(self, pt: int, ts: int, payload: bytes, marker: bool) -> None:
        assert self._transport is not None and self._remote is not None
        self._transport.sendto(build_rtp(pt, self._seq, ts, self._ssrc, payload, marker=marker), self._remote)
        self._seq = (self._seq + 1) % (1 << 16)
        self._counts["packets_out"] += 1
