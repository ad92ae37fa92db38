"""Fuzz the SIP port: a few thousand mutated and random datagrams, then a normal call must work.

Mutated requests can name any address in Via, Contact or SDP, and the server answers along
those. So the body runs in a fresh network namespace that has only loopback (`unshare -n`,
root only): nothing can leave the machine. Without that the test is skipped.
Checks: no exception escapes the receive path, every admitted call is released (no leaked
admission slots or calls), and afterwards a plain INVITE/ACK/RTP/BYE call succeeds.
"""

import asyncio
import json
import logging
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ivr.transports.sip.server import SipServer
from tests.test_sip_server import HOST, Dialer, Handler, Peer, Rtp, Slots, rtp_port_of, sdp

ROOT = Path(__file__).resolve().parent.parent
N_DATAGRAMS = 3000
SEED = 4475


def templates(port: int) -> list[bytes]:
    def request(method: str, extra: str = "", body: bytes = b"", to_tag: str = "") -> bytes:
        head = (f"{method} sip:ivr@{HOST}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {HOST}:{port};branch=z9hG4bKfuzz;rport\r\nMax-Forwards: 70\r\n"
                f"From: \"Fuzz\" <sip:fuzz@{HOST}:{port}>;tag=ft\r\nTo: <sip:ivr@{HOST}>{to_tag}\r\n"
                f"Call-ID: fuzz@{HOST}\r\nCSeq: 1 {method}\r\nContact: <sip:fuzz@{HOST}:{port}>\r\n{extra}"
                f"Content-Length: {len(body)}\r\n\r\n")
        return head.encode() + body

    offer = sdp(port)
    return [
        request("INVITE", "Content-Type: application/sdp\r\n", offer),
        request("OPTIONS", "Accept: application/sdp\r\n"),
        request("BYE", to_tag=";tag=xyz"),
        request("CANCEL"),
        request("ACK", to_tag=";tag=xyz"),
        request("REGISTER", "Expires: 3600\r\n"),
        request("NOTIFY", "Event: refer\r\nContent-Type: message/sipfrag\r\n", b"SIP/2.0 200 OK\r\n", ";tag=t"),
        request("INFO", "Content-Type: application/dtmf-relay\r\n", b"Signal=5\r\nDuration=160\r\n", ";tag=t"),
        request("INVITE", "Content-Type: application/sdp\r\nRequire: 100rel\r\n", offer, ";tag=t"),
        (f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {HOST}:{port};branch=z9hG4bKfuzz\r\nFrom: <sip:a@{HOST}>;tag=1\r\n"
         f"To: <sip:b@{HOST}>;tag=2\r\nCall-ID: r@{HOST}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode(),
    ]


def mutate(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(14)
    lines = data.split(b"\r\n")
    if len(data) < 8 or len(lines) < 3:   # earlier mutations left little: start from noise
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
    if kind == 0:                                     # flip bytes
        buf = bytearray(data)
        for _ in range(rng.randint(1, 12)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        return bytes(buf)
    if kind == 1:
        return data[: rng.randrange(len(data))]
    if kind == 2 and len(lines) > 2:
        del lines[rng.randrange(1, len(lines))]
    elif kind == 3:
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
    elif kind == 4:
        junk = bytes(rng.randrange(32, 127) for _ in range(rng.randint(1, 80)))
        lines.insert(rng.randrange(1, len(lines)), rng.choice([b"X-J: ", b"", b"Via: ", b"CSeq: ", b": "]) + junk)
    elif kind == 5:                                   # a huge value somewhere
        i = rng.randrange(len(lines))
        lines[i] += b"A" * rng.randint(500, 9000)
    elif kind == 6:
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == 7:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 1500)))
    elif kind == 8:
        value = rng.choice([b"-1", b"0", b"99999999999", b"abc", b"", b"5", b"1e3", b" 12 "])
        lines = [b"Content-Length: " + value if line.startswith(b"Content-Length") else line for line in lines]
    elif kind == 9:
        return data.replace(b"\r\n", rng.choice([b"\n", b"\r", b"\r\r\n", b"\n\r", b""]))
    elif kind == 10:
        buf = bytearray(data)
        for _ in range(rng.randint(1, 5)):
            buf.insert(rng.randrange(len(buf)), rng.choice([0, 0xFF, 0xC3, ord("%"), ord("<"), ord('"'), ord(";")]))
        return bytes(buf)
    elif kind == 11:                                  # numbers out of range
        value = rng.choice([b"4294967296", b"-5", b"0", b"65536", b"99999999999999999999"])
        i = rng.randrange(len(lines))
        lines[i] = bytes(c if not 48 <= c <= 57 else 0 for c in lines[i]).replace(b"\0", value, 1).replace(b"\0", b"")
    elif kind == 12:                                  # SDP mischief
        swaps = [(b"m=audio", b"m=audio 0"), (b"IN IP4 127.0.0.1", b"IN IP6 ::1"), (b"RTP/AVP", b"RTP/SAVP"),
                 (b"a=rtpmap:0 PCMU/8000", b"a=rtpmap:zz"), (b"v=0", b"v=9"), (b"c=IN", b"c=OUT")]
        old, new = rng.choice(swaps)
        return data.replace(old, new)
    else:
        return data.replace(b": ", rng.choice([b":", b"  :  ", b"\t:\t", b": \r\n "]))
    return b"\r\n".join(lines)


def unique(data: bytes, n: int) -> bytes:
    """A fresh Call-ID, tag and branch, so each datagram is a new transaction."""
    return data.replace(b"fuzz@", b"fuzz%d@" % n).replace(b"z9hG4bKfuzz", b"z9hG4bKfuzz%d" % n).replace(
        b"tag=ft", b"tag=ft%d" % n)


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


async def read_up_to(server: SipServer, count: int, limit_s: float = 1.0) -> None:
    """Wait until the server has read `count` datagrams (bounded: a datagram lost on the way is not waited for)."""
    for _ in range(int(limit_s * 1000)):
        if server.endpoint.stats["received"] >= count:
            return
        await asyncio.sleep(0.001)


async def fuzz_and_call() -> dict:
    errors = ErrorLog()
    logging.getLogger().addHandler(errors)
    slots = Slots(limit=8)
    handler = Handler(slots)
    server = SipServer(HOST, 0, handler=handler, admission=slots, rate_limit_per_s=0, t1_ms=25,
                       rtp_timeout_ms=2000)
    await server.start()
    target = (HOST, server.port)
    fuzzer = await Peer.open()
    fuzzer.datagram_received = lambda data, addr: None    # responses are not the point here
    rng = random.Random(SEED)
    bases = templates(fuzzer.port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = 0
    for n in range(N_DATAGRAMS):
        data = unique(rng.choice(bases), n)
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            data = mutate(data, rng)
        fuzzer.transport.sendto(data, target)
        sent += bool(data)                               # asyncio does not send an empty datagram
        if n % 10 == 9:                                  # let the server read all of them: we test parsing, not
            await read_up_to(server, sent)               # socket buffers (a busy machine reads slower)
    fuzz_s = loop.time() - started
    await asyncio.sleep(0.5)
    stats = dict(server.endpoint.stats)
    for _ in range(300):                                 # admitted fuzz calls end (no ACK, no BYE answer) within ~4 s
        if server.active_calls == 0 and slots.used == 0:
            break
        await asyncio.sleep(0.05)
    leaked = (server.active_calls, slots.used)
    peer, rtp = await Peer.open(), await Rtp.open()
    dialer = Dialer(peer, target)
    ok = await dialer.call(rtp.port)
    await rtp.send_tone((HOST, rtp_port_of(ok)), frames=30)
    await asyncio.sleep(0.2)
    dialer.in_dialog("BYE")
    bye = await peer.response(200, "BYE")
    await asyncio.wait_for(handler.done.wait(), 3)
    result = {"stats": stats, "leaked": leaked, "call_status": ok.status, "bye_status": bye.status,
              "echoed_packets": rtp.loud_packets(), "errors": errors.records, "fuzz_s": round(fuzz_s, 2),
              "admitted": slots.released}
    for closable in (peer, rtp, fuzzer):
        closable.close()
    await server.stop(0)
    return result


def fuzz_main() -> None:
    """Entry point inside the namespace: prints the result as JSON."""
    result = asyncio.run(asyncio.wait_for(fuzz_and_call(), 60))
    print("FUZZ-RESULT " + json.dumps(result))


def test_fuzz_then_a_normal_call():
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs root with unshare and ip to fuzz inside a loopback-only network namespace")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -n does not work here: {probe.stderr.decode(errors='replace').strip()}")
    script = f"ip link set lo up && exec {sys.executable} -c 'from tests.test_sip_fuzz import fuzz_main; fuzz_main()'"
    proc = subprocess.run(["unshare", "-n", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=90)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("FUZZ-RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("FUZZ-RESULT "))
    stats = result["stats"]
    assert stats["received"] >= N_DATAGRAMS * 0.9          # the fuzz reached the parser (paced to its reads)
    assert stats["bad"] >= stats["received"] * 0.3        # most mutations are caught by the parser...
    assert result["errors"] == []                         # ...and nothing blew up
    assert result["leaked"] == [0, 0]                      # every admitted call was released
    assert result["call_status"] == 200 and result["bye_status"] == 200
    assert result["echoed_packets"] >= 10
