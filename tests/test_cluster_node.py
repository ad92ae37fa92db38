"""A node behind the proxy (issue 13): OPTIONS answered with the node's load, 503 while draining
or full (the proxy's probe takes it out), INVITE 503 while draining; /health's calls and capacity."""

from ivr.service.service import Admission, Service
from ivr.transports.base import CallInfo
from tests.test_sip_server import HOST, Dialer, Peer, run, start_server


def _info(n: int) -> CallInfo:
    return CallInfo(call_id=f"c{n}", kind="sip", transport_id=f"t{n}", caller="alice")


def test_options_say_the_load_then_503_when_full_or_draining():
    async def go():
        admission = Admission(max_calls=2)
        server, _, _ = await start_server(slots=admission)
        peer = await Peer.open()
        dialer = Dialer(peer, (HOST, server.port))
        answers = []

        async def options(expected: int):
            peer.send(dialer.build("OPTIONS"), (HOST, server.port))
            answers.append(await peer.response(expected, "OPTIONS"))

        await options(200)                     # idle
        admission.admit(_info(1))
        await options(200)                     # one of two
        admission.admit(_info(2))
        await options(503)                     # full: out of rotation until a slot frees
        admission.release(_info(2))
        await options(200)
        server.draining = True
        await options(503)                     # draining
        dialer.send_invite(b"")
        await peer.response(100)
        busy = await peer.response(503, "INVITE")
        peer.close()
        await server.stop(0)
        return answers, busy

    answers, busy = run(go())
    loads = [resp.raw("x-ivr-load") for resp in answers]
    assert loads == ["calls=0;max=2", "calls=1;max=2", "calls=2;max=2", "calls=1;max=2", "calls=1;max=2"]
    assert answers[2].raw("retry-after") and answers[4].raw("retry-after")
    assert "INVITE" in answers[0].raw("allow")
    assert busy.raw("retry-after")


def test_health_reports_calls_capacity_and_draining():
    from ivr.service.config import ServeConfig

    cfg = ServeConfig()
    cfg.max_calls = 3
    service = Service(cfg)
    service.ready = True
    service.admission.admit(_info(1))
    service.calls["c1"] = None
    before = service.health()
    service.drain()
    after = service.health()
    assert (before["ok"], before["calls"], before["max_calls"], before["capacity"], before["draining"]) == \
        (True, 1, 3, 2, False)
    assert (after["ok"], after["capacity"], after["draining"]) == (False, 0, True)
    assert service.stop_requested.is_set()        # ivr serve then waits for the calls and exits
    assert not service.admission.admit(_info(2))  # no new call while draining
