"""The SIP UDP socket and the transaction layer (RFC 3261 sections 17-18, RFC 3581).

Every datagram passes, in order: size limit, parser (400 or drop, one log line per bad packet,
throttled), allow-list (403), then server transactions, which absorb retransmitted requests by
re-sending the last response. Only new requests reach the transaction user (`on_request`).
The per-source rate limit is charged only for junk and for new requests outside dialogs: never
for ACK, retransmissions, a CANCEL of a transaction in progress or a request in a dialog we
hold (`in_dialog`), and never for trusted sources; past it a packet is dropped unanswered. A
coarser ceiling on all datagrams of a source is checked before parsing (see `guard`).
Client transactions retransmit our requests until they are answered and hand the final
response back to the awaiting coroutine.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ivr.transports.sip.guard import LogThrottle, SourceGuard
from ivr.transports.sip.message import (
    REASONS,
    Request,
    Response,
    SipMessage,
    SipParseError,
    can_reply,
    make_response,
    new_branch,
    new_tag,
    parse_message,
)
from ivr.transports.sip.routing import Addr, fix_via, non_2xx_ack, printable, response_addr, txn_key
from ivr.transports.sip.uri import SipSyntaxError

log = logging.getLogger("ivr.sip")
T2_MS, T4_MS = 4000, 5000


@dataclass(slots=True)
class ServerTxn:
    addr: Addr                   # where responses go (Via rules)
    method: str
    response: bytes | None = None
    status: int = 0
    expires_at: float = float("inf")
    acked: bool = False
    tag: str = field(default_factory=new_tag)   # To tag for responses the TU sends without one


@dataclass(slots=True)
class ClientTxn:
    request: Request
    addr: Addr
    future: asyncio.Future
    on_provisional: Callable[[Response], None] | None = None
    provisional: bool = False
    ack: bytes | None = None     # re-sent when the final response is retransmitted
    expires_at: float = float("inf")
    responses: list[int] = field(default_factory=list)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: "SipEndpoint") -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            self.endpoint.datagram_received(data, (addr[0], addr[1]))
        except Exception:   # one bad packet must never take the socket down
            log.exception("sip: unexpected error handling a datagram from %s:%s", addr[0], addr[1])

    def error_received(self, exc: Exception) -> None:
        log.debug("sip: socket error %s", exc)


class SipEndpoint:
    def __init__(self, host: str, port: int, *, on_request: Callable[[Request, Addr], None],
                 guard: SourceGuard, public_host: str | None = None, t1_ms: int = 500,
                 max_datagram_bytes: int = 8192, user_agent: str = "ivr/0.1",
                 in_dialog: Callable[[Request], bool] | None = None) -> None:
        self.host, self.port = host, port
        self.user_agent = user_agent
        self.public_host = public_host or host
        self.on_request = on_request
        self.in_dialog = in_dialog or (lambda req: False)
        self.guard = guard
        self.t1_s = t1_ms / 1000
        self.max_datagram_bytes = max_datagram_bytes
        self.server_txns: dict[tuple, ServerTxn] = {}
        self.client_txns: dict[tuple, ClientTxn] = {}
        self.stats = {"received": 0, "bad": 0, "rate_dropped": 0, "forbidden": 0, "retransmissions_absorbed": 0,
                      "acks_absorbed": 0}   # ACKs of our non-2xx finals, ending their retransmission
        self._bad_log = LogThrottle(window_s=10.0, per_window=5)
        self._transport: asyncio.DatagramTransport | None = None
        self._sweeper: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def t2_s(self) -> float:
        return max(self.t1_s, T2_MS / 1000 * self.t1_s / 0.5)

    async def open(self) -> Addr:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self),
                                                                 local_addr=(self.host, self.port))
        self.port = self._transport.get_extra_info("sockname")[1]
        self._sweeper = asyncio.create_task(self._sweep())
        return self.host, self.port

    def close(self) -> None:
        for task in [self._sweeper, *self._tasks]:
            if task:
                task.cancel()
        for txn in self.client_txns.values():
            if not txn.future.done():
                txn.future.cancel()
        if self._transport:
            self._transport.close()

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- sending ---------------------------------------------------------------------

    def send(self, data: bytes | SipMessage, addr: Addr) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self._transport.sendto(data if isinstance(data, bytes) else data.to_bytes(), addr)

    def new_via(self) -> str:
        return f"SIP/2.0/UDP {self.public_host}:{self.port};branch={new_branch()};rport"

    def respond(self, req: Request, status: int, reason: str = "", **kw) -> Response:
        """Answer a request through its server transaction (to the Via address)."""
        txn = self.server_txns.get(txn_key(req))
        kw["headers"] = [*kw.get("headers", ()), ("Server", self.user_agent)]
        if kw.get("to_tag") is None and txn is not None:
            kw["to_tag"] = txn.tag
        resp = make_response(req, status, reason, **kw)
        addr = txn.addr if txn else response_addr(req.top_via)
        data = resp.to_bytes()
        self.send(data, addr)
        if txn is None or status < txn.status:
            return resp
        txn.response, txn.status = data, status
        if status >= 200:
            txn.expires_at = self._now() + 64 * self.t1_s
            if req.method == "INVITE" and status >= 300:   # Timer G until the ACK (17.2.1)
                self.spawn(self.retransmit(data, addr, lambda: txn.acked, 64 * self.t1_s))
        return resp

    def server_txns_addr(self, req: Request) -> Addr:
        """Where responses to this request go."""
        txn = self.server_txns.get(txn_key(req))
        return txn.addr if txn else response_addr(req.top_via)

    async def retransmit(self, data: bytes, addr: Addr, done: Callable[[], bool], limit_s: float) -> bool:
        """Re-send at T1, 2T1, ... capped at T2 until done() (True) or `limit_s` passes (False)."""
        interval, waited = self.t1_s, 0.0
        while waited < limit_s:
            await asyncio.sleep(interval)
            waited += interval
            if done():
                return True
            self.send(data, addr)
            interval = min(interval * 2, self.t2_s)
        return done()

    async def request(self, req: Request, addr: Addr, *, on_provisional: Callable[[Response], None] | None = None,
                      timeout_s: float | None = None) -> Response:
        """Send a request in a client transaction; the final response, or TimeoutError (Timer B/F)."""
        key = (req.top_via.branch, req.method)
        txn = ClientTxn(req, addr, asyncio.get_running_loop().create_future(), on_provisional)
        self.client_txns[key] = txn
        data, interval = req.to_bytes(), self.t1_s
        start = self._now()
        try:
            self.send(data, addr)
            while True:
                limit = 64 * self.t1_s
                if req.method == "INVITE" and txn.provisional:
                    limit = timeout_s if timeout_s is not None else float("inf")
                elif timeout_s is not None:
                    limit = min(limit, timeout_s)
                remaining = start + limit - self._now()
                if remaining <= 0:
                    raise TimeoutError(f"no final response to {req.method}")
                try:
                    return await asyncio.wait_for(asyncio.shield(txn.future), min(interval, remaining))
                except TimeoutError:
                    pass
                if req.method != "INVITE" or not txn.provisional:
                    self.send(data, addr)
                    interval = self.t2_s if txn.provisional else min(interval * 2, self.t2_s)
                else:
                    interval = remaining
        finally:
            txn.expires_at = self._now() + 64 * self.t1_s

    def set_ack(self, invite: Request, ack: Request, addr: Addr) -> None:
        """The ACK we sent for a 2xx: re-send it whenever that 2xx is retransmitted."""
        txn = self.client_txns.get((invite.top_via.branch, "INVITE"))
        if txn:
            txn.ack, txn.addr = ack.to_bytes(), addr

    # ---- receiving -------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        ip = addr[0]
        self.stats["received"] += 1
        if not data.strip(b"\r\n \t\0"):
            return   # keep-alive
        if not self.guard.trusted(ip) and not self.guard.within_datagram_rate(ip):   # a flood: not even parsed
            self.stats["rate_dropped"] += 1
            return
        if len(data) > self.max_datagram_bytes:
            if self._admit(ip):
                self._bad(addr, f"datagram of {len(data)} bytes exceeds {self.max_datagram_bytes}", None)
            return
        try:
            msg = parse_message(data)
        except SipParseError as exc:
            if self._admit(ip):   # junk is charged like a new request
                self._bad(addr, exc.reason, exc.message, exc.status)
            return
        if isinstance(msg, Response):
            if self.guard.allowed(ip):
                self._on_response(msg)
            return
        if not self.guard.allowed(ip):
            self.stats["forbidden"] += 1
            if msg.method != "ACK" and self._admit(ip):
                fix_via(msg, addr)
                self.send(make_response(msg, 403, "Forbidden", headers=[("Server", self.user_agent)]),
                          response_addr(msg.top_via))
            return
        fix_via(msg, addr)
        key = txn_key(msg)
        txn = self.server_txns.get(key)
        if msg.method == "ACK":                          # never charged: an ACK lost is a 486 re-sent 10 times
            if txn is not None and txn.status >= 300:   # ACK of our non-2xx final: the transaction's
                self.stats["acks_absorbed"] += not txn.acked
                txn.acked = True
                txn.expires_at = min(txn.expires_at, self._now() + T4_MS / 1000)
                return
            self.on_request(msg, addr)                   # ACK of a 2xx: the dialog's
            return
        if txn is not None:                              # a retransmission: never charged
            self.stats["retransmissions_absorbed"] += 1
            if txn.response:
                self.send(txn.response, txn.addr)
            return
        if not self._within_dialog_or_txn(msg, key) and not self._admit(ip):
            return
        self.server_txns[key] = ServerTxn(response_addr(msg.top_via), msg.method)
        self.on_request(msg, addr)

    def _within_dialog_or_txn(self, req: Request, key: tuple) -> bool:
        """A CANCEL of an INVITE in progress, or a request in a dialog we hold: not new traffic."""
        if req.method == "CANCEL":
            return (*key[:-1], "INVITE") in self.server_txns
        return req.to.tag is not None and self.in_dialog(req)

    def _admit(self, ip: str) -> bool:
        """Charge the source's rate limit for one new request; False: drop it unanswered."""
        if self.guard.trusted(ip) or self.guard.within_rate(ip):
            return True
        self.stats["rate_dropped"] += 1
        return False

    def _bad(self, addr: Addr, reason: str, msg: SipMessage | None, status: int = 400) -> None:
        self.stats["bad"] += 1
        answered = can_reply(msg)
        show, suppressed = self._bad_log.allow(addr[0])
        if show:
            log.warning("sip: bad packet from %s:%s: %s (%s)%s", addr[0], addr[1], printable(reason),
                        f"answered {status}" if answered else "dropped",
                        f"; {suppressed} more suppressed" if suppressed else "")
        if answered and isinstance(msg, Request) and self.guard.allowed(addr[0]):
            fix_via(msg, addr)
            phrase = f"Bad Request ({printable(reason, 60)})" if status == 400 else REASONS.get(status, "")
            self.send(make_response(msg, status, phrase, headers=[("Server", self.user_agent)]),
                      response_addr(msg.top_via))

    def _on_response(self, resp: Response) -> None:
        try:
            key = (resp.top_via.branch, resp.cseq[1])
        except (SipSyntaxError, ValueError):
            return
        txn = self.client_txns.get(key)
        if txn is None:
            log.debug("sip: response %s matches no transaction", resp.status)
            return
        txn.responses.append(resp.status)
        if resp.status < 200:
            txn.provisional = True
            if txn.on_provisional and not txn.future.done():
                txn.on_provisional(resp)
            return
        if txn.future.done():
            if txn.ack:
                self.send(txn.ack, txn.addr)
            return
        if txn.request.method == "INVITE" and resp.status >= 300:
            ack = non_2xx_ack(txn.request, resp)
            txn.ack = ack.to_bytes()
            self.send(txn.ack, txn.addr)
        txn.future.set_result(resp)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = self._now()
            for table in (self.server_txns, self.client_txns):
                for key in [k for k, t in table.items() if t.expires_at <= now]:
                    del table[key]

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()
