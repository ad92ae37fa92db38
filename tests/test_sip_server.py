"""SipServer against a tiny SIP user agent written here on raw UDP sockets (127.0.0.1 only).

The test peer builds requests by hand, answers what the server sends (REFER, BYE, INVITE to
the "agent line"), and carries real RTP (G.711 packets) so the media path is exercised too.
"""

import asyncio
import contextlib
import secrets
import struct
from urllib.parse import unquote

import numpy as np
import pytest

from ivr.audio.g711 import mulaw_decode, mulaw_encode
from ivr.transports.sip.digest import DigestAuthenticator, authorization
from ivr.transports.sip.message import Request, Response, SipParseError, make_response, new_branch, parse_message
from ivr.transports.sip.refer import decode_context
from ivr.transports.sip.rtp import build_rtp, parse_rtp
from ivr.transports.sip.server import SipServer
from ivr.transports.sip.transport import TransferFailed
from ivr.transports.sip.uri import parse_name_addr

HOST = "127.0.0.1"


def run(coro, timeout_s: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


# ---- the test peer ------------------------------------------------------------------------


class Peer(asyncio.DatagramProtocol):
    """A raw SIP socket: send text, wait for parsed messages that match."""

    def __init__(self) -> None:
        self.pending: list = []
        self.arrived = asyncio.Event()
        self.transport = None
        self.port = 0

    @classmethod
    async def open(cls) -> "Peer":
        loop = asyncio.get_running_loop()
        transport, peer = await loop.create_datagram_endpoint(cls, local_addr=(HOST, 0))
        peer.transport = transport
        peer.port = transport.get_extra_info("sockname")[1]
        return peer

    def datagram_received(self, data, addr) -> None:
        try:
            msg = parse_message(data)
        except SipParseError as exc:   # e.g. a 400 that echoes the bad CSeq we sent
            msg = exc.message
        self.pending.append((msg, addr))
        self.arrived.set()

    def send(self, msg, addr) -> None:
        self.transport.sendto(msg if isinstance(msg, bytes) else msg.to_bytes(), addr)

    async def next(self, pred=lambda m: True, timeout_s: float = 3.0):
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while True:
            for i, (msg, addr) in enumerate(self.pending):
                if pred(msg):
                    del self.pending[i]
                    self.last_addr = addr
                    return msg
            self.arrived.clear()
            remaining = end - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"nothing matching arrived; pending: {[m for m, _ in self.pending]}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), remaining)

    async def response(self, status: int | None = None, method: str | None = None, timeout_s: float = 3.0):
        return await self.next(lambda m: isinstance(m, Response) and (status is None or m.status == status)
                               and (method is None or m.cseq[1] == method), timeout_s)

    async def request(self, method: str, timeout_s: float = 3.0) -> Request:
        return await self.next(lambda m: isinstance(m, Request) and m.method == method, timeout_s)

    def close(self) -> None:
        self.transport.close()


class Rtp(asyncio.DatagramProtocol):
    """Test-side RTP: counts what arrives, sends a tone."""

    def __init__(self) -> None:
        self.packets: list = []
        self.port = 0
        self.seq, self.ts, self.ssrc = 1, 1000, secrets.randbits(32)

    @classmethod
    async def open(cls) -> "Rtp":
        loop = asyncio.get_running_loop()
        transport, rtp = await loop.create_datagram_endpoint(cls, local_addr=(HOST, 0))
        rtp.transport = transport
        rtp.port = transport.get_extra_info("sockname")[1]
        return rtp

    def datagram_received(self, data, addr) -> None:
        self.packets.append((asyncio.get_running_loop().time(), parse_rtp(data)))

    def loud_packets(self, pt: int = 0) -> int:
        return sum(1 for _, p in self.packets if p and p.payload_type == pt
                   and np.abs(mulaw_decode(p.payload).astype(np.int32)).mean() > 500)

    async def send_tone(self, dest, frames: int = 50, hz: float = 440.0) -> None:
        t = np.arange(160) / 8000
        for i in range(frames):
            pcm = (8000 * np.sin(2 * np.pi * hz * (t + i * 0.02))).astype(np.int16)
            self.transport.sendto(build_rtp(0, self.seq, self.ts, self.ssrc, mulaw_encode(pcm), marker=i == 0), dest)
            self.seq, self.ts = self.seq + 1, self.ts + 160
            await asyncio.sleep(0.02)

    def send_key(self, dest, key: str) -> None:
        """One RFC 4733 event: two updates and the end packet three times, as phones send it."""
        code = "0123456789*#".index(key)
        for i, end in enumerate((False, False, True, True, True)):
            payload = struct.pack("!BBH", code, 0x80 if end else 0, 160 * min(i + 1, 3))
            self.transport.sendto(build_rtp(101, self.seq, self.ts, self.ssrc, payload, marker=i == 0), dest)
            self.seq += 1
        self.ts += 480

    def close(self) -> None:
        self.transport.close()


def sdp(port: int, formats: str = "0 8 101", direction: str = "sendrecv", host: str = HOST) -> bytes:
    lines = ["v=0", f"o=test 1 1 IN IP4 {HOST}", "s=-", f"c=IN IP4 {host}", "t=0 0",
             f"m=audio {port} RTP/AVP {formats}", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
             "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=ptime:20", f"a={direction}"]
    return ("\r\n".join(lines) + "\r\n").encode()


class Dialer:
    """The caller's side of one dialog, built by hand."""

    def __init__(self, peer: Peer, server: tuple[str, int], user: str = "alice", called: str = "ivr") -> None:
        self.peer, self.server = peer, server
        self.call_id = f"{secrets.token_hex(8)}@{HOST}"
        self.tag = secrets.token_hex(4)
        self.user, self.called = user, called
        self.cseq = 0
        self.to = f"<sip:{called}@{HOST}:{server[1]}>"
        self.invite: Request | None = None

    def build(self, method: str, *, body: bytes = b"", extra=(), branch: str | None = None,
              cseq: int | None = None, to: str | None = None) -> Request:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        req = Request(method, f"sip:{self.called}@{HOST}:{self.server[1]}")
        req.add("Via", f"SIP/2.0/UDP {HOST}:{self.peer.port};branch={branch or new_branch()};rport")
        req.add("Max-Forwards", "70")
        req.add("From", f'"Alice" <sip:{self.user}@{HOST}:{self.peer.port}>;tag={self.tag}')
        req.add("To", to or self.to)
        req.add("Call-ID", self.call_id)
        req.add("CSeq", f"{cseq} {method}")
        req.add("Contact", f"<sip:{self.user}@{HOST}:{self.peer.port}>")
        for name, value in extra:
            req.add(name, value)
        if body:
            req.add("Content-Type", "application/sdp")
        req.body = body
        return req

    def send_invite(self, body: bytes, extra=()) -> Request:
        self.invite = self.build("INVITE", body=body, extra=extra)
        self.peer.send(self.invite, self.server)
        return self.invite

    async def call(self, rtp_port: int, extra=()) -> Response:
        """INVITE, collect 100/180/200, ACK. Returns the 200."""
        self.send_invite(sdp(rtp_port), extra)
        ok = await self.peer.response(200, "INVITE")
        self.to = ok.raw("to")
        self.ack(ok)
        return ok

    def ack(self, resp: Response, body: bytes = b"") -> None:
        """ACK a final response: a non-2xx one in the INVITE's transaction (same branch)."""
        branch = self.invite.top_via.branch if resp.status >= 300 else None
        ack = self.build("ACK", cseq=self.invite.cseq[0], branch=branch, body=body)
        ack.set("To", resp.raw("to"))
        self.peer.send(ack, self.server)

    def in_dialog(self, method: str, **kw) -> Request:
        req = self.build(method, to=self.to, **kw)
        self.peer.send(req, self.server)
        return req

    def reply(self, req: Request, status: int, **kw) -> None:
        self.peer.send(make_response(req, status, **kw), self.peer.last_addr)


def rtp_port_of(msg) -> int:
    line = next(x for x in msg.body.decode().splitlines() if x.startswith("m=audio"))
    return int(line.split()[1])


# ---- server fixtures ----------------------------------------------------------------------


class Slots:
    def __init__(self, limit: int = 4) -> None:
        self.limit, self.used, self.released = limit, 0, 0

    def admit(self, info) -> bool:
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def release(self, info) -> None:
        self.used -= 1
        self.released += 1


class Handler:
    """A call handler that echoes audio, records keys, and follows a script at a key."""

    def __init__(self, slots: Slots, on_key=None) -> None:
        self.slots, self.on_key = slots, on_key
        self.calls: list = []
        self.frames = 0
        self.keys = ""
        self.done = asyncio.Event()
        self.errors: list[Exception] = []

    async def __call__(self, transport, info) -> None:
        self.calls.append(info)
        try:
            async for item in transport.inbound():
                if isinstance(item, str):
                    self.keys += item
                    if self.on_key:
                        await self.on_key(transport, item)
                        return
                    continue
                self.frames += 1
                await transport.send(item)
        except TransferFailed as exc:
            self.errors.append(exc)
        finally:
            self.slots.release(info)
            self.done.set()


async def start_server(**kw) -> tuple[SipServer, Handler, Slots]:
    slots = kw.pop("slots", None) or Slots()
    handler = Handler(slots, kw.pop("on_key", None))
    server = SipServer(HOST, 0, handler=handler, admission=slots, t1_ms=kw.pop("t1_ms", 100), **kw)
    await server.start()
    return server, handler, slots


def send_key(rtp: Rtp, dest, key: str = "5") -> None:
    rtp.send_key(dest, key)


# ---- tests --------------------------------------------------------------------------------


def test_options_answers_capabilities():
    async def go():
        server, _, _ = await start_server()
        peer = await Peer.open()
        dialer = Dialer(peer, (HOST, server.port))
        peer.send(dialer.build("OPTIONS"), (HOST, server.port))
        resp = await peer.response(200, "OPTIONS")
        peer.close()
        await server.stop(0)
        return resp

    resp = run(go())
    assert "INVITE" in resp.raw("allow") and "BYE" in resp.raw("allow")
    assert "application/sdp" in resp.raw("accept")
    assert resp.to.tag is None or resp.to.tag   # a tag is optional for OPTIONS


def test_call_answer_media_and_caller_bye():
    async def go():
        server, handler, slots = await start_server()
        peer, rtp = await Peer.open(), await Rtp.open()
        dialer = Dialer(peer, (HOST, server.port), user="5551234", called="hotline")
        dialer.send_invite(sdp(rtp.port), extra=[("X-Account", "42")])
        trying = await peer.response(100)
        ringing = await peer.response(180)
        ok = await peer.response(200, "INVITE")
        dialer.to = ok.raw("to")
        dialer.ack(ok)
        media = (HOST, rtp_port_of(ok))
        await rtp.send_tone(media, frames=40)
        send_key(rtp, media, "5")
        await asyncio.sleep(0.3)
        active = server.active_calls
        dialer.in_dialog("BYE")
        bye_ok = await peer.response(200, "BYE")
        await asyncio.wait_for(handler.done.wait(), 3)
        await asyncio.sleep(0.05)
        result = (trying, ringing, ok, bye_ok, active, server.active_calls, handler, slots, rtp.loud_packets())
        peer.close()
        rtp.close()
        await server.stop(0)
        return result

    trying, ringing, ok, bye_ok, active, after, handler, slots, loud = run(go())
    assert trying.to.tag is None and ringing.to.tag and ok.to.tag == ringing.to.tag
    body = ok.body.decode()
    assert "c=IN IP4 127.0.0.1" in body and "a=rtpmap:0 PCMU/8000" in body and "telephone-event" in body
    assert ok.get("content-type") == "application/sdp"
    assert parse_name_addr(ok.get("contact")).uri.host == HOST
    info = handler.calls[0]
    assert (info.kind, info.caller, info.called) == ("sip", "5551234", "hotline")
    assert info.params["x-account"] == "42" and info.remote.startswith("127.0.0.1:")
    assert handler.keys == "5"                     # RFC 4733 event reached the call loop
    assert handler.frames >= 30                    # 20 ms frames clocked by the RTP session
    assert loud >= 20                              # the handler's echo came back as RTP
    assert (active, after) == (1, 0)
    assert bye_ok.status == 200 and slots.used == 0 and slots.released == 1


def test_handler_hangup_sends_bye():
    async def hang_up(transport, key):
        await transport.hangup("flow ended")

    async def go():
        server, handler, slots = await start_server(on_key=hang_up)
        peer, rtp = await Peer.open(), await Rtp.open()
        dialer = Dialer(peer, (HOST, server.port))
        ok = await dialer.call(rtp.port)
        await asyncio.sleep(0.1)
        send_key(rtp, (HOST, rtp_port_of(ok)), "#")
        bye = await peer.request("BYE")
        dialer.reply(bye, 200)
        await asyncio.wait_for(handler.done.wait(), 3)
        await asyncio.sleep(0.1)
        result = (bye, server.active_calls, slots.used)
        peer.close()
        rtp.close()
        await server.stop(0)
        return result

    bye, active, used = run(go())
    assert bye.call_id and "flow ended" in bye.get("reason")
    assert (active, used) == (0, 0)


def test_cancel_before_answer():
    async def go():
        server, handler, slots = await start_server(ring_ms=2000)
        peer = await Peer.open()
        dialer = Dialer(peer, (HOST, server.port))
        invite = dialer.send_invite(sdp(40000))
        await peer.response(180)
        cancel = dialer.build("CANCEL", cseq=invite.cseq[0], branch=invite.top_via.branch)
        peer.send(cancel, (HOST, server.port))
        cancel_ok = await peer.response(200, "CANCEL")
        terminated = await peer.response(487, "INVITE")
        dialer.ack(terminated)
        await asyncio.sleep(0.2)
        result = (cancel_ok, terminated, server.active_calls, slots.used, slots.released, handler.calls)
        peer.close()
        await server.stop(0)
        return result

    cancel_ok, terminated, active, used, released, calls = run(go())
    assert cancel_ok.status == 200 and terminated.status == 487
    assert (active, used, released, calls) == (0, 0, 1, [])


def test_unknown_dialog_and_methods():
    async def go():
        server, _, _ = await start_server()
        peer = await Peer.open()
        dialer = Dialer(peer, (HOST, server.port))
        dialer.to = f"<sip:ivr@{HOST}>;tag=nosuchtag"
        dialer.in_dialog("BYE")
        gone = await peer.response(method="BYE")
        dialer.to = f"<sip:ivr@{HOST}>"
        peer.send(dialer.build("REGISTER"), (HOST, server.port))
        register = await peer.response(method="REGISTER")
        peer.send(dialer.build("FROBNICATE"), (HOST, server.port))
        unknown = await peer.response(method="FROBNICATE")
        peer.close()
        await server.stop(0)
        return gone, register, unknown

    gone, register, unknown = run(go())
    assert gone.status == 481
    assert register.status == 405 and "INVITE" in register.raw("allow")
    assert unknown.status == 501


@pytest.mark.parametrize("busy_code", [486, 503])
def test_admission_full_is_busy(busy_code):
    async def go():
        server, handler, _ = await start_server(slots=Slots(limit=0), busy_code=busy_code)
        peer = await Peer.open()
        dialer = Dialer(peer, (HOST, server.port))
        dialer.send_invite(sdp(40000))
        busy = await peer.response(busy_code)
        dialer.ack(busy)
        peer.close()
        await server.stop(0)
        return busy, handler.calls

    busy, calls = run(go())
    assert calls == []
    assert (busy.get("retry-after") is not None) == (busy_code == 503)


def test_no_common_codec_is_488():
    async def go():
        server, handler, slots = await start_server()
        peer = await Peer.open()
        dialer = Dialer(peer, (HOST, server.port))
        dialer.send_invite(sdp(40000, formats="9 18"))   # G.722 and G.729 only
        resp = await peer.response(488)
        dialer.ack(resp)
        await asyncio.sleep(0.3)   # no retransmission after our ACK
        extra = [m for m, _ in peer.pending if isinstance(m, Response) and m.status == 488]
        peer.close()
        await server.stop(0)
        return resp, handler.calls, slots.used, extra

    resp, calls, used, extra = run(go())
    assert resp.get("warning") and (calls, used, extra) == ([], 0, [])


def test_retransmissions_are_absorbed():
    async def go():
        server, handler, _ = await start_server()
        peer, rtp = await Peer.open(), await Rtp.open()
        dialer = Dialer(peer, (HOST, server.port))
        invite = dialer.send_invite(sdp(rtp.port))
        peer.send(invite, (HOST, server.port))        # the INVITE again, same branch
        first = await peer.response(200, "INVITE")
        second = await peer.response(200, "INVITE", timeout_s=1.0)   # 200 re-sent: no ACK yet
        dialer.to = first.raw("to")
        dialer.ack(first)
        peer.send(invite, (HOST, server.port))        # late copy after the ACK: answered again, no new call
        await asyncio.sleep(0.5)
        stray = [m for m, _ in peer.pending if isinstance(m, Response) and m.status == 200]
        calls = len(handler.calls)
        active = server.active_calls
        bye = dialer.in_dialog("BYE")
        peer.send(bye, (HOST, server.port))           # a retransmitted BYE gets the same 200
        byes = [await peer.response(200, "BYE"), await peer.response(200, "BYE")]
        peer.close()
        rtp.close()
        await server.stop(0)
        return first, second, calls, active, stray, byes

    first, second, calls, active, stray, byes = run(go())
    assert first.to.tag == second.to.tag
    assert calls == 1 and active == 1
    assert len(stray) <= 1                            # the copy after ACK at most re-sends the 200
    assert [b.status for b in byes] == [200, 200]


def test_bad_requests():
    async def go():
        server, _, _ = await start_server()
        peer = await Peer.open()
        dialer = Dialer(peer, (HOST, server.port))
        bad = dialer.build("OPTIONS")
        bad.set("CSeq", "one OPTIONS")
        peer.send(bad, (HOST, server.port))
        bad_cseq = await peer.response(400)
        peer.send(b"\x16\x03\x01 definitely not SIP\r\n\r\n", (HOST, server.port))
        peer.send(b"OPTIONS sip:ivr@127.0.0.1 SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n", (HOST, server.port))
        old = dialer.build("OPTIONS")
        old.version = "SIP/3.0"
        peer.send(old, (HOST, server.port))
        version = await peer.response(505)
        peer.send(b"x" * 9000, (HOST, server.port))
        await asyncio.sleep(0.3)
        leftover = list(peer.pending)
        stats = dict(server.endpoint.stats)
        peer.close()
        await server.stop(0)
        return bad_cseq, version, leftover, stats

    bad_cseq, version, leftover, stats = run(go())
    assert "CSeq" in bad_cseq.reason and version.status == 505
    assert leftover == []                              # garbage and Via-less requests are dropped
    assert stats["bad"] == 5


def test_allow_list_forbids_other_sources():
    async def go():
        server, handler, _ = await start_server(allow=["10.0.0.0/8"])
        peer = await Peer.open()
        dialer = Dialer(peer, (HOST, server.port))
        dialer.send_invite(sdp(40000))
        resp = await peer.response(403)
        peer.close()
        await server.stop(0)
        return resp, handler.calls

    resp, calls = run(go())
    assert resp.status == 403 and calls == []


def test_rate_limit_drops_a_flood():
    async def go():
        server, _, _ = await start_server(rate_limit_per_s=5)
        peer = await Peer.open()
        dialer = Dialer(peer, (HOST, server.port))
        for _ in range(100):                           # a sipvicious-style OPTIONS sweep
            peer.send(dialer.build("OPTIONS"), (HOST, server.port))
        await asyncio.sleep(0.5)
        answered = len(peer.pending)
        dropped = server.guard.dropped
        peer.close()
        await server.stop(0)
        return answered, dropped

    answered, dropped = run(go())
    assert 8 <= answered <= 20                         # the burst (10) plus ~5/s while the sweep lasts
    assert dropped == 100 - answered


def test_digest_auth_challenge_and_verify():
    async def go():
        server, handler, _ = await start_server(auth={"alice": "s3cret"})
        peer, rtp = await Peer.open(), await Rtp.open()
        dialer = Dialer(peer, (HOST, server.port))
        dialer.send_invite(sdp(rtp.port))
        challenge = await peer.response(401)
        dialer.ack(challenge)
        header = challenge.get("www-authenticate")
        uri = dialer.invite.uri
        wrong = authorization(header, method="INVITE", uri=uri, user="alice", password="guess")
        dialer.send_invite(sdp(rtp.port), extra=[("Authorization", wrong)])
        again = await peer.response(401)
        dialer.ack(again)
        right = authorization(header, method="INVITE", uri=uri, user="alice", password="s3cret")
        dialer.send_invite(sdp(rtp.port), extra=[("Authorization", right)])
        ok = await peer.response(200, "INVITE")
        dialer.to = ok.raw("to")
        dialer.ack(ok)
        await asyncio.sleep(0.1)
        dialer.in_dialog("BYE")
        await peer.response(200, "BYE")
        peer.close()
        rtp.close()
        await server.stop(0)
        return header, len(handler.calls)

    header, calls = run(go())
    assert 'realm="ivr"' in header and "nonce=" in header and 'qop="auth"' in header
    assert calls == 1


def test_reinvite_hold_and_resume():
    async def go():
        server, _, _ = await start_server()
        peer, rtp = await Peer.open(), await Rtp.open()
        dialer = Dialer(peer, (HOST, server.port))
        await dialer.call(rtp.port)
        await asyncio.sleep(0.3)
        talking = len(rtp.packets)
        dialer.in_dialog("INVITE", body=sdp(rtp.port, direction="sendonly"))
        held = await peer.response(200, "INVITE")
        dialer.peer.send(dialer.build("ACK", cseq=dialer.cseq, to=dialer.to), (HOST, server.port))
        await asyncio.sleep(0.1)
        before = len(rtp.packets)
        await asyncio.sleep(0.4)
        during_hold = len(rtp.packets) - before
        dialer.in_dialog("INVITE", body=sdp(rtp.port))
        resumed = await peer.response(200, "INVITE")
        dialer.peer.send(dialer.build("ACK", cseq=dialer.cseq, to=dialer.to), (HOST, server.port))
        before = len(rtp.packets)
        await asyncio.sleep(0.4)
        after_resume = len(rtp.packets) - before
        dialer.in_dialog("BYE")
        await peer.response(200, "BYE")
        peer.close()
        rtp.close()
        await server.stop(0)
        return talking, held, during_hold, resumed, after_resume

    talking, held, during_hold, resumed, after_resume = run(go())
    assert talking >= 10
    assert "a=recvonly" in held.body.decode() and during_hold == 0
    assert "a=sendrecv" in resumed.body.decode() and after_resume >= 10
    version = [int(m.body.decode().split("\r\n")[1].split()[2]) for m in (held, resumed)]
    assert version[1] == version[0] + 1                # each changed answer gets a new o= version


def test_late_offer_and_info_dtmf():
    async def go():
        server, handler, _ = await start_server()
        peer, rtp = await Peer.open(), await Rtp.open()
        dialer = Dialer(peer, (HOST, server.port))
        dialer.send_invite(b"")                         # no SDP: we offer in the 200, the answer comes in the ACK
        ok = await peer.response(200, "INVITE")
        dialer.to = ok.raw("to")
        dialer.ack(ok, body=sdp(rtp.port, formats="8 101"))
        await asyncio.sleep(0.3)
        info = dialer.build("INFO", to=dialer.to, extra=[("Content-Type", "application/dtmf-relay")])
        info.body = b"Signal=7\r\nDuration=160\r\n"
        peer.send(info, (HOST, server.port))
        info_ok = await peer.response(200, "INFO")
        await asyncio.sleep(0.2)
        dialer.in_dialog("BYE")
        await peer.response(200, "BYE")
        await asyncio.wait_for(handler.done.wait(), 3)
        alaw = sum(1 for _, p in rtp.packets if p and p.payload_type == 8)
        peer.close()
        rtp.close()
        await server.stop(0)
        return ok, info_ok, handler.keys, alaw

    ok, info_ok, keys, alaw = run(go())
    assert b"m=audio" in ok.body and b"RTP/AVP 0 8 101" in ok.body
    assert info_ok.status == 200 and keys == "7"
    assert alaw >= 10                                   # the answer chose PCMA and we switched to it


def test_stop_refuses_new_calls_and_hangs_up_the_rest():
    async def go():
        server, handler, slots = await start_server()
        peer, rtp = await Peer.open(), await Rtp.open()
        dialer = Dialer(peer, (HOST, server.port))
        await dialer.call(rtp.port)
        stopping = asyncio.create_task(server.stop(0.5))
        await asyncio.sleep(0.1)
        late = Dialer(peer, (HOST, server.port))
        late.send_invite(sdp(rtp.port))
        refused = await peer.response(503, "INVITE")
        bye = await peer.request("BYE", timeout_s=2)
        dialer.reply(bye, 200)
        await stopping
        await asyncio.wait_for(handler.done.wait(), 2)
        peer.close()
        rtp.close()
        return refused, bye, server.active_calls, slots.used

    refused, bye, active, used = run(go())
    assert refused.get("retry-after") and "server stopping" in bye.get("reason")
    assert (active, used) == (0, 0)


# ---- transfer -----------------------------------------------------------------------------


class AgentLine:
    """The agent line: a UAS that records the INVITE it gets, answers (or refuses), and counts audio."""

    def __init__(self, peer: Peer, rtp: Rtp, status: int = 200, auth: DigestAuthenticator | None = None) -> None:
        self.peer, self.rtp, self.status, self.auth = peer, rtp, status, auth
        self.invites: list[Request] = []
        self.ok: Response | None = None

    async def answer_one(self) -> Request:
        while True:
            invite = await self.peer.request("INVITE", timeout_s=5)
            self.invites.append(invite)
            addr = self.peer.last_addr
            if self.auth and not self.auth.verify("INVITE", invite.uri, invite.get("authorization")).ok:
                self.peer.send(make_response(invite, 401, headers=[("WWW-Authenticate", self.auth.challenge())],
                                             to_tag="agent"), addr)
                await self.peer.request("ACK")
                continue
            if self.status != 200:
                self.peer.send(make_response(invite, self.status, to_tag="agent"), addr)
                await self.peer.request("ACK")
                return invite
            self.ok = make_response(invite, 200, to_tag="agent", body=sdp(self.rtp.port, formats="8 101"),
                                    headers=[("Contact", f"<sip:agent@{HOST}:{self.peer.port}>"),
                                             ("Content-Type", "application/sdp")])
            self.peer.send(self.ok, addr)
            await self.peer.request("ACK")
            return invite


async def transfer_on_key(target: str, mode_errors: list):
    async def on_key(transport, key):
        try:
            await transport.transfer(target, "caller asked for an agent", {"intent": "agent", "order": "A-17",
                                                                           "note": "ünïcode, \"quotes\""})
        except TransferFailed as exc:
            mode_errors.append(exc)
    return on_key


def test_refer_transfer_carries_context_to_the_agent():
    async def go():
        agent = AgentLine(await Peer.open(), await Rtp.open())
        target = f"sip:agents@{HOST}:{agent.peer.port}"
        errors: list = []
        server, handler, _ = await start_server(on_key=await transfer_on_key(target, errors), transfer_mode="refer")
        peer, rtp = await Peer.open(), await Rtp.open()
        dialer = Dialer(peer, (HOST, server.port))
        ok = await dialer.call(rtp.port)
        send_key(rtp, (HOST, rtp_port_of(ok)), "0")
        refer = await peer.request("REFER")
        dialer.reply(refer, 202)
        # We are the transferee: call the Refer-To target with the headers it embeds.
        refer_to = parse_name_addr(refer.get("refer-to")).uri
        transferee = Dialer(peer, (refer_to.host, refer_to.port), called=refer_to.user)
        transferee.send_invite(sdp(rtp.port), extra=list(refer_to.headers.items()))
        answering = asyncio.create_task(agent.answer_one())
        agent_ok = await peer.response(200, "INVITE")
        transferee.ack(agent_ok)
        agent_invite = await answering
        notify = dialer.build("NOTIFY", to=dialer.to, extra=[("Event", "refer"),
                                                           ("Subscription-State", "terminated;reason=noresource"),
                                                           ("Content-Type", "message/sipfrag")])
        notify.body = b"SIP/2.0 200 OK\r\n"
        peer.send(notify, (HOST, server.port))
        notify_ok = await peer.response(200, "NOTIFY")
        bye = await peer.request("BYE")
        dialer.reply(bye, 200)
        await asyncio.wait_for(handler.done.wait(), 3)
        await asyncio.sleep(0.1)
        result = (refer, agent_invite, notify_ok, server.active_calls, errors)
        for closable in (peer, rtp, agent.peer, agent.rtp):
            closable.close()
        await server.stop(0)
        return result

    refer, agent_invite, notify_ok, active, errors = run(go())
    assert errors == []
    assert refer.get("referred-by") and "127.0.0.1" in refer.get("refer-to")
    context = decode_context(agent_invite.get("x-ivr-context"))
    assert context == {"intent": "agent", "order": "A-17", "note": "ünïcode, \"quotes\""}
    assert unquote(agent_invite.get("x-ivr-reason")) == "caller asked for an agent"
    assert notify_ok.status == 200 and active == 0


def test_refused_refer_falls_back_to_a_bridge_with_digest_auth():
    async def go():
        agent = AgentLine(await Peer.open(), await Rtp.open(), auth=DigestAuthenticator({"ivr": "pw"}, "pbx"))
        target = f"sip:agents@{HOST}:{agent.peer.port}"
        errors: list = []
        server, handler, slots = await start_server(on_key=await transfer_on_key(target, errors),
                                                    transfer_mode="auto", agent_credentials=("ivr", "pw"))
        peer, rtp = await Peer.open(), await Rtp.open()
        dialer = Dialer(peer, (HOST, server.port))
        ok = await dialer.call(rtp.port)
        caller_media = (HOST, rtp_port_of(ok))
        send_key(rtp, caller_media, "0")
        refer = await peer.request("REFER")
        dialer.reply(refer, 603)                        # this phone refuses transfers
        agent_invite = await agent.answer_one()
        await asyncio.wait_for(handler.done.wait(), 3)  # the call loop is done; the bridge carries on
        handler_done_active = server.active_calls
        await rtp.send_tone(caller_media, frames=40)    # caller speaks: the agent must hear it
        await agent.rtp.send_tone((HOST, rtp_port_of(agent_invite)), frames=40, hz=700)   # and back
        await asyncio.sleep(0.2)
        heard_by_agent, heard_by_caller = agent.rtp.loud_packets(pt=8), rtp.loud_packets(pt=0)
        agent_bye = Dialer(agent.peer, agent.peer.last_addr)
        agent_bye.call_id, agent_bye.tag = agent_invite.call_id, "agent"
        bye = agent_bye.build("BYE", to=agent_invite.raw("from"))
        bye.set("From", agent.ok.raw("to"))
        agent.peer.send(bye, agent.peer.last_addr)
        await agent.peer.response(200, "BYE")
        caller_bye = await peer.request("BYE")
        dialer.reply(caller_bye, 200)
        await asyncio.sleep(0.1)
        result = (len(agent.invites), agent_invite, handler_done_active, heard_by_agent, heard_by_caller,
                  server.active_calls, slots.used, errors)
        for closable in (peer, rtp, agent.peer, agent.rtp):
            closable.close()
        await server.stop(0)
        return result

    n_invites, agent_invite, active_bridged, to_agent, to_caller, active, used, errors = run(go())
    assert errors == []
    assert n_invites == 2 and agent_invite.get("authorization")       # challenged once, then answered
    assert decode_context(agent_invite.get("x-ivr-context"))["order"] == "A-17"
    assert active_bridged == 1
    assert to_agent >= 15 and to_caller >= 15          # of 40 loud frames each way
    assert (active, used) == (0, 0)


def test_bridge_failure_raises_and_the_call_ends():
    async def go():
        agent = AgentLine(await Peer.open(), await Rtp.open(), status=486)
        target = f"sip:agents@{HOST}:{agent.peer.port}"
        errors: list = []
        server, handler, _ = await start_server(on_key=await transfer_on_key(target, errors), transfer_mode="bridge")
        peer, rtp = await Peer.open(), await Rtp.open()
        dialer = Dialer(peer, (HOST, server.port))
        ok = await dialer.call(rtp.port)
        send_key(rtp, (HOST, rtp_port_of(ok)), "0")
        await agent.answer_one()
        bye = await peer.request("BYE")
        dialer.reply(bye, 200)
        await asyncio.wait_for(handler.done.wait(), 3)
        for closable in (peer, rtp, agent.peer, agent.rtp):
            closable.close()
        await server.stop(0)
        return errors

    errors = run(go())
    assert len(errors) == 1 and "486" in str(errors[0])
