"""SDP offer/answer for one audio stream (RFC 4566, RFC 3264): IPv4, G.711, RFC 4733 events.

We take the first audio stream we can serve, pick the first of the offer's formats that is
PCMU or PCMA (the offerer's preference order), add telephone-event at the same clock rate if
offered, and answer every other stream with port 0. Hold is an offer that is sendonly or
inactive, or has connection address 0.0.0.0 (the RFC 2543 style).
"""

import ipaddress
from dataclasses import dataclass, field

G711 = {"PCMU": 0, "PCMA": 8}                   # name -> static payload type
STATIC = {0: ("PCMU", 8000), 8: ("PCMA", 8000)}
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
ANSWER_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}
DEFAULT_DTMF_PT = 101
PTIME_MS = 20


class SdpError(ValueError):
    def __init__(self, reason: str, status: int = 488) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


@dataclass(slots=True)
class MediaLine:
    media: str
    port: int
    proto: str
    formats: list[str]
    host: str | None = None                                      # media-level c=
    rtpmap: dict[int, tuple[str, int]] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    direction: str | None = None
    ptime_ms: int | None = None


@dataclass(slots=True)
class SessionDescription:
    host: str | None = None                                      # session-level c=
    direction: str | None = None
    media: list[MediaLine] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Negotiated:
    remote_host: str
    remote_port: int
    codec: str                    # PCMU | PCMA
    payload_type: int
    rate_hz: int
    dtmf_pt: int | None           # telephone-event payload type, None when not offered
    direction: str                # ours, as put in the answer
    media_index: int
    ptime_ms: int | None = None   # what the peer asked for (we always send 20 ms)

    @property
    def we_send(self) -> bool:
        return self.direction in ("sendrecv", "sendonly") and self.remote_host != "0.0.0.0"

    @property
    def on_hold(self) -> bool:
        return not self.we_send


def parse_sdp(body: bytes) -> SessionDescription:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SdpError("SDP is not UTF-8", 400) from exc
    sdp, current = SessionDescription(), None
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines or not lines[0].startswith("v="):
        raise SdpError("SDP must start with v=", 400)
    for line in lines:
        kind, eq, value = line.partition("=")
        if not eq or len(kind) != 1:
            raise SdpError(f"bad SDP line {line[:40]!r}", 400)
        if kind == "m":
            parts = value.split()
            if len(parts) < 4 or not parts[1].split("/")[0].isdigit():
                raise SdpError(f"bad m= line {value[:40]!r}", 400)
            current = MediaLine(parts[0], int(parts[1].split("/")[0]), parts[2], parts[3:])
            sdp.media.append(current)
        elif kind == "c":
            host = _connection(value)
            if current is None:
                sdp.host = host
            else:
                current.host = host
        elif kind == "a":
            _attribute(value, sdp, current)
    return sdp


def _connection(value: str) -> str:
    parts = value.split()
    if len(parts) < 3 or parts[0] != "IN":
        raise SdpError(f"bad c= line {value[:40]!r}", 400)
    if parts[1] != "IP4":
        raise SdpError(f"address type {parts[1][:10]} not supported (IPv4 only)")
    address = parts[2].split("/")[0]
    try:
        ipaddress.IPv4Address(address)
    except ValueError as exc:
        raise SdpError(f"c= address {address[:40]!r} is not an IPv4 address") from exc
    return address


def _attribute(value: str, sdp: SessionDescription, media: MediaLine | None) -> None:
    name, _, arg = value.partition(":")
    if name in DIRECTIONS:
        if media is None:
            sdp.direction = name
        else:
            media.direction = name
        return
    if media is None:
        return
    try:
        if name == "rtpmap":
            pt, _, encoding = arg.partition(" ")
            enc = encoding.strip().split("/")
            media.rtpmap[int(pt)] = (enc[0], int(enc[1]) if len(enc) > 1 else 8000)
        elif name == "fmtp":
            pt, _, params = arg.partition(" ")
            media.fmtp[int(pt)] = params.strip()
        elif name == "ptime":
            media.ptime_ms = int(float(arg))
    except ValueError as exc:
        raise SdpError(f"bad a={name} attribute {arg[:40]!r}", 400) from exc


def _format(media: MediaLine, fmt: str) -> tuple[str, int] | None:
    if not fmt.isdigit():
        return None
    pt = int(fmt)
    if pt in media.rtpmap:
        name, rate = media.rtpmap[pt]
        return name.upper() if name.upper() in G711 else name.lower(), rate
    return STATIC.get(pt)


def negotiate(sdp: SessionDescription) -> Negotiated:
    """Choose our stream and codec from an offer (or, for our own offers, from the answer)."""
    reasons = []
    for index, media in enumerate(sdp.media):
        if media.media != "audio" or media.port == 0:
            continue
        if media.proto.upper() not in ("RTP/AVP", "RTP/AVPF"):
            reasons.append(f"transport {media.proto[:20]} not supported")
            continue
        host = media.host or sdp.host
        if host is None:
            raise SdpError("no c= line for the audio stream", 400)
        formats = [(fmt, _format(media, fmt)) for fmt in media.formats]
        codec = next(((int(f), d) for f, d in formats if d and d[0] in G711 and d[1] == 8000), None)
        if codec is None:
            reasons.append("no common codec (we take PCMU or PCMA)")
            continue
        dtmf = next((int(f) for f, d in formats if d and d[0] == "telephone-event" and d[1] == 8000), None)
        direction = media.direction or sdp.direction or "sendrecv"
        return Negotiated(host, media.port, codec[1][0], codec[0], 8000, dtmf, ANSWER_DIRECTION[direction],
                          index, media.ptime_ms)
    raise SdpError(reasons[0] if reasons else "no audio stream offered")


def _origin(session_id: int, version: int, host: str) -> list[str]:
    return ["v=0", f"o=ivr {session_id} {version} IN IP4 {host}", "s=ivr", f"c=IN IP4 {host}", "t=0 0"]


def _audio_lines(port: int, codecs: list[tuple[str, int]], dtmf_pt: int | None, direction: str) -> list[str]:
    fmts = [str(pt) for _, pt in codecs] + ([str(dtmf_pt)] if dtmf_pt is not None else [])
    lines = [f"m=audio {port} RTP/AVP {' '.join(fmts)}"]
    lines += [f"a=rtpmap:{pt} {name}/8000" for name, pt in codecs]
    if dtmf_pt is not None:
        lines += [f"a=rtpmap:{dtmf_pt} telephone-event/8000", f"a=fmtp:{dtmf_pt} 0-16"]
    return [*lines, f"a=ptime:{PTIME_MS}", f"a={direction}"]


def build_answer(offer: SessionDescription, chosen: Negotiated, *, host: str, port: int,
                 session_id: int, version: int, direction: str | None = None) -> bytes:
    lines = _origin(session_id, version, host)
    for index, media in enumerate(offer.media):
        if index == chosen.media_index:
            lines += _audio_lines(port, [(chosen.codec, chosen.payload_type)], chosen.dtmf_pt,
                                  direction or chosen.direction)
        else:   # every offered stream gets a line; port 0 declines it (RFC 3264 6)
            lines.append(f"m={media.media} 0 {media.proto} {media.formats[0] if media.formats else '0'}")
    return ("\r\n".join(lines) + "\r\n").encode()


def build_offer(*, host: str, port: int, session_id: int, version: int, direction: str = "sendrecv",
                codecs: tuple[str, ...] = ("PCMU", "PCMA"), dtmf_pt: int | None = DEFAULT_DTMF_PT) -> bytes:
    lines = _origin(session_id, version, host) + _audio_lines(port, [(c, G711[c]) for c in codecs], dtmf_pt,
                                                               direction)
    return ("\r\n".join(lines) + "\r\n").encode()
