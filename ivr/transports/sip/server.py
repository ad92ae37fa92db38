"""`SipServer`: a SIP user agent server on UDP that answers calls and runs a handler for each.

Every request but ACK and CANCEL is first checked as RFC 3261 8.2 orders it: a method we do
not serve outside a dialog gets 405 (known to SIP) or 501, a Request-URI scheme other than
sip/sips/tel 416, a Require naming any extension 420 with Unsupported (we require none).
An INVITE is then checked in this order: Accept without SDP (406), digest auth (401), media
(415/488), admission (486, or 503 with Retry-After), then 100/180/200; the handler runs once
the ACK arrives, as its own task, with a `SipCallTransport`. When it returns and the call is
still up, we send BYE. In-dialog requests go to their dialog (481 when there is none).
"""

import asyncio
import contextlib
import logging
from collections import Counter

from ivr.transports.base import Admission, CallHandler, CallInfo
from ivr.transports.lifecycle import Lifecycle, new_call_id
from ivr.transports.sip.digest import DigestAuthenticator
from ivr.transports.sip.endpoint import SipEndpoint
from ivr.transports.sip.guard import SourceGuard
from ivr.transports.sip.message import Request
from ivr.transports.sip.routing import Addr, txn_key
from ivr.transports.sip.sdp import SdpError, negotiate, parse_sdp
from ivr.transports.sip.selfcheck import AnswerHealth
from ivr.transports.sip.session import SipCall
from ivr.transports.sip.uri import SipSyntaxError, parse_uri

log = logging.getLogger("ivr.sip")

ALLOWED = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "NOTIFY", "INFO")
KNOWN = {"REGISTER", "SUBSCRIBE", "PUBLISH", "MESSAGE", "PRACK", "UPDATE", "REFER"}
PARAM_HEADERS = ("user-agent", "p-asserted-identity", "diversion", "referred-by", "subject")
URI_SCHEMES = ("sip", "sips", "tel")
SDP_TYPES = ("application/sdp", "application/*", "*/*")
TRANSFER_MODES = ("refer", "bridge", "auto")


class SipServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 5060, *, handler: CallHandler, admission: Admission,
                 public_host: str | None = None, allow: list[str] | None = None, auth: dict[str, str] | None = None,
                 realm: str = "ivr", rate_limit_per_s: float = 20.0, busy_code: int = 486,
                 user_agent: str = "ivr/0.1", rtp_host: str | None = None, retry_after_s: int = 30,
                 transfer_mode: str = "auto", transfer_timeout_s: float = 30.0,
                 agent_credentials: tuple[str, str] | None = None, ring_ms: int = 0, t1_ms: int = 500,
                 jitter_ms: int = 60, rtp_timeout_ms: int = 30_000, max_datagram_bytes: int = 8192,
                 nonce_ttl_s: float = 300.0, trusted: list[str] | None = None, answer_timeout_ms: int = 5000,
                 unhealthy_after: int = 3, unhealthy_s: float = 30.0) -> None:
        if transfer_mode not in TRANSFER_MODES:
            raise ValueError(f"transfer_mode must be one of {', '.join(TRANSFER_MODES)}, not {transfer_mode!r}")
        if busy_code not in (486, 503, 480, 600, 603):
            raise ValueError(f"busy_code {busy_code}: use 486 (Busy Here) or 503 (Service Unavailable)")
        self.handler, self.admission = handler, admission
        self.counters: Counter[str] = Counter()
        self.life = Lifecycle("sip", admission, handler, self.counters, log)
        self.public_host = public_host or host
        self.rtp_host = rtp_host or host
        self.busy_code, self.retry_after_s = busy_code, retry_after_s
        self.user_agent = user_agent
        self.transfer_mode, self.transfer_timeout_s = transfer_mode, transfer_timeout_s
        self.agent_credentials = agent_credentials
        self.ring_ms, self.jitter_ms, self.rtp_timeout_ms = ring_ms, jitter_ms, rtp_timeout_ms
        self.auth = DigestAuthenticator(auth, realm, nonce_ttl_s) if auth is not None else None
        self.guard = SourceGuard(allow, rate_limit_per_s, trusted=trusted)
        self.endpoint = SipEndpoint(host, port, on_request=self._on_request, guard=self.guard,
                                    public_host=self.public_host, t1_ms=t1_ms, max_datagram_bytes=max_datagram_bytes,
                                    user_agent=user_agent, in_dialog=self._known_dialog)
        self.calls: set[SipCall] = set()
        self.ringing: dict[tuple, SipCall] = {}
        self.dialogs: dict[tuple[str, str, str], object] = {}   # key -> SipCall | AgentLeg
        self.draining = False
        self.answer_timeout_ms = answer_timeout_ms            # past ring_ms: no 200 by then is a 500 (session.py)
        self.health = AnswerHealth(unhealthy_after, unhealthy_s)   # OPTIONS yes but INVITE no: out (selfcheck.py)
        self._idle = asyncio.Event()

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        host, port = await self.endpoint.open()
        log.info("sip: listening on udp %s:%d (contact %s)", host, port, self.contact)
        return host, port

    async def stop(self, deadline_s: float = 5.0) -> None:
        """Refuse new calls (503), let calls in progress run up to `deadline_s`, then hang up the
        rest (BYE) and close the socket."""
        self.draining = True
        self.life.busy_log.flush()
        if self.calls:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), deadline_s)
        for call in list(self.ringing.values()):
            call.cancel()
        calls = list(self.calls)
        if calls:
            log.info("sip: hanging up %d call(s) on stop", len(calls))
            await asyncio.wait([asyncio.ensure_future(c.hangup("server stopping")) for c in calls], timeout=2.0)
        tasks = [t for call in calls for t in (call.handler_task, call.bridge_task) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:   # a bridge still sends the agent leg its BYE: bounded
            await asyncio.wait(tasks, timeout=2.0)
        for call in calls:
            await call.end("server stopped")
        self.endpoint.close()

    @property
    def active_calls(self) -> int:
        return len(self.calls)

    @property
    def port(self) -> int:
        return self.endpoint.port

    @property
    def contact(self) -> str:
        return f"<sip:ivr@{self.public_host}:{self.endpoint.port}>"

    @property
    def local_uri(self) -> str:
        return f"sip:ivr@{self.public_host}:{self.endpoint.port}"

    def capability_headers(self) -> list[tuple[str, str]]:
        return [("Allow", ", ".join(ALLOWED)), ("Accept", "application/sdp, message/sipfrag, application/dtmf-relay")]

    # ---- bookkeeping used by calls -----------------------------------------------------

    def answered(self, call: SipCall) -> None:
        self.ringing.pop(txn_key(call.invite), None)
        self.register_dialog(call.dialog.key, call)

    def forget(self, call: SipCall) -> None:
        self.calls.discard(call)
        if not self.calls:
            self._idle.set()
        self.ringing.pop(txn_key(call.invite), None)
        self.unregister_dialog(call.dialog.key)

    def register_dialog(self, key: tuple[str, str, str], owner: object) -> None:
        self.dialogs[key] = owner

    def unregister_dialog(self, key: tuple[str, str, str]) -> None:
        self.dialogs.pop(key, None)

    def reject_method(self, req: Request) -> None:
        if req.method in KNOWN or req.method in ALLOWED:
            self.endpoint.respond(req, 405, headers=[("Allow", ", ".join(ALLOWED))])
        else:
            self.endpoint.respond(req, 501)

    # ---- requests ----------------------------------------------------------------------

    def _known_dialog(self, req: Request) -> bool:
        return (req.call_id, req.to.tag, req.from_.tag or "") in self.dialogs

    def _acceptable(self, req: Request) -> bool:
        """RFC 3261 8.2.1-8.2.2 for a request other than ACK/CANCEL; False when it has been answered."""
        if req.method not in ALLOWED and not req.to.tag:
            self.reject_method(req)
            return False
        scheme = req.uri.partition(":")[0].lower()
        if scheme not in URI_SCHEMES:
            self.endpoint.respond(req, 416)
            return False
        required = [r for r in req.get_all("require") if r]
        if required:
            self.endpoint.respond(req, 420, headers=[("Unsupported", ", ".join(required))])
            return False
        return True

    def _on_request(self, req: Request, addr: Addr) -> None:
        if req.method not in ("ACK", "CANCEL") and not self._acceptable(req):
            return
        to_tag = req.to.tag
        if to_tag:
            owner = self.dialogs.get((req.call_id, to_tag, req.from_.tag or ""))
            if owner is None:
                if req.method != "ACK":
                    self.endpoint.respond(req, 481)
                return
            owner.on_request(req, addr)
        elif req.method == "INVITE":
            self._on_invite(req, addr)
        elif req.method == "OPTIONS":
            self._on_options(req)
        elif req.method == "CANCEL":
            self._on_cancel(req)
        elif req.method == "ACK":
            pass
        elif req.method in ALLOWED:
            self.endpoint.respond(req, 481)
        else:
            self.reject_method(req)

    def load_header(self) -> tuple[str, str]:
        """What a proxy in front reads from our OPTIONS answer: calls now, the most we take."""
        calls = len(getattr(self.admission, "active", self.calls))
        limit = getattr(self.admission, "max_calls", 0)
        return "X-IVR-Load", f"calls={calls};max={limit}" if limit else f"calls={calls}"

    def _on_options(self, req: Request) -> None:
        """200 with our load; 503 while draining or full, so a proxy's OPTIONS probing (Kamailio
        dispatcher, deploy/kamailio) takes this node out of rotation until it answers 200 again."""
        headers = [*self.capability_headers(), self.load_header()]
        admission = self.admission
        full = len(getattr(admission, "active", ())) >= getattr(admission, "max_calls", float("inf"))
        if not self.health.healthy:        # it cannot answer calls: out of rotation for a while (selfcheck.py)
            self.endpoint.respond(req, 503, headers=[*headers, ("Retry-After", str(self.health.retry_after_s())),
                                                     ("Warning", '399 ivr "cannot answer calls"')])
        elif self.draining or not getattr(admission, "open", True) or full:
            self.endpoint.respond(req, 503, headers=[*headers, ("Retry-After", str(self.retry_after_s))])
        else:
            self.endpoint.respond(req, 200, headers=headers)

    def _on_invite(self, req: Request, addr: Addr) -> None:
        ep = self.endpoint
        ep.respond(req, 100)
        if self.draining or not getattr(self.admission, "open", True):   # draining: the proxy tries another node
            ep.respond(req, 503, headers=[("Retry-After", str(self.retry_after_s))])
            return
        if not self.health.healthy:       # taken out after INVITEs it could not answer: the proxy tries another
            ep.respond(req, 503, headers=[("Retry-After", str(self.health.retry_after_s()))])
            return
        accept = [a.split(";")[0].strip().lower() for a in req.get_all("accept")]
        if req.raw("accept") is not None and not any(a in SDP_TYPES for a in accept):
            ep.respond(req, 406, headers=[("Accept", "application/sdp")])   # our answer would be SDP (RFC 4475 3.3.15)
            return
        if self.auth is not None:
            result = self.auth.verify("INVITE", req.uri, req.get("authorization"))
            if not result.ok:
                if req.get("authorization"):
                    log.info("sip: INVITE from %s:%s not authorised (%s, user %r)", addr[0], addr[1],
                             result.reason, result.user)
                ep.respond(req, 401, headers=[("WWW-Authenticate", self.auth.challenge(stale=result.stale))])
                return
        offer = chosen = None
        if req.body:
            kind = (req.get("content-type") or "").split(";")[0].strip().lower()
            if kind != "application/sdp":
                ep.respond(req, 415, headers=[("Accept", "application/sdp")])
                return
            try:
                offer = parse_sdp(req.body)
                chosen = negotiate(offer)
            except SdpError as exc:
                log.info("sip: INVITE %s from %s:%s: %s", req.call_id, addr[0], addr[1], exc.reason)
                ep.respond(req, exc.status, headers=[("Warning", f'305 ivr "{exc.reason[:80]}"')])
                return
        info = self._call_info(req, addr)
        if not self.life.admit(info):
            headers = [("Retry-After", str(self.retry_after_s))] if self.busy_code == 503 else []
            ep.respond(req, self.busy_code, headers=headers)
            return
        call = SipCall(self, req, addr, info, offer, chosen)
        self.calls.add(call)
        self.ringing[txn_key(req)] = call
        ep.spawn(call.answer())

    def _on_cancel(self, req: Request) -> None:
        invite_key = (*txn_key(req)[:-1], "INVITE")
        call = self.ringing.get(invite_key)
        if call is not None:
            self.endpoint.respond(req, 200)
            call.cancel()
            call.log.info("caller cancelled before the answer")
        elif invite_key in self.endpoint.server_txns:
            self.endpoint.respond(req, 200)   # already answered: the CANCEL has no effect
        else:
            self.endpoint.respond(req, 481)

    @staticmethod
    def _call_info(req: Request, addr: Addr) -> CallInfo:
        caller = req.from_
        try:
            called = parse_uri(req.uri).user
        except SipSyntaxError:
            called = ""
        params = {"request_uri": req.uri[:256], "from": (req.raw("from") or "")[:256],
                  "to": (req.raw("to") or "")[:256]}
        for name, value in req.headers:
            lower = name.lower()
            if (lower in PARAM_HEADERS or lower.startswith("x-")) and len(params) < 32:
                params[lower] = value[:256]
        return CallInfo(call_id=new_call_id(), kind="sip", transport_id=req.call_id[:256],
                        caller=caller.uri.user or caller.display, called=called,
                        params=params, remote=f"{addr[0]}:{addr[1]}")
