"""Asterisk AudioSocket over TCP: a pure codec and an asyncio server, one connection per call.

Wire: each message is 1 byte kind, 2 bytes big-endian payload length, then the payload.
Kinds: 0x00 hang up, 0x01 UUID (16 bytes, first), 0x03 DTMF (1 ASCII byte), 0x10 audio (slin16
little-endian, 8 kHz mono, 20 ms = 320 bytes), 0xff error (Asterisk: bit flags 0x01 caller hung
up, 0x02 frame forwarding error, 0x04 memory error). We answer with 20 ms audio frames, one per
inbound frame (silence included: Asterisk plays what it gets, when it gets it), and 0x00.

AudioSocket has no authentication: bind loopback, or list the peers allowed (CIDRs).
"""

import asyncio
import contextlib
import inspect
import ipaddress
import logging
import struct
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np

from ivr.audio.frames import FRAME_SAMPLES, INTERNAL_RATE_HZ
from ivr.audio.resample import Resampler, resample
from ivr.errors import UserError
from ivr.transports.base import Admission, CallHandler, CallInfo, InboundItem

log = logging.getLogger("ivr.transports.audiosocket")

KIND_HANGUP, KIND_UUID, KIND_DTMF, KIND_AUDIO, KIND_ERROR = 0x00, 0x01, 0x03, 0x10, 0xFF
WIRE_RATE_HZ = 8000
WIRE_FRAME_SAMPLES = WIRE_RATE_HZ // 50          # 20 ms
DEFAULT_MAX_PAYLOAD = 16 * 1024                   # 1 s of audio
MAX_WIRE_PAYLOAD = 0xFFFF                         # what the 2-byte length allows
DTMF_KEYS = frozenset("0123456789*#ABCD")
ASTERISK_ERRORS = {0x01: "caller hung up", 0x02: "frame forwarding error", 0x04: "memory error"}
COMPLAINTS_LOGGED = 3
_HEADER = struct.Struct(">BH")

TransferHook = Callable[[CallInfo, str, str, dict], object]   # may return an awaitable


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---- codec (pure) -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Message:
    kind: int
    payload: bytes = b""


def encode(kind: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


def audio_message(pcm_8k: np.ndarray) -> bytes:
    return encode(KIND_AUDIO, np.asarray(pcm_8k, dtype="<i2").tobytes())


def uuid_message(call_uuid: uuid.UUID) -> bytes:
    return encode(KIND_UUID, call_uuid.bytes)


def dtmf_message(key: str) -> bytes:
    return encode(KIND_DTMF, key.encode("ascii"))


def hangup_message() -> bytes:
    return encode(KIND_HANGUP)


def error_message(code: int = 0) -> bytes:
    return encode(KIND_ERROR, bytes([code]) if code else b"")


def parse_audio(payload: bytes) -> np.ndarray:
    """slin16 little-endian -> int16 (a stray odd byte is dropped)."""
    return np.frombuffer(payload[: len(payload) // 2 * 2], dtype="<i2").astype(np.int16)


def parse_dtmf(payload: bytes) -> str | None:
    key = payload[:1].decode("ascii", "replace").upper()
    return key if len(payload) == 1 and key in DTMF_KEYS else None


def describe_error(payload: bytes) -> str:
    if not payload:
        return "no code"
    code = payload[0]
    names = [text for bit, text in ASTERISK_ERRORS.items() if code & bit]
    return f"0x{payload.hex()} ({', '.join(names) or 'application-specific'})"


class Decoder:
    """Bytes in (any split), whole messages out. A payload announced past `max_payload` stops
    decoding: `error` says why, and the messages before it are still returned."""

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self.error: str | None = None
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an unfinished message (non-zero at EOF means the stream was cut mid-message)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Message]:
        if self.error:
            return []
        self._buf += data
        out: list[Message] = []
        while len(self._buf) >= _HEADER.size:
            kind, length = _HEADER.unpack_from(self._buf)
            if length > self.max_payload:
                self.error = f"kind 0x{kind:02x} payload of {length} bytes (limit {self.max_payload})"
                self._buf.clear()
                break
            end = _HEADER.size + length
            if len(self._buf) < end:
                break
            out.append(Message(kind, bytes(self._buf[_HEADER.size : end])))
            del self._buf[:end]
        return out


# ---- one call ------------------------------------------------------------------------------------

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
                return
            elif msg.kind == KIND_ERROR:
                self.counters["peer_error"] += 1
                self.log.warning("peer reported an error: %s; ending the call", describe_error(msg.payload))
                return
            else:
                self._complain("unknown_kind", f"message kind 0x{msg.kind:02x}")

    async def _read(self) -> bool:
        """Read until at least one whole message is pending; False when the call is over."""
        while not self._pending:
            if self.decoder.error:
                self.counters["oversized"] += 1
                self.log.warning("%s: hanging up", self.decoder.error)
                await self.hangup("oversized message")
                return False
            try:
                data = await asyncio.wait_for(self.reader.read(65536), self.idle_timeout_s)
            except TimeoutError:
                self.log.warning("no data for %.0f s: the peer is gone", self.idle_timeout_s)
                return False
            except ConnectionError:
                return False
            if not data:
                if self.decoder.pending:
                    self.counters["truncated"] += 1
                    self.log.info("connection closed mid-message (%d bytes): call over", self.decoder.pending)
                return False
            self._pending.extend(self.decoder.feed(data))
        return True

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
        except (ConnectionError, RuntimeError):
            self.log.info("peer gone while sending")
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
        if self.on_transfer is not None:
            try:
                result = self.on_transfer(self.info, target, reason, dict(context))
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self.log.exception("transfer hook failed")
        await self.hangup(f"transfer to {target}")

    async def close(self) -> None:
        self._closed = True
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


# ---- the listener ------------------------------------------------------------------------------

class AudioSocketServer:
    """Accepts AudioSocket connections; each admitted call runs `handler` once."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9092, *, handler: CallHandler,
                 admission: Admission, busy_audio: np.ndarray | None = None,
                 max_payload: int = DEFAULT_MAX_PAYLOAD, allow: list[str] | None = None,
                 on_transfer: TransferHook | None = None, uuid_timeout_ms: int = 5000,
                 idle_timeout_ms: int = 10_000) -> None:
        self.host, self.port = host, port
        self.handler, self.admission = handler, admission
        self.busy_audio = busy_audio
        self.max_payload = max_payload
        try:
            self.allow = [ipaddress.ip_network(c, strict=False) for c in allow or []]
        except ValueError as exc:
            raise UserError(f"bad AudioSocket allow entry: {exc}", "use CIDRs like 10.0.0.5/32") from exc
        self.on_transfer = on_transfer
        self.uuid_timeout_s = uuid_timeout_ms / 1000
        self.idle_timeout_ms = idle_timeout_ms
        self.counters: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> tuple[str, int]:
        if not _is_loopback(self.host) and not self.allow:
            raise UserError(f"refusing to serve AudioSocket on {self.host}:{self.port} to any peer "
                            "(the protocol has no authentication)", "list the Asterisk hosts in `allow` (CIDRs)")
        try:
            self._server = await asyncio.start_server(self._on_connection, self.host, self.port)
        except OSError as exc:
            raise UserError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}",
                            "pick another port or stop the other listener") from exc
        host, port = self._server.sockets[0].getsockname()[:2]
        log.info("AudioSocket listening on %s:%d", host, port)
        return host, port

    async def stop(self, deadline_s: float = 5.0) -> None:
        """Stop accepting; give running calls `deadline_s`, then hang them up."""
        if self._server is None:
            return
        self._server.close()
        try:
            await asyncio.wait_for(self._idle.wait(), deadline_s)
        except TimeoutError:
            for writer in list(self._writers):
                writer.close()
            try:
                await asyncio.wait_for(self._idle.wait(), 2.0)
            except TimeoutError:
                log.warning("%d calls still running at shutdown", len(self._writers))
        await self._server.wait_closed()
        self._server = None

    def _allowed(self, peer: str) -> bool:
        if not self.allow:
            return True
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in net for net in self.allow)

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername") or ("", 0)
        remote = f"{peername[0]}:{peername[1]}"
        self._writers.add(writer)
        self._idle.clear()
        try:
            if not self._allowed(peername[0]):
                self.counters["refused_peer"] += 1
                log.warning("refused AudioSocket connection from %s: not in allow list", remote)
                return
            await self._serve(reader, writer, remote)
        except Exception:
            log.exception("AudioSocket connection from %s failed", remote)
        finally:
            if not writer.is_closing():
                writer.close()
            self._writers.discard(writer)
            if not self._writers:
                self._idle.set()

    async def _first_messages(self, reader: asyncio.StreamReader, decoder: Decoder,
                              remote: str) -> list[Message] | None:
        """Messages starting with a valid UUID message; [] if the peer left; None if it broke the protocol."""
        messages: list[Message] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.uuid_timeout_s
        while not messages:
            try:
                data = await asyncio.wait_for(reader.read(65536), max(0.0, deadline - loop.time()))
            except (TimeoutError, ConnectionError):
                data = b""
            if not data:
                log.info("AudioSocket peer %s left before sending its UUID", remote)
                return []
            messages = decoder.feed(data)
            if decoder.error and not messages:
                log.warning("AudioSocket peer %s: %s", remote, decoder.error)
                return None
        first = messages[0]
        if first.kind != KIND_UUID or len(first.payload) != 16:
            return None
        return messages

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, remote: str) -> None:
        decoder = Decoder(self.max_payload)
        messages = await self._first_messages(reader, decoder, remote)
        if messages == []:
            return
        if messages is None:
            self.counters["protocol_error"] += 1
            log.warning("AudioSocket peer %s did not start with a UUID message: closing", remote)
            writer.write(error_message())
            return
        call_id = str(uuid.UUID(bytes=messages[0].payload))
        info = CallInfo(call_id, "audiosocket", called=call_id, remote=remote)
        transport = AudioSocketTransport(reader, writer, info, decoder, messages[1:],
                                         on_transfer=self.on_transfer, idle_timeout_ms=self.idle_timeout_ms)
        if not self.admission.admit(info):
            self.counters["busy"] += 1
            await self._busy(transport)
            return
        self.counters["calls"] += 1
        try:
            await self.handler(transport, info)
        except Exception:
            transport.log.exception("call handler failed")
        finally:
            if not transport.closed:
                await transport.hangup("call ended")
            self.counters.update({k: v for k, v in transport.counters.items() if k != "clears"})

    async def _busy(self, transport: AudioSocketTransport) -> None:
        transport.log.info("busy: no free call slot for %s", transport.info.remote)
        if self.busy_audio is not None and len(self.busy_audio):
            await transport.play(self.busy_audio)
        await transport.hangup("busy")
