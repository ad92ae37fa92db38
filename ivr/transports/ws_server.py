"""Twilio-Media-Streams-compatible WebSocket bridge (aiohttp): one WebSocket is one call.

The codec is `twilio_ws.py`; the per-call transport (audio conversion, marks, how a call ends)
is `ws_call.py`. This module owns the listening socket, authentication, admission and the busy
prompt. See docs/transports.md.
"""

import asyncio
import hmac
import ipaddress
import logging
from collections import Counter

import numpy as np
from aiohttp import WSCloseCode, WSMsgType, web

from ivr.audio.frames import INTERNAL_RATE_HZ
from ivr.audio.g711 import mulaw_encode
from ivr.audio.resample import resample
from ivr.errors import UserError
from ivr.transports import twilio_ws as wire
from ivr.transports.base import Admission, CallHandler, CallInfo
from ivr.transports.lifecycle import Lifecycle
from ivr.transports.ws_call import CHUNK_BYTES, TransferHook, TwilioStreamTransport

log = logging.getLogger("ivr.transports.ws")

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024   # a 20 ms media message is ~300 bytes


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secret_matches(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


def _bearer(header: str) -> str | None:
    scheme, _, value = header.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


class WsBridgeServer:
    """Accepts Media Streams WebSockets at `path`; each admitted stream runs `handler` once."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, path: str = "/media", *,
                 handler: CallHandler, admission: Admission, token: str | None = None,
                 busy_audio: np.ndarray | None = None, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 on_transfer: TransferHook | None = None, start_timeout_ms: int = 10_000,
                 idle_timeout_ms: int = 10_000) -> None:
        self.host, self.port, self.path = host, port, path
        self.handler, self.admission = handler, admission
        self.token = token or None
        self.busy_audio = busy_audio
        self.max_message_bytes = max_message_bytes
        self.on_transfer = on_transfer
        self.start_timeout_s = start_timeout_ms / 1000
        self.idle_timeout_ms = idle_timeout_ms
        self.counters: Counter[str] = Counter()
        self.life = Lifecycle("ws", admission, handler, self.counters, log)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> tuple[str, int]:
        if not is_loopback(self.host) and not self.token:
            raise UserError(f"refusing to serve WebSocket calls on {self.host}:{self.port} without a token",
                            "set IVR_WS_TOKEN, or bind 127.0.0.1")
        app = web.Application()
        app.router.add_get(self.path, self._on_request)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await self._site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise UserError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}",
                            "pick another port or stop the other listener") from exc
        host, port = self._runner.addresses[0][:2]
        log.info("WebSocket bridge listening on ws://%s:%d%s", host, port, self.path)
        if not self.token:
            log.warning("WebSocket bridge on %s:%d is unauthenticated-on-loopback (no IVR_WS_TOKEN)", host, port)
        return host, port

    async def stop(self, deadline_s: float = 5.0) -> None:
        """Stop accepting; give running calls `deadline_s` to end, then close them (1001)."""
        if self._runner is None:
            return
        self.life.busy_log.flush()
        if self._site is not None:
            await self._site.stop()
        try:
            await asyncio.wait_for(self._idle.wait(), deadline_s)
        except TimeoutError:
            for ws in list(self._sockets):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
            try:
                await asyncio.wait_for(self._idle.wait(), 2.0)
            except TimeoutError:
                log.warning("%d calls still running at shutdown", len(self._sockets))
        await self._runner.cleanup()
        self._runner = self._site = None

    async def _on_request(self, request: web.Request) -> web.StreamResponse:
        remote = request.remote or ""
        header = request.headers.get("Authorization")
        authed = self.token is None
        if self.token is not None and header is not None:
            if not _secret_matches(_bearer(header), self.token):
                self.counters["auth_refused"] += 1
                log.warning("refused WebSocket upgrade from %s: wrong Authorization header", remote)
                return web.Response(status=401, text="unauthorized\n", headers={"WWW-Authenticate": "Bearer"})
            authed = True
        ws = web.WebSocketResponse(max_msg_size=self.max_message_bytes, timeout=2.0)
        await ws.prepare(request)
        self._sockets.add(ws)
        self._idle.clear()
        try:
            await self._serve(ws, remote, authed)
        finally:
            if not ws.closed:
                await ws.close()
            self._sockets.discard(ws)
            if not self._sockets:
                self._idle.set()
        return ws

    async def _serve(self, ws: web.WebSocketResponse, remote: str, authed: bool) -> None:
        start = await self._await_start(ws, remote)
        if start is None:
            return
        if not authed and not _secret_matches(start.custom_parameters.get("token"), self.token or ""):
            self.counters["auth_refused"] += 1
            log.warning("refused stream from %s: missing or wrong token parameter", remote)
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"unauthorized")
            return
        if start.encoding != wire.WIRE_ENCODING or start.rate_hz != wire.WIRE_RATE_HZ:
            log.warning("refused stream from %s: media format %s/%d", remote, start.encoding, start.rate_hz)
            await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"only audio/x-mulaw 8000 Hz")
            return
        params = {k: v for k, v in start.custom_parameters.items() if k != "token"}
        info = self.life.info(start.call_sid or start.stream_sid, caller=params.get("from", ""),
                              called=params.get("to", ""), params=params, remote=remote)
        transport = TwilioStreamTransport(ws, start, info, on_transfer=self.on_transfer,
                                          idle_timeout_ms=self.idle_timeout_ms)
        await self.life.serve(transport, info, busy=lambda: self._busy(ws, start, info), close=transport.close,
                              pump=transport.pump)

    async def _await_start(self, ws: web.WebSocketResponse, remote: str) -> wire.Start | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout_s
        while (left := deadline - loop.time()) > 0:
            try:
                msg = await ws.receive(timeout=left)
            except TimeoutError:
                break
            if msg.type is not WSMsgType.TEXT:
                if msg.type is WSMsgType.BINARY:
                    continue
                return None      # closed (or oversized: aiohttp already closed with 1009)
            try:
                event = wire.decode(msg.data)
            except wire.WireError as exc:
                self.counters[exc.kind] += 1
                continue
            if isinstance(event, wire.Start):
                return event
        log.warning("no start message from %s within %.0f s", remote, self.start_timeout_s)
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"expected a start message")
        return None

    async def _busy(self, ws: web.WebSocketResponse, start: wire.Start, info: CallInfo) -> None:
        """Play the busy prompt (Twilio buffers it), wait for its mark, then close."""
        call_log = logging.LoggerAdapter(log, {"call_id": info.call_id})
        if self.busy_audio is not None and len(self.busy_audio):
            mulaw = mulaw_encode(resample(self.busy_audio, INTERNAL_RATE_HZ, wire.WIRE_RATE_HZ))
            try:
                for i in range(0, len(mulaw), CHUNK_BYTES * 5):
                    await ws.send_str(wire.media_message(start.stream_sid, mulaw[i : i + CHUNK_BYTES * 5]))
                await ws.send_str(wire.mark_message(start.stream_sid, "busy"))
                await asyncio.wait_for(self._await_mark(ws, "busy"), len(mulaw) / wire.WIRE_RATE_HZ + 2.0)
            except (TimeoutError, ConnectionError, RuntimeError):
                call_log.info("busy prompt not confirmed played")
        await ws.close(code=WSCloseCode.OK, message=wire.close_reason("hangup", reason="busy").encode())

    @staticmethod
    async def _await_mark(ws: web.WebSocketResponse, name: str) -> None:
        while (msg := await ws.receive()).type in (WSMsgType.TEXT, WSMsgType.BINARY):
            try:
                event = wire.decode(msg.data)
            except wire.WireError:
                continue
            if (isinstance(event, wire.Mark) and event.name == name) or isinstance(event, wire.Stop):
                return
