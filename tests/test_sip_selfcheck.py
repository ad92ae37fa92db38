"""A node that answers OPTIONS but cannot answer INVITEs (issue 13, bad input): its RTP socket does
not open (here `rtp_host` names an address the machine does not have, as after an address change).
Each INVITE gets 500 (a proxy moves the call to the next node); after `unhealthy_after` of them in a
row the node answers OPTIONS and INVITE with 503 for `unhealthy_s` (the proxy's probe takes it
out), then takes calls again. Real sockets on 127.0.0.1; nothing is sent to the bad address."""

import asyncio
import socket
import time

import pytest

from tests.test_sip_server import HOST, Dialer, Peer, run, sdp, start_server

MISSING_ADDRESS = "192.0.2.1"   # TEST-NET-1: never configured on a test machine


def _unbindable() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((MISSING_ADDRESS, 0))
        except OSError:
            return True
    return False


def test_invites_it_cannot_answer_take_the_node_out_then_it_tries_again():
    if not _unbindable():
        pytest.skip(f"{MISSING_ADDRESS} is configured on this machine")

    async def go():
        server, _, _ = await start_server(rtp_host=MISSING_ADDRESS, unhealthy_after=2, unhealthy_s=30)
        shift = [0.0]                           # the pause passes when the test says, not after a wall-clock wait
        server.health.clock = lambda: time.monotonic() + shift[0]
        peer = await Peer.open()
        seen = {}

        async def options() -> object:
            dialer = Dialer(peer, (HOST, server.port))
            peer.send(dialer.build("OPTIONS"), (HOST, server.port))
            return await peer.response(None, "OPTIONS")

        async def invite() -> int:
            dialer = Dialer(peer, (HOST, server.port))
            dialer.send_invite(sdp(40000))
            final = await peer.next(lambda m: getattr(m, "status", 0) >= 200 and m.cseq[1] == "INVITE")
            dialer.ack(final)
            return final

        seen["first"] = (await invite()).status
        seen["options_after_one"] = (await options()).status
        seen["second"] = (await invite()).status
        out = await options()
        seen["options_out"], seen["warning"], seen["retry"] = out.status, out.raw("warning"), out.raw("retry-after")
        refused = await invite()
        seen["invite_while_out"], seen["invite_retry"] = refused.status, refused.raw("retry-after")
        seen["status"] = server.health.status()
        shift[0] += 30
        seen["options_back"] = (await options()).status
        seen["after_pause"] = (await invite()).status                      # still broken: counted again
        peer.close()
        await server.stop(0)
        return seen

    seen = run(go())
    assert (seen["first"], seen["options_after_one"], seen["second"]) == (500, 200, 500)
    assert seen["options_out"] == 503 and "cannot answer calls" in seen["warning"] and int(seen["retry"]) >= 1
    assert seen["invite_while_out"] == 503 and seen["invite_retry"]
    status = seen["status"]
    assert status["healthy"] is False and status["times_taken_out"] == 1 and "192.0.2.1" in status["last_failure"]
    assert seen["options_back"] == 200 and seen["after_pause"] == 500


def test_an_answered_call_resets_the_count():
    from ivr.transports.sip.selfcheck import AnswerHealth

    now = [0.0]
    health = AnswerHealth(after=3, pause_s=30, clock=lambda: now[0])
    health.failed("a")
    health.failed("b")
    health.ok()
    health.failed("c")
    health.failed("d")
    assert health.healthy
    health.failed("e")
    assert not health.healthy and health.retry_after_s() == 30
    now[0] = 30.0
    assert health.healthy and health.status()["times_taken_out"] == 1


def test_an_answer_that_hangs_gets_a_500_after_answer_timeout(monkeypatch):
    """Fault injected: the RTP socket's opening never returns (nothing on this machine makes it hang
    for real); the caller (a proxy) gets 500 after answer_timeout_ms, not silence until its timer."""
    from ivr.transports.sip import rtp

    async def hang(self, port: int = 0) -> int:
        await asyncio.sleep(3600)

    monkeypatch.setattr(rtp.RtpSession, "open", hang)

    async def go():
        server, _, _ = await start_server(answer_timeout_ms=300)
        peer = await Peer.open()
        dialer = Dialer(peer, (HOST, server.port))
        dialer.send_invite(sdp(40000))
        ringing = await peer.response(180, "INVITE")
        final = await peer.next(lambda m: getattr(m, "status", 0) >= 200 and m.cseq[1] == "INVITE")
        dialer.ack(final)
        status = server.health.status()
        peer.close()
        await server.stop(0)
        return ringing, final, status

    ringing, final, status = run(go())
    assert ringing.status == 180 and final.status == 500
    # the 500 is the answer timeout's (not an early failure): the node's own record of why, not a stopwatch
    assert status["failures_in_a_row"] == 1 and "opening RTP" in status["last_failure"]
    assert "TimeoutError" in status["last_failure"]


def test_invites_whose_sdp_the_node_cannot_use_do_not_take_it_out():
    """A caller's fault is not the node's: INVITEs whose SDP names an RTP port past 65535 get 500
    (or a proxy moves each to the next node, which would count it too), but the node stays in
    rotation: counting them would let a few such INVITEs take every node out."""

    async def go():
        server, _, _ = await start_server(unhealthy_after=2)
        peer = await Peer.open()
        finals = []
        for _ in range(3):
            dialer = Dialer(peer, (HOST, server.port))
            dialer.send_invite(sdp(70000))
            final = await peer.next(lambda m: getattr(m, "status", 0) >= 200 and m.cseq[1] == "INVITE")
            dialer.ack(final)
            finals.append(final.status)
        dialer = Dialer(peer, (HOST, server.port))
        peer.send(dialer.build("OPTIONS"), (HOST, server.port))
        options = (await peer.response(None, "OPTIONS")).status
        status = server.health.status()
        peer.close()
        await server.stop(0)
        return finals, options, status

    finals, options, status = run(go())
    assert all(code >= 400 for code in finals) and options == 200
    assert status["healthy"] is True and status["failures_in_a_row"] == 0 and status["times_taken_out"] == 0
