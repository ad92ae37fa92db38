"""Reach the agent line ourselves: dial it as a UAC and relay audio between the two legs.

For PBXes that refuse REFER. The INVITE carries the call context headers (see `refer`),
answers one digest challenge when credentials are configured, and gives up (CANCEL) after
the transfer timeout. Once the agent answers, the bridge owns both media streams; when
either side hangs up, the other gets a BYE. Keys the caller presses go to the agent as
RFC 4733 events.
"""

import asyncio
import contextlib
import ipaddress
import logging
import secrets
from typing import TYPE_CHECKING

from ivr.transports.base import TransferFailed
from ivr.transports.sip.dialog import Dialog
from ivr.transports.sip.digest import authorization
from ivr.transports.sip.media import MediaTap
from ivr.transports.sip.message import Request, Response, new_call_id, new_tag
from ivr.transports.sip.refer import context_headers, target_uri
from ivr.transports.sip.rtp import PCMU, Codec, RtpSession
from ivr.transports.sip.sdp import DEFAULT_DTMF_PT, SdpError, build_answer, build_offer, negotiate, parse_sdp
from ivr.transports.sip.uri import SipUri

if TYPE_CHECKING:
    from ivr.transports.sip.session import SipCall

log = logging.getLogger("ivr.sip")
SAFE_URI_HEADERS = {"subject", "priority"}   # plus X-*: never let a URI set Via, Route, Call-ID... (RFC 3261 19.1.5)


class AgentLeg:
    def __init__(self, call: "SipCall", uri: SipUri, headers: list[tuple[str, str]]) -> None:
        self.call, self.server, self.ep = call, call.server, call.ep
        self.uri, self.headers = uri, headers
        self.log = call.log
        self.state = "idle"
        self.tap: MediaTap | None = None
        self.dialog: Dialog | None = None
        self.invite: Request | None = None
        self.reinvite_pending = False
        self.sdp_session_id = secrets.randbelow(2**31)
        self.sdp_version = 0

    async def dial(self) -> None:
        try:
            host = str(ipaddress.ip_address(self.uri.host.strip("[]")))
        except ValueError as exc:
            raise TransferFailed(f"agent line host {self.uri.host!r} must be an IP address (no DNS)") from exc
        rtp = RtpSession(self.server.rtp_host, codec=PCMU, dtmf_pt=DEFAULT_DTMF_PT, jitter_ms=self.server.jitter_ms,
                         inactivity_timeout_ms=self.server.rtp_timeout_ms, call_id=f"{self.call.info.call_id}/agent")
        await rtp.open()
        self.tap = MediaTap(rtp)
        self.state = "dialing"
        try:
            await self._invite((host, self.uri.port or 5060))
        except BaseException:
            self.state = "ended"
            await self.tap.close()
            raise

    async def _invite(self, dest: tuple[str, int]) -> None:
        server = self.server
        offer = build_offer(host=server.public_host, port=self.tap.rtp.local_port,
                            session_id=self.sdp_session_id, version=self.sdp_version)
        call_id, from_tag, auth = new_call_id(server.public_host), new_tag(), None
        for cseq in (1, 2):
            invite = self._build(call_id, from_tag, cseq, offer, auth)
            self.invite = invite
            try:
                resp = await self.ep.request(invite, dest, timeout_s=server.transfer_timeout_s)
            except TimeoutError as exc:
                self.ep.spawn(self._cancel(invite, dest))
                raise TransferFailed(f"agent line did not answer within {server.transfer_timeout_s:.0f} s") from exc
            except asyncio.CancelledError:   # the caller hung up while it rang
                self.ep.spawn(self._cancel(invite, dest))
                raise
            auth = self._answer_challenge(invite, resp) if cseq == 1 else None
            if auth is None:
                break
        if resp.status >= 300:
            raise TransferFailed(f"agent line answered {resp.status} {resp.reason}")
        self.dialog = Dialog.as_uac(invite, resp, dest)
        ack = self.dialog.request("ACK", self.ep.new_via(), cseq=invite.cseq[0],
                                  headers=[(n, v) for n, v in invite.headers if n.lower().endswith("authorization")])
        self.ep.send(ack, self.dialog.destination())
        self.ep.set_ack(invite, ack, self.dialog.destination())
        server.register_dialog(self.dialog.key, self)
        self.state = "up"
        try:
            chosen = negotiate(parse_sdp(resp.body))
        except SdpError as exc:
            await self.hangup("unusable SDP")
            raise TransferFailed(f"agent line's SDP answer is unusable: {exc.reason}") from exc
        rtp = self.tap.rtp
        rtp.set_remote(chosen.remote_host, chosen.remote_port)
        rtp.set_codec(Codec(chosen.codec, chosen.payload_type, chosen.rate_hz), chosen.dtmf_pt)
        rtp.hold(chosen.on_hold)
        self.log.info("agent line %s answered (%s)", self.uri.without_headers(), chosen.codec)

    def _build(self, call_id: str, from_tag: str, cseq: int, offer: bytes, auth: tuple[str, str] | None) -> Request:
        server, info = self.server, self.call.info
        caller = SipUri("sip", info.caller or "ivr", server.public_host)
        display = "".join(ch for ch in info.caller if ch not in '"\\\r\n')[:40]
        invite = Request("INVITE", str(self.uri.without_headers()))
        invite.add("Via", self.ep.new_via())
        invite.add("Max-Forwards", "70")
        invite.add("From", f'"{display}" <{caller}>;tag={from_tag}' if display else f"<{caller}>;tag={from_tag}")
        invite.add("To", f"<{self.uri.without_headers()}>")
        invite.add("Call-ID", call_id)
        invite.add("CSeq", f"{cseq} INVITE")
        invite.add("Contact", server.contact)
        for name, value in server.capability_headers():
            invite.add(name, value)
        invite.add("User-Agent", server.user_agent)
        for name, value in self.uri.headers.items():
            if name.lower().startswith("x-") or name.lower() in SAFE_URI_HEADERS:
                invite.add(name, value.replace("\r", " ").replace("\n", " "))
        for name, value in self.headers:
            invite.add(name, value)
        if auth:
            invite.add(*auth)
        invite.add("Content-Type", "application/sdp")
        invite.body = offer
        return invite

    def _answer_challenge(self, invite: Request, resp: Response) -> tuple[str, str] | None:
        creds = self.server.agent_credentials
        if resp.status not in (401, 407) or not creds:
            return None
        challenge = resp.get("www-authenticate" if resp.status == 401 else "proxy-authenticate")
        if not challenge:
            return None
        name = "Authorization" if resp.status == 401 else "Proxy-Authorization"
        try:
            return name, authorization(challenge, method="INVITE", uri=invite.uri, user=creds[0], password=creds[1])
        except ValueError:
            return None

    async def _cancel(self, invite: Request, dest: tuple[str, int]) -> None:
        cancel = Request("CANCEL", invite.uri)
        for name in ("via", "from", "to", "call-id"):
            cancel.add(name.title() if name != "call-id" else "Call-ID", invite.raw(name) or "")
        cancel.add("CSeq", f"{invite.cseq[0]} CANCEL")
        cancel.add("Max-Forwards", "70")
        with contextlib.suppress(TimeoutError):
            await self.ep.request(cancel, dest)

    # ---- in-dialog requests from the agent side ----------------------------------------

    def on_request(self, req: Request, addr: tuple[str, int]) -> None:
        if req.method == "ACK":
            self.reinvite_pending = False
            return
        if not self.dialog.accept_remote_cseq(req):
            self.ep.respond(req, 500, "CSeq Out Of Order")
        elif req.method == "BYE":
            self.ep.respond(req, 200)
            self.log.info("agent hung up")
            self.ep.spawn(self.end())
        elif req.method == "INVITE":
            self._on_reinvite(req)
        elif req.method in ("OPTIONS", "INFO"):
            self.ep.respond(req, 200, headers=self.server.capability_headers())
        else:
            self.server.reject_method(req)

    def _on_reinvite(self, req: Request) -> None:
        try:
            offer = parse_sdp(req.body)
            chosen = negotiate(offer)
        except SdpError as exc:
            self.ep.respond(req, exc.status)
            return
        rtp = self.tap.rtp
        if chosen.remote_host != "0.0.0.0":
            rtp.set_remote(chosen.remote_host, chosen.remote_port)
        rtp.hold(chosen.on_hold)
        self.sdp_version += 1
        body = build_answer(offer, chosen, host=self.server.public_host, port=rtp.local_port,
                            session_id=self.sdp_session_id, version=self.sdp_version)
        resp = self.ep.respond(req, 200, body=body, headers=[("Contact", self.server.contact),
                                                             ("Content-Type", "application/sdp")])
        self.reinvite_pending = True
        self.ep.spawn(self.ep.retransmit(resp.to_bytes(), self.ep.server_txns_addr(req),
                                         lambda: not self.reinvite_pending, 64 * self.ep.t1_s))

    async def hangup(self, reason: str = "") -> None:
        if self.state != "up":
            return
        self.state = "ending"
        bye = self.dialog.request("BYE", self.ep.new_via(), [("User-Agent", self.server.user_agent)])
        try:
            await self.ep.request(bye, self.dialog.destination())
        except TimeoutError:
            self.log.warning("agent leg: BYE got no answer")
        await self.end()

    async def end(self) -> None:
        if self.state == "ended":
            return
        self.state = "ended"
        if self.dialog is not None:
            self.server.unregister_dialog(self.dialog.key)
        if self.tap is not None:
            await self.tap.close()


async def bridge_transfer(call: "SipCall", target: str, reason: str, context: dict) -> None:
    """Dial the agent line and, once it answers, hand both media streams to a bridge task."""
    leg = AgentLeg(call, target_uri(target, call), context_headers(reason, context))
    dialing = asyncio.ensure_future(leg.dial())
    caller_gone = asyncio.ensure_future(call.ended.wait())
    try:
        await asyncio.wait({dialing, caller_gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        caller_gone.cancel()
    if not dialing.done():
        dialing.cancel()
        with contextlib.suppress(asyncio.CancelledError, TransferFailed):
            await dialing
        return
    dialing.result()   # raises TransferFailed
    if call.state != "confirmed":
        await leg.hangup("caller left")
        return
    call.detached = True
    call.tap.drop_backlog()
    call.bridge_task = call.ep.spawn(run_bridge(call, leg))
    call.log.info("caller bridged to the agent line")


def user_to_user(call_id: str) -> tuple[str, str]:
    """RFC 7433 User-to-User header carrying the service's call id (hex-encoded, as the RFC's
    `encoding=hex` asks), so the agent's phone or CTI can find the call's record."""
    return "User-to-User", f"{call_id.encode('utf-8').hex()};encoding=hex;purpose=call-id"


async def dial_agent(call: "SipCall", target: str, headers: list[tuple[str, str]]) -> AgentLeg:
    """Ring one agent's phone while the caller stays in the call loop (hold music); returns the
    answered leg. Raises TransferFailed (rejected, unreachable, no answer within the transfer
    timeout); cancelling it (ring timeout, caller gone) sends CANCEL."""
    leg = AgentLeg(call, target_uri(target, call), headers)
    await leg.dial()
    return leg


async def connect_leg(call: "SipCall", leg: AgentLeg) -> "asyncio.Task | None":
    """Hand the caller's media to a bridge with an answered agent leg (the call loop is ending)."""
    if call.state != "confirmed" or call.tap is None:
        await leg.hangup("caller left")
        return None
    call.detached = True
    call.tap.drop_backlog()
    call.bridge_task = call.ep.spawn(run_bridge(call, leg))
    call.log.info("caller bridged to the agent's phone")
    return call.bridge_task


async def run_bridge(call: "SipCall", leg: AgentLeg) -> None:
    async def pump(src: MediaTap, dst: MediaTap) -> None:
        while (item := await src.get()) is not None:
            if isinstance(item, str):
                await dst.rtp.send_dtmf(item)
            else:
                await dst.rtp.send(item)

    to_agent = asyncio.create_task(pump(call.tap, leg.tap))
    to_caller = asyncio.create_task(pump(leg.tap, call.tap))
    agent_left = False
    try:
        done, _ = await asyncio.wait({to_agent, to_caller}, return_when=asyncio.FIRST_COMPLETED)
        agent_left = to_caller in done
    finally:   # also on cancellation (server stop): neither leg may be left up
        for task in (to_agent, to_caller):
            task.cancel()
        await asyncio.gather(to_agent, to_caller, return_exceptions=True)
        try:
            if agent_left:
                await call.hangup("agent hung up")
        finally:
            await leg.hangup("caller hung up")
            await leg.end()
            call.log.info("bridge over")
