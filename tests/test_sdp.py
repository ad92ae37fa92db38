"""SDP offer/answer (RFC 3264/4566): codec choice, telephone-event, hold, declined streams, errors."""

import pytest

from ivr.transports.sip.sdp import SdpError, build_answer, build_offer, negotiate, parse_sdp

BARESIP_OFFER = b"""v=0\r
o=- 3941660056 2015049434 IN IP4 127.0.0.1\r
s=-\r
c=IN IP4 127.0.0.1\r
t=0 0\r
a=tool:baresip 1.0.0\r
m=audio 20094 RTP/AVP 0 8 101\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-15\r
a=sendrecv\r
a=rtcp-rsize\r
a=minptime:20\r
a=ptime:20\r
"""


def offer(formats="0 8 101", direction="a=sendrecv", c="c=IN IP4 127.0.0.1", extra_media="", rtpmaps=None,
          proto="RTP/AVP", port=40000) -> bytes:
    rtpmaps = rtpmaps if rtpmaps is not None else [
        "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000",
        "a=rtpmap:9 G722/8000", "a=rtpmap:96 opus/48000/2", "a=rtpmap:97 telephone-event/48000"]
    lines = ["v=0", "o=t 1 1 IN IP4 127.0.0.1", "s=-", c, "t=0 0", *([extra_media] if extra_media else []),
             f"m=audio {port} {proto} {formats}", *rtpmaps, direction]
    return ("\r\n".join(line for line in lines if line) + "\r\n").encode()


def test_baresip_offer():
    sdp = parse_sdp(BARESIP_OFFER)
    chosen = negotiate(sdp)
    assert (chosen.remote_host, chosen.remote_port) == ("127.0.0.1", 20094)
    assert (chosen.codec, chosen.payload_type) == ("PCMU", 0)
    assert chosen.dtmf_pt == 101 and chosen.direction == "sendrecv" and chosen.ptime_ms == 20 and chosen.we_send
    assert sdp.media[0].fmtp[101] == "0-15"


@pytest.mark.parametrize("formats,codec,dtmf", [
    ("0 8 101", "PCMU", 101),
    ("8 0 101", "PCMA", 101),                     # the offerer's order wins
    ("96 9 8 97", "PCMA", None),                  # opus and G.722 skipped; 48 kHz events do not fit G.711
    ("0", "PCMU", None),
])
def test_codec_choice_follows_the_offer(formats, codec, dtmf):
    chosen = negotiate(parse_sdp(offer(formats)))
    assert (chosen.codec, chosen.dtmf_pt) == (codec, dtmf)


def test_static_payload_types_need_no_rtpmap_and_names_ignore_case():
    assert negotiate(parse_sdp(offer("8", rtpmaps=[]))).codec == "PCMA"
    rtpmaps = ["a=rtpmap:100 pcmu/8000", "a=rtpmap:101 telephone-event/8000"]
    chosen = negotiate(parse_sdp(offer("100 101", rtpmaps=rtpmaps)))
    assert (chosen.codec, chosen.payload_type) == ("PCMU", 100)


@pytest.mark.parametrize("body,status,words", [
    (offer("96 9"), 488, "no common codec"),
    (offer(c="c=IN IP6 ::1"), 488, "IPv4 only"),
    (offer(proto="RTP/SAVP"), 488, "not supported"),
    (offer(port=0), 488, "no audio stream"),
    (offer(c=""), 400, "no c= line"),
    (b"hello world", 400, "v="),
    (b"v=0\r\nm=audio x RTP/AVP 0\r\n", 400, "bad m= line"),
    (b"v=0\r\nc=IN IP4 not-an-ip\r\nm=audio 1 RTP/AVP 0\r\n", 488, "not an IPv4"),
    (b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:x PCMU/8000\r\n", 400, "rtpmap"),
    (b"\xff\xfe", 400, "UTF-8"),
])
def test_offers_we_cannot_take(body, status, words):
    with pytest.raises(SdpError) as err:
        negotiate(parse_sdp(body))
    assert err.value.status == status and words in err.value.reason


@pytest.mark.parametrize("direction,c,answer,held", [
    ("a=sendrecv", "c=IN IP4 127.0.0.1", "sendrecv", False),
    ("a=sendonly", "c=IN IP4 127.0.0.1", "recvonly", True),
    ("a=inactive", "c=IN IP4 127.0.0.1", "inactive", True),
    ("a=recvonly", "c=IN IP4 127.0.0.1", "sendonly", False),
    ("", "c=IN IP4 0.0.0.0", "sendrecv", True),            # RFC 2543 hold
])
def test_hold_directions(direction, c, answer, held):
    chosen = negotiate(parse_sdp(offer(direction=direction, c=c)))
    assert (chosen.direction, chosen.on_hold) == (answer, held)


def test_session_level_direction_and_media_level_connection():
    body = (b"v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\na=sendonly\r\n"
            b"m=audio 4000 RTP/AVP 0\r\nc=IN IP4 127.0.0.1\r\n")
    chosen = negotiate(parse_sdp(body))
    assert chosen.remote_host == "127.0.0.1" and chosen.direction == "recvonly"


def test_answer_declines_other_streams_and_carries_our_port():
    sdp = parse_sdp(offer("8 101", extra_media="m=video 5000 RTP/AVP 96"))
    chosen = negotiate(sdp)
    assert chosen.media_index == 1
    answer = build_answer(sdp, chosen, host="127.0.0.1", port=31000, session_id=7, version=3).decode()
    lines = answer.split("\r\n")
    assert lines[:5] == ["v=0", "o=ivr 7 3 IN IP4 127.0.0.1", "s=ivr", "c=IN IP4 127.0.0.1", "t=0 0"]
    assert lines[5] == "m=video 0 RTP/AVP 96"
    assert "m=audio 31000 RTP/AVP 8 101" in lines and "a=rtpmap:8 PCMA/8000" in lines
    assert "a=rtpmap:101 telephone-event/8000" in lines and "a=ptime:20" in lines and "a=sendrecv" in lines
    again = negotiate(parse_sdp(answer.encode()))   # our answer parses as a valid description itself
    assert (again.codec, again.remote_port, again.dtmf_pt) == ("PCMA", 31000, 101)


def test_our_offer_and_a_peer_answer():
    ours = build_offer(host="127.0.0.1", port=32000, session_id=1, version=0)
    assert b"m=audio 32000 RTP/AVP 0 8 101" in ours
    reply = negotiate(parse_sdp(offer("8 101", direction="a=recvonly")))
    assert reply.codec == "PCMA" and reply.we_send and reply.direction == "sendonly"
