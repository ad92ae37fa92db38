"""SIP wire syntax: parser tables in the spirit of RFC 4475 (torture messages), serializer,
URIs, Via rules, digest authentication (RFC 2617 test vector) and the source guard."""

import pytest

from ivr.transports.sip.digest import DigestAuthenticator, authorization, digest_response, parse_digest
from ivr.transports.sip.guard import LogThrottle, SourceGuard
from ivr.transports.sip.message import Request, Response, SipParseError, can_reply, make_response, parse_message
from ivr.transports.sip.refer import context_headers, decode_context, sipfrag_status
from ivr.transports.sip.routing import fix_via, response_addr, txn_key
from ivr.transports.sip.uri import SipSyntaxError, parse_name_addr, parse_uri, parse_via

BASE = ("Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: \"Alice\" <sip:alice@127.0.0.1>;tag=1928301774\r\n"
        "To: <sip:ivr@127.0.0.1>\r\n"
        "Call-ID: a84b4c76e66710@127.0.0.1\r\n")


def msg(text: str) -> bytes:
    return text.replace("\n", "\r\n").replace("\r\r\n", "\r\n").encode()


def options(base: str = BASE, tail: str = "", start: str = "OPTIONS sip:ivr@127.0.0.1 SIP/2.0") -> bytes:
    return msg(f"{start}\n{base}CSeq: 1 OPTIONS\n{tail}\n")


# ---- valid messages: (name, raw, checks) ----------------------------------------------------

VALID = [
    ("compact forms",
     b"INVITE sip:ivr@127.0.0.1 SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKc1\r\n"
     b"f: <sip:a@127.0.0.1>;tag=x\r\nt: <sip:ivr@127.0.0.1>\r\ni: c1@127.0.0.1\r\nCSeq: 1 INVITE\r\n"
     b"m: <sip:a@127.0.0.1:5070>\r\nc: application/sdp\r\nk: timer, 100rel\r\nl: 3\r\n\r\nabc",
     {"call-id": "c1@127.0.0.1", "content-type": "application/sdp", "supported": "timer", "body": b"abc",
      "contact": "<sip:a@127.0.0.1:5070>"}),
    ("folded lines and odd spacing",
     b"OPTIONS sip:ivr@127.0.0.1 SIP/2.0\r\nVia   :  SIP / 2.0 / UDP 127.0.0.1:5070 ;  branch = z9hG4bKf1\r\n"
     b"From:<sip:a@127.0.0.1>;tag=x\r\nTo :   <sip:ivr@127.0.0.1>\r\nCall-ID:\tf1@h\r\nCSeq  :  7   OPTIONS\r\n"
     b"Subject: first part\r\n  second part\r\n\tthird part\r\nContent-Length: 0\r\n\r\n",
     {"subject": "first part second part third part", "cseq": "7   OPTIONS", "call-id": "f1@h"}),
    ("missing Content-Length on UDP takes the rest of the datagram",
     msg("MESSAGE sip:ivr@127.0.0.1 SIP/2.0\n" + BASE + "CSeq: 2 MESSAGE\n\n") + b"hello\r\nworld",
     {"body": b"hello\r\nworld"}),
    ("Content-Length shorter than the datagram truncates the body",
     msg("MESSAGE sip:ivr@127.0.0.1 SIP/2.0\n" + BASE + "CSeq: 2 MESSAGE\nContent-Length: 5\n\n") + b"helloEXTRA",
     {"body": b"hello"}),
    ("unknown headers kept, names any case",
     msg("OPTIONS sip:ivr@127.0.0.1 SIP/2.0\n" + BASE + "cSeQ: 3 OPTIONS\nX-Weird-Header: !@#$%^&*() \"q\"\n"
         "NewFangledHeader:   newfangled value\n continued newfangled value\n\n"),
     {"x-weird-header": "!@#$%^&*() \"q\"", "newfangledheader": "newfangled value continued newfangled value"}),
    ("LF line endings and CRLFs before the start line",
     b"\r\n\r\nOPTIONS sip:ivr@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKlf\n"
     b"From: <sip:a@127.0.0.1>;tag=1\nTo: <sip:ivr@127.0.0.1>\nCall-ID: lf\nCSeq: 1 OPTIONS\n\n",
     {"call-id": "lf"}),
    ("huge header value",
     msg("OPTIONS sip:ivr@127.0.0.1 SIP/2.0\n" + BASE + "CSeq: 4 OPTIONS\nX-Long: " + "a" * 4000 + "\n\n"),
     {"x-long": "a" * 4000}),
    ("escaped Request-URI, multiple Vias in one line",
     msg("OPTIONS sip:sip%3Auser%40example.com@127.0.0.1;lr?Subject=foo%20bar SIP/2.0\n"
         "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKm1, SIP/2.0/UDP 127.0.0.2;branch=z9hG4bKm2\n"
         "Via: SIP/2.0/UDP 127.0.0.3:5090;branch=z9hG4bKm3\n"
         "From: \"A, <B> \\\"C\\\"\" <sip:a@127.0.0.1>;tag=q\nTo: sip:ivr@127.0.0.1\n"
         "Call-ID: esc\nCSeq: 5 OPTIONS\n\n"),
     {"vias": 3}),
    ("response with an empty reason phrase",
     msg("SIP/2.0 180 \n" + BASE.replace("To: <sip:ivr@127.0.0.1>", "To: <sip:ivr@127.0.0.1>;tag=t")
         + "CSeq: 1 INVITE\n\n"),
     {"status": 180}),
]


@pytest.mark.parametrize("raw,checks", [(r, c) for _, r, c in VALID], ids=[n for n, _, _ in VALID])
def test_valid_messages(raw, checks):
    m = parse_message(raw)
    for key, want in checks.items():
        if key == "body":
            assert m.body == want
        elif key == "vias":
            assert len(m.get_all("via")) == want
            assert m.top_via.branch == "z9hG4bKm1"
        elif key == "status":
            assert isinstance(m, Response) and m.status == want
        else:
            assert m.get(key) == want, key


def test_escaped_uri_and_display_name():
    m = parse_message(VALID[7][1])
    uri = parse_uri(m.uri)
    assert uri.user == "sip:user@example.com" and uri.params == {"lr": None} and uri.headers == {"Subject": "foo bar"}
    assert m.from_.display == 'A, <B> "C"' and m.from_.tag == "q"
    assert m.to.uri.user == "ivr" and m.to.tag is None        # addr-spec form


INVALID = [
    ("non-numeric CSeq", msg("OPTIONS sip:ivr@127.0.0.1 SIP/2.0\n" + BASE + "CSeq: one OPTIONS\n\n"), 400, True),
    ("CSeq method differs", msg("OPTIONS sip:ivr@127.0.0.1 SIP/2.0\n" + BASE + "CSeq: 1 INVITE\n\n"), 400, True),
    ("Content-Length beyond the datagram",
     msg("MESSAGE sip:ivr@127.0.0.1 SIP/2.0\n" + BASE + "CSeq: 2 MESSAGE\nContent-Length: 900\n\n") + b"short",
     400, True),
    ("negative Content-Length",
     msg("MESSAGE sip:ivr@127.0.0.1 SIP/2.0\n" + BASE + "CSeq: 2 MESSAGE\nl: -3\n\n"), 400, True),
    ("missing Call-ID", options(BASE.replace("Call-ID: a84b4c76e66710@127.0.0.1\r\n", "")), 400, True),  # 4475 3.3.1
    ("multiple spaces in the request line", options(start="OPTIONS  sip:ivr@127.0.0.1  SIP/2.0"), 400, True),
    ("whitespace inside the Request-URI", options(start="OPTIONS sip:ivr@127.0.0.1; lr SIP/2.0"), 400, True),
    ("Request-URI in <>", options(start="OPTIONS <sip:ivr@127.0.0.1> SIP/2.0"), 400, True),
    ("no version", options(start="OPTIONS sip:ivr@127.0.0.1"), 400, False),
    ("two Call-IDs", options(tail="Call-ID: second@127.0.0.1\n"), 400, True),
    ("status code out of range", msg("SIP/2.0 4294967301 Big\n" + BASE + "CSeq: 1 INVITE\n\n"), 400, False),
    ("unknown SIP version", options(start="OPTIONS sip:ivr@127.0.0.1 SIP/7.0"), 505, True),
    ("unclosed < in To", options(BASE.replace("To: <sip:ivr@127.0.0.1>", "To: <sip:ivr@127.0.0.1")), 400, True),
    ("Via port out of range", options(BASE.replace("5070", "99999")), 400, False),
    ("header line without a colon", options(tail="Garbage\n"), 400, True),
    ("bad Max-Forwards", options(BASE.replace("Max-Forwards: 70", "Max-Forwards: seventy")), 400, True),
    ("bad Request-URI", options(start="OPTIONS sip:ivr@[::zz] SIP/2.0"), 400, True),
    ("binary garbage", bytes(range(256)), 400, False),
    ("empty datagram", b"\r\n\r\n", 400, False),
]


@pytest.mark.parametrize("raw,status,replyable", [(r, s, c) for _, r, s, c in INVALID], ids=[n for n, *_ in INVALID])
def test_invalid_messages(raw, status, replyable):
    with pytest.raises(SipParseError) as err:
        parse_message(raw)
    assert err.value.status == status
    assert can_reply(err.value.message) == replyable
    if replyable:   # the 400 echoes what it can
        resp = make_response(err.value.message, status)
        assert resp.raw("call-id") == err.value.message.raw("call-id")


def test_serialize_round_trip_and_content_length():
    req = Request("INVITE", "sip:ivr@127.0.0.1:5060")
    for name, value in [("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKrt"), ("From", "<sip:a@127.0.0.1>;tag=1"),
                        ("To", "<sip:ivr@127.0.0.1>"), ("Call-ID", "rt"), ("CSeq", "1 INVITE"),
                        ("Content-Length", "999")]:
        req.add(name, value)
    req.body = "v=0\r\nü".encode()
    data = req.to_bytes()
    assert data.count(b"Content-Length") == 1 and f"Content-Length: {len(req.body)}".encode() in data
    again = parse_message(data)
    assert again.body == req.body and again.get("call-id") == "rt" and again.method == "INVITE"


def test_make_response_copies_vias_and_tags_to():
    req = parse_message(VALID[7][1])
    resp = make_response(req, 200, to_tag="srv")
    assert resp.raw_all("via") == req.raw_all("via") and resp.to.tag == "srv"
    tagged = parse_message(VALID[8][1])   # already tagged To keeps its tag
    assert make_response(Request("X", "sip:a@b", tagged.headers), 200, to_tag="other").to.tag == "t"
    assert make_response(req, 100, to_tag="srv").to.tag is None   # 100 Trying carries no tag


def test_via_received_rport_and_response_address():
    req = parse_message(msg("OPTIONS sip:ivr@127.0.0.1 SIP/2.0\n" + BASE + "CSeq: 1 OPTIONS\n\n"))
    fix_via(req, ("127.0.0.5", 40000))
    via = req.top_via
    assert via.params["rport"] == "40000" and via.params["received"] == "127.0.0.5"
    assert response_addr(via) == ("127.0.0.5", 40000)
    assert response_addr(parse_via("SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx")) == ("127.0.0.1", 5060)
    assert response_addr(parse_via("SIP/2.0/UDP [::1]:5070;branch=z9hG4bKx")) == ("::1", 5070)
    ack = Request("ACK", req.uri, list(req.headers))
    ack.set("CSeq", "1 ACK")
    assert txn_key(ack)[-1] == "INVITE" and txn_key(req)[-1] == "OPTIONS"


def test_uri_forms():
    uri = parse_uri("sip:agents@127.0.0.1:5080;transport=udp?X-IVR-Reason=a%20b&Subject=hi")
    assert (uri.user, uri.host, uri.port, uri.params, uri.headers) == (
        "agents", "127.0.0.1", 5080, {"transport": "udp"}, {"X-IVR-Reason": "a b", "Subject": "hi"})
    assert str(parse_uri(str(uri))) == str(uri)
    assert parse_uri("tel:+1-555-0100").user == "+1-555-0100"
    for bad in ("sip:@127.0.0.1", "sip:a@127.0.0.1:0", "sip:a@bad_host", "nocolon", "sip:a@127.0.0.1:80x"):
        with pytest.raises(SipSyntaxError):
            parse_uri(bad)
    contact = parse_name_addr('"Bob" <sip:bob@127.0.0.1:5070;transport=udp>;expires=60;+sip.instance="<urn:x>"')
    assert contact.uri.params == {"transport": "udp"} and contact.params["expires"] == "60"


# ---- digest authentication ---------------------------------------------------------------


def test_rfc2617_test_vector():
    # RFC 2617 section 3.5
    assert digest_response(user="Mufasa", realm="testrealm@host.com", password="Circle Of Life", method="GET",
                           uri="/dir/index.html", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", qop="auth",
                           nc="00000001", cnonce="0a4f113b") == "6629fae49393a05397450978507c4ef1"


def test_digest_server_cycle():
    auth = DigestAuthenticator({"alice": "s3cret"}, realm="ivr")
    challenge = auth.challenge()
    params = parse_digest(challenge)
    assert params["realm"] == "ivr" and params["qop"] == "auth" and params["algorithm"] == "MD5"
    uri = "sip:ivr@127.0.0.1:5060"

    def creds(password="s3cret", nc=1, for_uri=uri):
        return authorization(challenge, method="INVITE", uri=for_uri, user="alice", password=password, nc=nc)

    assert auth.verify("INVITE", uri, creds()).ok
    assert auth.verify("INVITE", uri, creds()).reason == "nonce count reused"       # replay
    assert auth.verify("INVITE", uri, creds(nc=2)).ok
    assert not auth.verify("INVITE", uri, creds("wrong", nc=3)).ok
    assert not auth.verify("INVITE", "sip:other@127.0.0.1", creds(nc=4, for_uri=uri)).ok
    assert not auth.verify("BYE", uri, creds(nc=5)).ok                              # method is in the hash
    assert not auth.verify("INVITE", uri, None).ok
    assert not auth.verify("INVITE", uri, "Digest garbage").ok
    foreign = challenge.replace(params["nonce"], "1234.abcd")
    forged = authorization(foreign, method="INVITE", uri=uri, user="alice", password="s3cret")
    assert auth.verify("INVITE", uri, forged).reason == "nonce not ours"
    expired = DigestAuthenticator({"alice": "s3cret"}, nonce_ttl_s=-10)
    old = authorization(expired.challenge(), method="INVITE", uri=uri, user="alice", password="s3cret")
    result = expired.verify("INVITE", uri, old)
    assert not result.ok and result.stale                                          # retry with a fresh nonce


# ---- guard, context headers, sipfrag -----------------------------------------------------


def test_source_guard_allow_list_and_token_bucket():
    guard = SourceGuard(["127.0.0.0/8", "10.1.0.0/16"], rate_limit_per_s=10, burst=5)
    assert guard.allowed("127.0.0.9") and guard.allowed("10.1.2.3")
    assert not guard.allowed("10.2.0.1") and not guard.allowed("not-an-ip")
    assert SourceGuard(None).allowed("203.0.113.7")
    passed = [guard.within_rate("127.0.0.1", now=100.0) for _ in range(20)]
    assert sum(passed) == 5                                  # the burst
    assert guard.within_rate("127.0.0.2", now=100.0)         # per source
    assert guard.within_rate("127.0.0.1", now=100.2)         # 0.2 s refills 2 tokens
    assert guard.within_rate("127.0.0.1", now=100.2)
    assert not guard.within_rate("127.0.0.1", now=100.2)
    assert guard.dropped == 16


def test_log_throttle():
    throttle = LogThrottle(window_s=10, per_window=2)
    assert [throttle.allow("a", now=t)[0] for t in (0, 1, 2, 3)] == [True, True, False, False]
    assert throttle.allow("a", now=11) == (True, 2)          # new window reports what it swallowed


def test_context_headers_round_trip_and_size_cap():
    headers = dict(context_headers("caller asked, \"now\"", {"intent": "agent", "name": "Zoë", "n": 3}))
    assert "\r" not in headers["X-IVR-Context"] and " " not in headers["X-IVR-Context"]
    assert decode_context(headers["X-IVR-Context"]) == {"intent": "agent", "name": "Zoë", "n": 3}
    big = dict(context_headers("r", {"intent": "agent", "transcript": "x" * 5000}))
    assert decode_context(big["X-IVR-Context"]) == {"intent": "agent", "_truncated": True}
    assert sipfrag_status(b"SIP/2.0 200 OK\r\n") == 200 and sipfrag_status(b"garbage") is None


def test_user_part_may_hold_question_marks_and_via_strictness():
    uri = parse_uri("sip:a?b;c=d@127.0.0.1:5070;transport=udp?Subject=x%40y")
    assert (uri.user, uri.host, uri.port, uri.params, uri.headers) == (
        "a?b;c=d", "127.0.0.1", 5070, {"transport": "udp"}, {"Subject": "x@y"})
    assert parse_uri("soap.beep://127.0.0.1:3002").scheme == "soap.beep"     # kept opaque: the server says 416
    with pytest.raises(SipSyntaxError):
        parse_via("SIP/2.0/UDP 127.0.0.1;;branch=z9hG4bKx", strict=True)
    assert parse_via("SIP/2.0/UDP 127.0.0.1;;branch=z9hG4bKx").branch == "z9hG4bKx"   # lenient: to answer along it
    assert parse_via("SIP/7.0/UDP 127.0.0.1;branch=z9hG4bKx").version == "7.0"


def test_a_response_never_invents_missing_headers():
    req = Request("INVITE", "sip:ivr@127.0.0.1")
    req.add("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKi")
    req.add("CSeq", "1 INVITE")
    assert can_reply(req)
    resp = make_response(req, 400, to_tag="t")
    assert [name for name, _ in resp.headers] == ["Via", "CSeq"]
