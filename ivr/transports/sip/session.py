"""One inbound call as the UAS sees it (RFC 3261 13.3, 15; RFC 3264 for hold).

ringing -> answered (200 sent, re-sent until the ACK) -> confirmed (ACK: the handler runs)
-> ending (our BYE in flight) -> ended. The admission slot taken for the call is released
here only if the handler never started; otherwise the handler releases it.
"""

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING

from ivr.transports.base import CallInfo
from ivr.transports.sip.dialog import Dialog
from ivr.transports.sip.media import MediaTap
from ivr.transports.sip.message import Request, new_tag
from ivr.transports.sip.rtp import Codec, RtpSession
from ivr.transports.sip.sdp import (
    DEFAULT_DTMF_PT,
    Negotiated,
    SdpError,
    SessionDescription,
    build_answer,
    build_offer,
    negotiate,
    parse_sdp,
)
from ivr.transports.sip.transport import SipCallTransport, TransferFailed

if TYPE_CHECKING:
    from ivr.transports.sip.server import SipServer

log = logging.getLogger("ivr.sip")
DTMF_INFO_TYPES = ("application/dtmf-relay", "application/dtmf")


class SipCall:
    def __init__(self, server: "SipServer", invite: Request, addr: tuple[str, int], info: CallInfo,
                 offer: SessionDescription | None, chosen: Negotiated | None) -> None:
        self.server, self.ep = server, server.endpoint
        self.invite, self.info = invite, info
        self.offer, self.chosen = offer, chosen
        self.dialog = Dialog.as_uas(invite, addr, new_tag(), server.contact)
        self.log = logging.LoggerAdapter(log, {"call_id": info.call_id})
        self.state = "ringing"
        self.tap: MediaTap | None = None
        self.transport = SipCallTransport(self)
        self.detached = False                 # a bridge owns the media now
        self.handler_started = False
        self.handler_entered = False          # False if the task was cancelled before it ran
        self.handler_task: asyncio.Task | None = None
        self.bridge_task: asyncio.Task | None = None
        self.refer_queue: asyncio.Queue[Request | None] | None = None
        self.reinvite_pending = False
        self.expect_answer_in_ack = chosen is None   # late offer: we offered in the 200
        self.sdp_session_id = secrets.randbelow(2**31)
        self.sdp_version = 0
        self._last_sdp: bytes | None = None
        self._ended = False
        self.end_why = ""                     # why the call ended (SipCallTransport.end_cause reads it)
        self.ended = asyncio.Event()

    # ---- answering ---------------------------------------------------------------------

    async def answer(self) -> None:
        rtp, stage = None, "answering"
        try:
            self.ep.respond(self.invite, 180, to_tag=self.dialog.local_tag, headers=self._dialog_headers())
            if self.server.ring_ms > 0:
                await asyncio.sleep(self.server.ring_ms / 1000)
            if self.state != "ringing":
                return
            chosen = self.chosen
            codec = Codec(chosen.codec, chosen.payload_type, chosen.rate_hz) if chosen else Codec("PCMU", 0)
            rtp = RtpSession(self.server.rtp_host, codec=codec, dtmf_pt=chosen.dtmf_pt if chosen else DEFAULT_DTMF_PT,
                             jitter_ms=self.server.jitter_ms, call_id=self.info.call_id,
                             inactivity_timeout_ms=self.server.rtp_timeout_ms)
            stage = f"opening RTP on {self.server.rtp_host}"
            async with asyncio.timeout(self.server.answer_timeout_ms / 1000):   # a hang is a 500, not a silent wait
                await rtp.open()
            self.tap, stage = MediaTap(rtp), "answering"
            if self.state != "ringing":
                await self.tap.close()
                return
            if chosen:
                self._apply_media(chosen)
            self.state = "answered"
            self.server.answered(self)
            self.server.health.ok()
            resp = self.ep.respond(self.invite, 200, to_tag=self.dialog.local_tag, body=self._local_sdp(),
                                   headers=[*self._dialog_headers(), ("Content-Type", "application/sdp")])
            self.log.info("answered %s -> %s from %s (%s)", self.info.caller, self.info.called, self.info.remote,
                          chosen.codec if chosen else "late offer")
            addr = self.ep.server_txns_addr(self.invite)
            acked = await self.ep.retransmit(resp.to_bytes(), addr, lambda: self.state != "answered",
                                             64 * self.ep.t1_s)
            if not acked:   # RFC 3261 13.3.1.4: no ACK, the session is over
                self.log.warning("no ACK for our 200 OK; hanging up")
                await self.hangup("no ACK")
        except Exception as exc:
            self.log.exception("answering failed")
            if self.state == "ringing":
                self.ep.respond(self.invite, 500, to_tag=self.dialog.local_tag)
                if stage != "answering":   # the node's own fault (its RTP socket), not what this caller sent:
                    # a caller's SDP the node cannot use (a host name that does not resolve) must not take it
                    # out, or a few such INVITEs, each moved on by the proxy, would take out every node
                    self.server.health.failed(f"{stage}: {type(exc).__name__} {exc}".strip())
            if rtp is not None and self.tap is None:
                await rtp.close()          # opened (or half) when the answer timed out
            await self.end("answering failed")

    def cancel(self) -> bool:
        """CANCEL before the answer: 487 for the INVITE."""
        if self.state != "ringing":
            return False
        self.ep.respond(self.invite, 487, to_tag=self.dialog.local_tag)
        self.state = "cancelled"
        self.ep.spawn(self.end("cancelled by the caller"))
        return True

    def _dialog_headers(self) -> list[tuple[str, str]]:
        """For the responses that make the dialog: the INVITE's Record-Route copied in order (RFC 3261
        12.1.1), so the caller's ACK and BYE pass through a record-routing proxy (Kamailio) too."""
        return [*(("Record-Route", rr) for rr in self.invite.get_all("record-route")), *self._contact()]

    def _contact(self) -> list[tuple[str, str]]:
        return [("Contact", self.server.contact), *self.server.capability_headers()]

    def _apply_media(self, chosen: Negotiated) -> None:
        rtp = self.tap.rtp
        if chosen.remote_host != "0.0.0.0":
            rtp.set_remote(chosen.remote_host, chosen.remote_port)
        if (chosen.codec, chosen.dtmf_pt) != (rtp.codec.name, rtp.dtmf_pt):
            rtp.set_codec(Codec(chosen.codec, chosen.payload_type, chosen.rate_hz), chosen.dtmf_pt)
        rtp.hold(chosen.on_hold)
        if chosen.on_hold:
            self.log.info("caller put the call on hold (%s)", chosen.direction)
        self.chosen = chosen

    def _local_sdp(self, offer_again: bool = False) -> bytes:
        host, port = self.server.public_host, self.tap.rtp.local_port

        def build(version: int) -> bytes:
            if self.chosen is None or offer_again:
                return build_offer(host=host, port=port, session_id=self.sdp_session_id, version=version)
            return build_answer(self.offer, self.chosen, host=host, port=port, session_id=self.sdp_session_id,
                                version=version)

        body = build(self.sdp_version)
        if self._last_sdp is not None and body != self._last_sdp:   # RFC 3264 8: changed SDP, new version
            self.sdp_version += 1
            body = build(self.sdp_version)
        self._last_sdp = body
        return body

    # ---- in-dialog requests ------------------------------------------------------------

    def on_request(self, req: Request, addr: tuple[str, int]) -> None:
        if req.method == "ACK":
            self._on_ack(req)
            return
        if not self.dialog.accept_remote_cseq(req):
            self.ep.respond(req, 500, "CSeq Out Of Order")
            return
        if req.method == "BYE":
            self.ep.respond(req, 200)
            self.log.info("caller hung up")
            self.ep.spawn(self.end("caller hung up"))
        elif req.method == "INVITE":
            self._on_reinvite(req, addr)
        elif req.method == "NOTIFY":
            event = (req.get("event") or "").split(";")[0].strip().lower()
            if event != "refer":
                self.ep.respond(req, 489, "Bad Event")
                return
            self.ep.respond(req, 200)
            if self.refer_queue is not None:
                self.refer_queue.put_nowait(req)
        elif req.method == "INFO":
            self.ep.respond(req, 200)
            self._on_info(req)
        elif req.method == "OPTIONS":
            self.ep.respond(req, 200, headers=self.server.capability_headers())
        else:
            self.server.reject_method(req)

    def _on_ack(self, ack: Request) -> None:
        if self.state == "answered" and ack.cseq[0] == self.invite.cseq[0]:
            if self.expect_answer_in_ack and not self._take_answer(ack):
                self.state = "confirmed"
                self.ep.spawn(self.hangup("no usable SDP answer in the ACK"))
                return
            self.state = "confirmed"
            self.handler_started = True   # from here the handler owns the admission slot
            self.handler_task = self.ep.spawn(self._run_handler())
        elif self.reinvite_pending:
            self.reinvite_pending = False
            if self.expect_answer_in_ack:
                self._take_answer(ack)

    def _take_answer(self, ack: Request) -> bool:
        self.expect_answer_in_ack = False
        try:
            answer = parse_sdp(ack.body)
            chosen = negotiate(answer)
        except SdpError as exc:
            self.log.warning("SDP answer in ACK unusable: %s", exc.reason)
            return False
        self.offer = answer
        self._apply_media(chosen)
        return True

    def _on_reinvite(self, req: Request, addr: tuple[str, int]) -> None:
        if self.reinvite_pending:
            self.ep.respond(req, 491, headers=[("Retry-After", "1")])
            return
        if self.state != "confirmed":
            self.ep.respond(req, 500, headers=[("Retry-After", "1")])
            return
        self.dialog.update_target(req, addr)
        if req.body:
            try:
                offer = parse_sdp(req.body)
                chosen = negotiate(offer)
            except SdpError as exc:
                self.ep.respond(req, exc.status, headers=[("Warning", f'304 ivr "{exc.reason[:80]}"')])
                return
            self.offer = offer
            self._apply_media(chosen)
            body = self._local_sdp()
        else:   # an offer-less re-INVITE: we offer, the answer comes in the ACK
            self.expect_answer_in_ack = True
            body = self._local_sdp(offer_again=True)
        resp = self.ep.respond(req, 200, body=body, headers=[*self._contact(), ("Content-Type", "application/sdp")])
        self.reinvite_pending = True
        self.ep.spawn(self.ep.retransmit(resp.to_bytes(), self.ep.server_txns_addr(req),
                                         lambda: not self.reinvite_pending, 64 * self.ep.t1_s))

    def _on_info(self, req: Request) -> None:
        kind = (req.get("content-type") or "").split(";")[0].strip().lower()
        if kind not in DTMF_INFO_TYPES or self.tap is None:
            return
        text = req.body.decode("utf-8", "replace").strip()
        for line in text.splitlines():
            name, _, value = line.partition("=")
            if kind == "application/dtmf" or name.strip().lower() == "signal":
                key = (value or name).strip()[:1].upper()
                if key and key in "0123456789*#ABCD":
                    self.tap.push_key(key)
                return

    # ---- the call ----------------------------------------------------------------------

    async def _run_handler(self) -> None:
        self.handler_entered = True
        await self.server.life.run(self.transport, self.info, close=self._after_handler)

    async def _after_handler(self) -> None:
        if self.bridge_task is not None:
            await asyncio.gather(self.bridge_task, return_exceptions=True)
        if self.state == "confirmed":
            await self.hangup("call ended")

    async def hangup(self, reason: str = "") -> None:
        if self.state not in ("confirmed", "answered"):
            return
        drain = self.state == "confirmed" and not self.detached
        self.state = "ending"
        if drain and self.tap is not None:
            await self.tap.drain_outbound()
        if self._ended:
            return
        text = reason.replace('"', "'").replace("\\", "/")[:100]
        bye = self.dialog.request("BYE", self.ep.new_via(), [("Reason", f'Q.850;cause=16;text="{text}"'),
                                                             ("User-Agent", self.server.user_agent)])
        try:
            resp = await self.ep.request(bye, self.dialog.destination())
            self.log.info("hung up (%s): BYE answered %d", reason, resp.status)
        except TimeoutError:
            self.log.warning("hung up (%s): BYE got no answer", reason)
        await self.end(f"we hung up: {reason}")

    async def transfer(self, target: str, reason: str, context: dict) -> None:
        from ivr.transports.sip.bridge import bridge_transfer
        from ivr.transports.sip.refer import refer_transfer

        if self.state != "confirmed" or self.tap is None:
            return
        await self.tap.drain_outbound()
        self.tap.discarding = True   # nobody listens while we try: no backlog for later
        errors: list[str] = []
        try:
            if self.server.transfer_mode in ("refer", "auto"):
                try:
                    await refer_transfer(self, target, reason, context)
                    return
                except TransferFailed as exc:
                    self.log.warning("REFER transfer to %s failed: %s", target, exc)
                    errors.append(f"REFER: {exc}")
                if self.server.transfer_mode == "refer":
                    raise TransferFailed(errors[0])
            if self.state != "confirmed":
                return
            try:
                await bridge_transfer(self, target, reason, context)
            except TransferFailed as exc:
                self.log.warning("bridge to %s failed: %s", target, exc)
                errors.append(f"bridge: {exc}")
                raise TransferFailed("; ".join(errors)) from exc
        finally:
            if self.tap is not None:
                self.tap.discarding = False

    async def end(self, why: str) -> None:
        if self._ended:
            return
        self._ended = True
        self.end_why = why
        if self.state != "cancelled":
            self.state = "ended"
        self.log.info("call over: %s", why)
        self.server.forget(self)
        if not self.handler_started:
            self.server.life.release_unrun(self.info)
        elif self.handler_task is not None and self.handler_task.cancelled() and not self.handler_entered:
            self.server.life.release_unrun(self.info)   # stopped before the handler could take the slot
        if self.refer_queue is not None:
            self.refer_queue.put_nowait(None)
        if self.tap is not None:
            await self.tap.close()
        self.ended.set()
