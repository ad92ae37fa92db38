"""RFC 4475 (SIP torture test messages): all 49 messages, each with what the RFC says a UAS does.

The messages are in tests/data/sip_torture/rfc4475.txt, written from the RFC in its notation.
Two tables: the parser's verdict on each (runs anywhere, no sockets), and the server's answer
to each sent over UDP. The messages name 192.0.2.x addresses and hosts in Via, Contact and
SDP, and the server answers along them (and answers calls with RTP to them), so the server
part runs in a fresh network namespace with only loopback (`unshare -n`, root only), like
tests/test_sip_fuzz.py: nothing leaves the machine. Without that it is skipped.

`ANSWERS`: the final response the server sends to each message, None for "no answer" (a
response matching no transaction, or junk that cannot be answered). 200 to an INVITE is "the
call is accepted"; a call is never started for a message the RFC calls invalid.
"""

import asyncio
import json
import re
from pathlib import Path

import pytest

from ivr.transports.sip.message import Request, Response, SipParseError, can_reply, parse_message
from ivr.transports.sip.uri import parse_uri
from tests.sip_netns import run_in_netns

DATA = Path(__file__).resolve().parent / "data" / "sip_torture" / "rfc4475.txt"

# name -> (the server's final answer or None, why; the RFC 4475 section is in the data file)
ANSWERS: dict[str, tuple[int | None, str]] = {
    # 3.1.1 valid messages
    "wsinv": (481, "valid; its To has a tag: a request in a dialog we do not hold"),
    "intmeth": (501, "valid; an extension method we do not implement (a ? in the Request-URI user part)"),
    "esc01": (200, "valid INVITE: the call is accepted"),
    "escnull": (405, "valid REGISTER: we are not a registrar"),
    "esc02": (501, "RE%47IST%45R is an extension method, not REGISTER"),
    "lwsdisp": (200, "valid OPTIONS"),
    "longreq": (200, "valid INVITE with long values: accepted"),
    "dblreq": (405, "the REGISTER; the INVITE after its Content-Length is discarded"),
    "semiuri": (200, "valid OPTIONS; ; in the user part"),
    "transports": (200, "valid OPTIONS; unknown transports in lower Vias"),
    "mpart01": (405, "valid MESSAGE: not served"),
    "unreason": (None, "a response to no transaction of ours"),
    "noreason": (None, "a response to no transaction of ours"),
    # 3.1.2 invalid messages
    "badinv01": (400, "empty Via and Contact parameters"),
    "clerr": (400, "Content-Length beyond the datagram"),
    "ncl": (400, "negative Content-Length"),
    "scalar02": (400, "CSeq and Max-Forwards out of range"),
    "scalarlg": (None, "a response with scalars out of range: dropped"),
    "quotbal": (400, "unterminated quoted string"),
    "ltgtruri": (400, "<> around the Request-URI"),
    "lwsruri": (400, "whitespace inside the Request-URI"),
    "lwsstart": (400, "several SP in the request line (rejecting is allowed)"),
    "trws": (200, "trailing SP after the version: the RFC allows being liberal"),
    "escruri": (200, "escaped header in the Request-URI: liberal, the header is not used"),
    "baddate": (200, "non-GMT Date: liberal, we do not use Date"),
    "regbadct": (400, "addr-spec Contact with a ? must be in <>"),
    "badaspec": (200, "spaces inside <>: liberal"),
    "baddn": (200, "unquoted display names: liberal"),
    "badvers": (505, "SIP/7.0"),
    "mismatch01": (400, "CSeq method differs from the request's"),
    "mismatch02": (501, "unknown method (and a CSeq that differs)"),
    "bigcode": (None, "a response code beyond 699: dropped"),
    # 3.2 transaction layer
    "badbranch": (200, "a branch that is just the magic cookie"),
    # 3.3 application layer
    "insuf": (400, "no Call-ID, From or To: answered with what there is"),
    "unkscm": (416, "unknown Request-URI scheme"),
    "novelsc": (416, "known but atypical Request-URI scheme"),
    "unksm2": (405, "unknown schemes in To/From/Contact parse; REGISTER not served"),
    "bext01": (420, "Require names extensions we do not support"),
    "invut": (415, "INVITE body of an unknown type"),
    "regaut01": (405, "REGISTER with an unknown auth scheme: not served"),
    "multi01": (400, "several values in single-value headers"),
    "mcl01": (400, "two Content-Length headers"),
    "bcast": (None, "a response to no transaction of ours"),
    "zeromf": (200, "Max-Forwards 0 is for proxies; a UAS answers"),
    "cparam01": (405, "REGISTER not served; the contact parameter parses"),
    "cparam02": (405, "REGISTER not served; the URI parameter parses"),
    "regescrt": (405, "REGISTER not served; the escaped header parses"),
    "sdp01": (406, "Accept without application/sdp on an INVITE answered with SDP"),
    # 3.4 backward compatibility
    "inv2543": (200, "RFC 2543 INVITE (no branch, no tags, no Max-Forwards): accepted"),
}
# What parse_message makes of each message when it is not a plain success: the status its
# error carries (the server answers it when the message has a Via and a CSeq) or "drop".
PARSE_ERRORS = {"badinv01": 400, "clerr": 400, "ncl": 400, "scalar02": 400, "scalarlg": "drop", "quotbal": 400,
                "ltgtruri": 400, "lwsruri": 400, "lwsstart": 400, "regbadct": 400, "badvers": 505,
                "mismatch01": 400, "mismatch02": 501, "bigcode": "drop", "insuf": 400, "multi01": 400, "mcl01": 400}


def load_messages() -> dict[str, tuple[str, bytes]]:
    """name -> (RFC section, the octets on the wire)."""
    messages: dict[str, tuple[str, bytes]] = {}
    blocks = re.split(r"^=== ", DATA.read_text(encoding="utf-8"), flags=re.M)[1:]
    for block in blocks:
        header, _, text = block.partition("\n")
        name, section = header.split()
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()                      # the newline that ends the file's last line
        text = "\r\n".join(lines) + "\r\n"
        text = re.sub(r"<allOneLine>\r\n(.*?)\r\n</allOneLine>",
                      lambda m: m.group(1).replace("\r\n", ""), text, flags=re.S)
        raw = text.encode("utf-8")
        raw = re.sub(rb"<hex>([0-9A-Fa-f]*)</hex>", lambda m: bytes.fromhex(m.group(1).decode()), raw)
        messages[name] = (section, raw)
    return messages


MESSAGES = load_messages()


def test_the_table_covers_all_49_messages():
    assert len(MESSAGES) == 49 and set(MESSAGES) == set(ANSWERS)
    assert set(PARSE_ERRORS) <= set(ANSWERS)


def declared_length(raw: bytes) -> int | None:
    m = re.search(rb"\r\n(?:Content-Length|l)\s*:\s*(-?\d+)\r\n", raw, flags=re.I)
    return int(m.group(1)) if m else None


@pytest.mark.parametrize("name", [n for n in MESSAGES if n not in ("clerr", "ncl", "mcl01", "dblreq")])
def test_written_as_in_the_rfc(name):
    """Each body is as long as the RFC's Content-Length says (a check on the transcription)."""
    raw = MESSAGES[name][1]
    length = declared_length(raw)
    if length is not None:
        assert len(raw.split(b"\r\n\r\n", 1)[1]) == length


@pytest.mark.parametrize("name", list(MESSAGES))
def test_parser_verdict(name):
    raw = MESSAGES[name][1]
    want = PARSE_ERRORS.get(name)
    if want is None:
        msg = parse_message(raw)
        assert isinstance(msg, Response if ANSWERS[name][0] is None else Request)
        return
    with pytest.raises(SipParseError) as err:
        parse_message(raw)
    if want == "drop":
        assert not can_reply(err.value.message)
    else:
        assert err.value.status == want and can_reply(err.value.message), err.value.reason


def test_what_the_valid_messages_carry():
    intmeth = parse_message(MESSAGES["intmeth"][1])
    uri = parse_uri(intmeth.uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*" and uri.host == "example.com"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)" and intmeth.cseq[1] == intmeth.method
    assert intmeth.to.uri.user == uri.user and intmeth.from_.tag == "_token~1'+`*%!-."
    wsinv = parse_message(MESSAGES["wsinv"][1])
    assert (wsinv.to.tag, wsinv.from_.tag, wsinv.cseq) == ("1918181833n", "98asjd8", (9, "INVITE"))
    assert len(wsinv.get_all("via")) == 3 and wsinv.top_via.branch == "390skdjuw" and len(wsinv.body) == 150
    assert parse_uri(parse_message(MESSAGES["semiuri"][1]).uri).user == "user;par=u@example.net"
    dblreq = parse_message(MESSAGES["dblreq"][1])
    assert dblreq.method == "REGISTER" and dblreq.body == b""
    assert parse_message(MESSAGES["esc02"][1]).method == "RE%47IST%45R"
    assert parse_uri(parse_message(MESSAGES["unkscm"][1]).uri).scheme == "nobodyknowsthisscheme"


# ---- the server's answers (inside a loopback-only network namespace) -------------------------------


async def answer_all() -> dict:
    from ivr.transports.sip.server import SipServer
    from tests.test_sip_server import HOST, Handler, Peer, Slots

    slots = Slots(limit=len(MESSAGES))
    server = SipServer(HOST, 0, handler=Handler(slots), admission=slots, rate_limit_per_s=0, t1_ms=25,
                       rtp_timeout_ms=2000)
    await server.start()
    sent: list[bytes] = []
    real_send = server.endpoint.send

    def record(data, addr) -> None:     # what the server answers, wherever the Via sends it
        sent.append(data if isinstance(data, bytes) else data.to_bytes())
        real_send(data, addr)

    server.endpoint.send = record
    peer = await Peer.open()
    peer.datagram_received = lambda data, addr: None
    loop = asyncio.get_running_loop()
    answers: dict[str, int | None] = {}
    for name, (_, raw) in MESSAGES.items():
        start = len(sent)
        peer.transport.sendto(raw, (HOST, server.port))
        end = loop.time() + (0.3 if ANSWERS[name][0] is None else 2.0)
        final = None
        while final is None and loop.time() < end:
            await asyncio.sleep(0.01)
            for data in sent[start:]:   # its own answer (earlier calls' 200s are re-sent meanwhile)
                status = int(data.split(b" ", 2)[1]) if data.startswith(b"SIP/2.0 ") else 0
                if status >= 200 and call_id(data) == call_id(raw):
                    final = status
                    break
        answers[name] = final
    admitted = slots.used + slots.released
    peer.close()
    await server.stop(0)
    return {"answers": answers, "calls_admitted": admitted}


def call_id(data: bytes) -> bytes | None:
    m = re.search(rb"\r\n(?:Call-ID|i)[ \t]*:[ \t]*([^\r\n]*)", data, flags=re.I)
    return m.group(1).strip() if m else None


def torture_main() -> None:
    result = asyncio.run(asyncio.wait_for(answer_all(), 120))
    print("TORTURE-RESULT " + json.dumps(result))


def test_the_server_answers_each_message_as_rfc_4475_describes():
    result = run_in_netns("from tests.test_sip_torture import torture_main; torture_main()", "TORTURE-RESULT",
                          timeout_s=150)
    got = result["answers"]
    wrong = {name: (got.get(name), want, why) for name, (want, why) in ANSWERS.items() if got.get(name) != want}
    assert wrong == {}, "\n".join(f"{n}: got {g}, RFC 4475 wants {w} ({why})" for n, (g, w, why) in wrong.items())
    accepted = [n for n, (want, _) in ANSWERS.items() if want == 200 and MESSAGES[n][1].startswith(b"INVITE ")]
    assert result["calls_admitted"] == len(accepted) == 5   # no call for anything else
