"""A SIP caller (UAC), for tests and load generation.

Places one call over UDP: INVITE with an SDP offer (PCMU/PCMA + telephone-event), one digest
challenge answered when credentials are given, ACK, then G.711 media through an RtpSession:
the caller audio on an absolute 20 ms schedule, keys as RFC 4733 events at their times, and a
BYE when the audio (plus a tail) is over. A BYE from the IVR is answered and ends the call; a
busy answer (486, 503, ...) is a result, not an error. What the IVR sends is placed on the
caller's clock as it arrives (see timeline.py), so latencies mean what they mean for the
WebSocket and AudioSocket clients, and the result has the same shape.
"""

import asyncio
import contextlib
import ipaddress
import logging
import secrets
from collections.abc import Callable

import numpy as np

from ivr.audio.frames import FRAME_MS, FRAME_SAMPLES, split_frames
from ivr.audio.g711 import alaw_decode, mulaw_decode
from ivr.clients.timeline import CallClock, CallResult, Timeline, finish_result
from ivr.transports.sip.dialog import Dialog
from ivr.transports.sip.digest import authorization
from ivr.transports.sip.endpoint import SipEndpoint
from ivr.transports.sip.guard import SourceGuard
from ivr.transports.sip.message import Request, Response, new_call_id, new_tag
from ivr.transports.sip.rtp import PCMA, PCMU, Codec, RtpSession, parse_rtp
from ivr.transports.sip.sdp import DEFAULT_DTMF_PT, SdpError, build_offer, negotiate, parse_sdp
from ivr.transports.sip.uri import SipUri

log = logging.getLogger("ivr.clients.sip")
USER_AGENT = "ivr-caller/0.1"
BUSY_CODES = (480, 486, 503, 600, 603)
CODECS = {"PCMU": PCMU, "PCMA": PCMA}
_DECODE = {PCMU.payload_type: mulaw_decode, PCMA.payload_type: alaw_decode}


class SipCallFailed(Exception):
    """The IVR refused the call (other than busy), or its answer was unusable."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}" if status else reason)
        self.status, self.reason = status, reason


class _CallerRtp(RtpSession):
    """An RtpSession that also hands over each G.711 packet from the peer the moment it arrives.

    The caller's timeline places audio by arrival, as the other clients do; the session's own
    playout (`inbound()`) would deliver it ~60 ms + the jitter delay later and skew every latency."""

    on_audio: Callable[[np.ndarray], None] | None = None
    peer: tuple[str, int] | None = None

    def _received(self, data: bytes, addr: tuple) -> None:
        if self.peer is None:   # the IVR's RTP can beat its 200 OK here: not ours to hear yet
            return
        super()._received(data, addr)
        if self.on_audio is None or (addr[0], addr[1]) != self.peer:
            return
        pkt = parse_rtp(data)
        if pkt is not None and pkt.payload_type in _DECODE:
            self.on_audio(_DECODE[pkt.payload_type](pkt.payload))


async def run_sip_call(host: str, port: int, caller_audio_16k: np.ndarray, *, to_user: str = "ivr",
                       from_user: str = "loadgen", dtmf: list[tuple[int, str]] = (), tail_ms: int = 3000,
                       utterance_ends_ms: list[int] | None = None, codec: str = "PCMU",
                       credentials: tuple[str, str] | None = None, timeout_s: float = 10.0,
                       local_host: str = "127.0.0.1") -> CallResult:
    """One call to sip:`to_user`@`host`:`port`. `dtmf` is [(at_ms, key)]; `utterance_ends_ms` says
    where the caller's utterances end (default: an energy detector finds them).

    `close_reason`: "" when the caller hung up, "bye from ivr", or "busy 486" (503, ...) when the
    IVR refused the call as busy (no audio then). Any other refusal raises SipCallFailed; no
    final answer within `timeout_s` raises TimeoutError (after a CANCEL if it rang).
    """
    if codec not in CODECS:
        raise ValueError(f"codec must be PCMU or PCMA, not {codec!r}")
    for name, value in (("host", host), ("local_host", local_host)):
        try:
            ipaddress.IPv4Address(value)
        except ValueError as exc:
            raise ValueError(f"{name} must be an IPv4 address (no DNS here), not {value!r}") from exc
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    presses = sorted((int(at), str(key)) for at, key in dtmf)
    audio = np.asarray(caller_audio_16k, np.int16)
    frames = list(split_frames(np.concatenate([audio, np.zeros(tail_ms * FRAME_SAMPLES // FRAME_MS, np.int16)])))
    caller = _SipCaller((host, port), to_user, from_user, CODECS[codec], credentials, timeout_s, local_host)
    try:
        await caller.open()
        if await caller.invite():
            await caller.play(frames, presses)
            await caller.hang_up()
    finally:
        await caller.close()
    result = caller.result
    end_ms = 0.0
    if caller.clock is not None:
        result.sent_ms = caller.clock.frames_sent * FRAME_MS
        end_ms = caller.end_ms
    return finish_result(result, caller.timeline, audio, end_ms, utterance_ends_ms, presses)


class _SipCaller:
    def __init__(self, dest: tuple[str, int], to_user: str, from_user: str, codec: Codec,
                 credentials: tuple[str, str] | None, timeout_s: float, local_host: str) -> None:
        self.dest, self.codec, self.credentials = dest, codec, credentials
        self.timeout_s, self.local_host = timeout_s, local_host
        self.to_uri = str(SipUri("sip", to_user, dest[0], dest[1]))
        self.from_user = from_user
        self.call_id = new_call_id(local_host)
        self.log = logging.LoggerAdapter(log, {"call_id": self.call_id})
        self.ep = SipEndpoint(local_host, 0, on_request=self._on_request, guard=SourceGuard(None, 0),
                              user_agent=USER_AGENT)
        self.rtp = _CallerRtp(local_host, codec=codec, dtmf_pt=DEFAULT_DTMF_PT, inactivity_timeout_ms=0,
                              call_id=self.call_id)
        self.rtp.on_audio = self._heard
        self.result = CallResult(np.zeros(0, np.int16))
        self.timeline = Timeline()
        self.clock: CallClock | None = None
        self.dialog: Dialog | None = None
        self.ended = asyncio.Event()     # the IVR hung up
        self.up = False                  # a dialog we still have to end
        self.end_ms = 0.0

    async def open(self) -> None:
        await self.ep.open()
        await self.rtp.open()

    async def close(self) -> None:
        if self.up and self.dialog is not None:   # cancelled mid-call: a last BYE, not waited for
            self.ep.send(self.dialog.request("BYE", self.ep.new_via()), self.dialog.destination())
        await self.rtp.close()
        self.ep.close()

    # ---- signalling --------------------------------------------------------------------

    async def invite(self) -> bool:
        """Place the call: True once it is up, False when the IVR answered busy."""
        offer = build_offer(host=self.local_host, port=self.rtp.local_port, session_id=secrets.randbelow(2**31),
                            version=0, codecs=(self.codec.name, *(c for c in CODECS if c != self.codec.name)))
        from_tag, auth = new_tag(), None
        for cseq in (1, 2):
            invite = self._build_invite(from_tag, cseq, offer, auth)
            provisional: list[int] = []

            def on_provisional(resp: Response, seen: list[int] = provisional) -> None:
                seen.append(resp.status)
                self._note(resp)

            try:
                resp = await self.ep.request(invite, self.dest, on_provisional=on_provisional,
                                             timeout_s=self.timeout_s)
            except TimeoutError as exc:
                if provisional:   # a CANCEL only once the IVR has answered at all (RFC 3261 9.1)
                    await self._cancel(invite)
                raise TimeoutError(f"no final answer to INVITE {self.to_uri} within {self.timeout_s:g} s"
                                   + (" (cancelled)" if provisional else "")) from exc
            self._note(resp)
            auth = self._answer_challenge(invite, resp) if cseq == 1 else None
            if auth is None:
                break
        if resp.status in BUSY_CODES:
            self.result.close_reason = f"busy {resp.status}"
            self.log.info("sip caller: %s answered busy (%d)", self.to_uri, resp.status)
            return False
        if resp.status >= 300:
            raise SipCallFailed(resp.status, resp.reason)
        self.dialog = Dialog.as_uac(invite, resp, self.dest)
        ack = self.dialog.request("ACK", self.ep.new_via(), cseq=invite.cseq[0],
                                  headers=[(n, v) for n, v in invite.headers if n.lower().endswith("authorization")])
        self.ep.send(ack, self.dialog.destination())
        self.ep.set_ack(invite, ack, self.dialog.destination())
        self.up = True
        try:
            chosen = negotiate(parse_sdp(resp.body))
        except SdpError as exc:
            await self.hang_up()
            raise SipCallFailed(resp.status, f"the IVR's SDP answer is unusable: {exc.reason}") from exc
        self.rtp.set_codec(Codec(chosen.codec, chosen.payload_type, chosen.rate_hz), chosen.dtmf_pt)
        self.rtp.set_remote(chosen.remote_host, chosen.remote_port)
        self.rtp.peer = (chosen.remote_host, chosen.remote_port)
        self.log.info("sip caller: %s answered (%s)", self.to_uri, chosen.codec)
        return True

    def _build_invite(self, from_tag: str, cseq: int, offer: bytes, auth: tuple[str, str] | None) -> Request:
        me = SipUri("sip", self.from_user, self.local_host, self.ep.port)
        invite = Request("INVITE", self.to_uri)
        invite.add("Via", self.ep.new_via())
        invite.add("Max-Forwards", "70")
        invite.add("From", f"<{me}>;tag={from_tag}")
        invite.add("To", f"<{self.to_uri}>")
        invite.add("Call-ID", self.call_id)
        invite.add("CSeq", f"{cseq} INVITE")
        invite.add("Contact", f"<{me}>")
        invite.add("User-Agent", USER_AGENT)
        if auth:
            invite.add(*auth)
        invite.add("Content-Type", "application/sdp")
        invite.body = offer
        return invite

    def _answer_challenge(self, invite: Request, resp: Response) -> tuple[str, str] | None:
        proxy = resp.status == 407
        challenge = resp.get("proxy-authenticate" if proxy else "www-authenticate")
        if resp.status not in (401, 407) or not self.credentials or not challenge:
            return None
        try:
            return ("Proxy-Authorization" if proxy else "Authorization",
                    authorization(challenge, method="INVITE", uri=invite.uri, user=self.credentials[0],
                                  password=self.credentials[1]))
        except ValueError:   # a challenge we cannot answer: the 401/407 stands
            return None

    async def _cancel(self, invite: Request) -> None:
        cancel = Request("CANCEL", invite.uri)
        for name in ("Via", "From", "To", "Call-ID"):
            cancel.add(name, invite.raw(name) or "")
        cancel.add("CSeq", f"{invite.cseq[0]} CANCEL")
        cancel.add("Max-Forwards", "70")
        with contextlib.suppress(TimeoutError):
            await self.ep.request(cancel, self.dest, timeout_s=self.timeout_s)

    def _note(self, resp: Response) -> None:
        self.result.events.append({"event": "response", "status": resp.status, "reason": resp.reason,
                                   "method": resp.cseq[1]})

    def _on_request(self, req: Request, addr: tuple[str, int]) -> None:
        dialog = self.dialog
        if dialog is None or (req.call_id, req.to.tag, req.from_.tag or "") != dialog.key:
            if req.method != "ACK":
                self.ep.respond(req, 481)
            return
        if req.method == "ACK":
            return
        if not dialog.accept_remote_cseq(req):
            self.ep.respond(req, 500, "CSeq Out Of Order")
            return
        self.result.events.append({"event": "request", "method": req.method})
        if req.method == "BYE":
            self.ep.respond(req, 200)
            self.up = False
            if not self.result.close_reason:
                self.result.close_reason = "bye from ivr"
            self.log.info("sip caller: the IVR hung up")
            self.ended.set()
        elif req.method in ("OPTIONS", "INFO"):
            self.ep.respond(req, 200)
        else:   # a caller that neither follows transfers nor renegotiates
            self.ep.respond(req, 405, headers=[("Allow", "ACK, BYE, OPTIONS, INFO")])

    async def hang_up(self) -> None:
        if not self.up or self.dialog is None:
            return
        self.up = False
        bye = self.dialog.request("BYE", self.ep.new_via(), [("User-Agent", USER_AGENT)])
        try:
            resp = await self.ep.request(bye, self.dialog.destination(), timeout_s=self.timeout_s)
            self._note(resp)
        except TimeoutError:
            self.result.events.append({"event": "bye unanswered"})
            self.log.warning("sip caller: BYE got no answer within %g s", self.timeout_s)

    # ---- media -------------------------------------------------------------------------

    def _heard(self, pcm_8k: np.ndarray) -> None:
        if self.clock is not None:   # before the first caller frame nothing has been heard
            self.result.media_messages += 1
            self.timeline.add(pcm_8k, self.clock.now_ms())

    async def play(self, frames: list[np.ndarray], presses: list[tuple[int, str]]) -> None:
        """Caller frame i is queued at i*20 ms with one frame of lead, so the RTP send clock always
        finds the next frame waiting; a key's event packets take the place of the frames they cover."""
        rtp, keys = self.rtp, list(presses)
        self.clock = clock = CallClock(True)
        key_task: asyncio.Task | None = None
        try:
            if frames:
                await rtp.send(frames[0])
            for i in range(len(frames)):
                await clock.wait_for_frame(i)
                if self.ended.is_set():
                    break
                idle = key_task is None or key_task.done()
                if keys and keys[0][0] <= i * FRAME_MS and idle:
                    key_task = asyncio.create_task(rtp.send_dtmf(keys.pop(0)[1]))
                    idle = False
                if i + 1 < len(frames) and idle:
                    await rtp.send(frames[i + 1])
                clock.frames_sent = i + 1
            if key_task is not None and not self.ended.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(key_task), self.timeout_s)
            if not self.ended.is_set():   # the last frame (and what it drew) is still on its way
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.ended.wait(), 2 * FRAME_MS / 1000)
        finally:
            self.end_ms = clock.now_ms()
            if key_task is not None:
                key_task.cancel()
                await asyncio.gather(key_task, return_exceptions=True)
