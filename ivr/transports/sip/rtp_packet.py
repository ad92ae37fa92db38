"""RTP packets, pure (no sockets): `parse_rtp`/`build_rtp` (RFC 3550 fixed header, CSRCs,
extension, padding) and the G.711 codecs we send (`PCMU`, `PCMA`). `RtpSession` is in rtp.py.
"""

import struct
from dataclasses import dataclass

RTP_VERSION = 2
HEADER = struct.Struct("!BBHII")


@dataclass(frozen=True, slots=True)
class Codec:
    name: str           # "PCMU" | "PCMA"
    payload_type: int   # 0 | 8
    rate_hz: int = 8000


PCMU = Codec("PCMU", 0)
PCMA = Codec("PCMA", 8)


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None   # (profile id, data: a multiple of 4 bytes)


def parse_rtp(data: bytes) -> RtpPacket | None:
    """One RTP packet, or None for anything that is not a well-formed RTP v2 packet."""
    if len(data) < HEADER.size:
        return None
    b0, b1, seq, ts, ssrc = HEADER.unpack_from(data)
    if b0 >> 6 != RTP_VERSION:
        return None
    end = len(data)
    if b0 & 0x20:                               # padding: the last byte counts it
        pad = data[-1]
        if pad == 0:
            return None
        end -= pad
    pos = HEADER.size + 4 * (b0 & 0x0F)
    if pos > end:
        return None
    csrcs = struct.unpack_from(f"!{b0 & 0x0F}I", data, HEADER.size)
    extension = None
    if b0 & 0x10:
        if pos + 4 > end:
            return None
        profile, words = struct.unpack_from("!HH", data, pos)
        ext_end = pos + 4 + 4 * words
        if ext_end > end:
            return None
        extension = (profile, bytes(data[pos + 4 : ext_end]))
        pos = ext_end
    return RtpPacket(b1 & 0x7F, seq, ts, ssrc, bytes(data[pos:end]), bool(b1 & 0x80), csrcs, extension)


def build_rtp(payload_type: int, seq: int, timestamp: int, ssrc: int, payload: bytes, *, marker: bool = False,
              csrcs: tuple[int, ...] = (), extension: tuple[int, bytes] | None = None, padding: int = 0) -> bytes:
    if not (0 <= payload_type < 128 and 0 <= seq < 1 << 16 and 0 <= timestamp < 1 << 32 and 0 <= ssrc < 1 << 32):
        raise ValueError(f"RTP field out of range: pt={payload_type} seq={seq} ts={timestamp} ssrc={ssrc}")
    if len(csrcs) > 15 or not 0 <= padding < 256:
        raise ValueError(f"{len(csrcs)} CSRCs (max 15) / {padding} padding bytes (max 255)")
    b0 = RTP_VERSION << 6 | (0x20 if padding else 0) | (0x10 if extension else 0) | len(csrcs)
    parts = [HEADER.pack(b0, (0x80 if marker else 0) | payload_type, seq, timestamp, ssrc)]
    parts += [struct.pack("!I", c) for c in csrcs]
    if extension is not None:
        profile, ext = extension
        if len(ext) % 4 or len(ext) > 4 * 0xFFFF:
            raise ValueError(f"RTP header extension must be whole 32-bit words, got {len(ext)} bytes")
        parts += [struct.pack("!HH", profile, len(ext) // 4), ext]
    parts.append(payload)
    if padding:
        parts.append(bytes(padding - 1) + bytes([padding]))
    return b"".join(parts)
