"""Asterisk AudioSocket over TCP: the asyncio listener, one connection per call.

The pure wire codec is `audiosocket_codec.py` (its names are re-exported here, so
`from ivr.transports import audiosocket as wire` works); the per-call transport is
`audiosocket_call.py`.

AudioSocket has no authentication: bind loopback, or list the peers allowed (CIDRs).
"""

import asyncio
import ipaddress
import logging
import uuid
from collections import Counter

import numpy as np

from ivr.errors import UserError
from ivr.transports.audiosocket_call import AudioSocketTransport, TransferHook
from ivr.transports.audiosocket_codec import (
    ASTERISK_ERRORS,
    DEFAULT_MAX_PAYLOAD,
    DTMF_KEYS,
    KIND_AUDIO,
    KIND_DTMF,
    KIND_ERROR,
    KIND_HANGUP,
    KIND_UUID,
    MAX_WIRE_PAYLOAD,
    WIRE_FRAME_SAMPLES,
    WIRE_RATE_HZ,
    Decoder,
    Message,
    audio_message,
    describe_error,
    dtmf_message,
    encode,
    error_message,
    hangup_message,
    parse_audio,
    parse_dtmf,
    uuid_message,
)
from ivr.transports.base import Admission, CallHandler
from ivr.transports.lifecycle import Lifecycle

__all__ = [   # the codec's names too: `from ivr.transports import audiosocket as wire` uses them
    "ASTERISK_ERRORS", "DEFAULT_MAX_PAYLOAD", "DTMF_KEYS", "KIND_AUDIO", "KIND_DTMF", "KIND_ERROR", "KIND_HANGUP",
    "KIND_UUID", "MAX_WIRE_PAYLOAD", "WIRE_FRAME_SAMPLES", "WIRE_RATE_HZ", "AudioSocketServer",
    "AudioSocketTransport", "Decoder", "Message", "TransferHook", "audio_message", "describe_error", "dtmf_message",
    "encode", "error_message", "hangup_message", "parse_audio", "parse_dtmf", "uuid_message",
]

log = logging.getLogger("ivr.transports.audiosocket")


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        self.life = Lifecycle("audiosocket", admission, handler, self.counters, log)
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
        self.life.busy_log.flush()
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
        peer_uuid = str(uuid.UUID(bytes=messages[0].payload))
        # The UUID is the peer's: Asterisk set-ups often use one per entry point, so it routes
        # the call (`called`) but never identifies it (the service makes the id).
        info = self.life.info(peer_uuid, called=peer_uuid, remote=remote)
        transport = AudioSocketTransport(reader, writer, info, decoder, messages[1:],
                                         on_transfer=self.on_transfer, idle_timeout_ms=self.idle_timeout_ms)

        async def close() -> None:
            if not transport.closed:
                await transport.hangup("call ended")

        await self.life.serve(transport, info, busy=lambda: self._busy(transport), close=close)

    async def _busy(self, transport: AudioSocketTransport) -> None:
        if self.busy_audio is not None and len(self.busy_audio):
            await transport.play(self.busy_audio)
        await transport.hangup("busy")
