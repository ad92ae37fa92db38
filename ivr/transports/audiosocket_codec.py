"""Asterisk AudioSocket wire codec (pure): bytes <-> messages, no I/O.

Wire: each message is 1 byte kind, 2 bytes big-endian payload length, then the payload.
Kinds: 0x00 hang up, 0x01 UUID (16 bytes, first), 0x03 DTMF (1 ASCII byte), 0x10 audio (slin16
little-endian, 8 kHz mono, 20 ms = 320 bytes), 0xff error (Asterisk: bit flags 0x01 caller hung
up, 0x02 frame forwarding error, 0x04 memory error).
"""

import struct
import uuid
from dataclasses import dataclass

import numpy as np

KIND_HANGUP, KIND_UUID, KIND_DTMF, KIND_AUDIO, KIND_ERROR = 0x00, 0x01, 0x03, 0x10, 0xFF
WIRE_RATE_HZ = 8000
WIRE_FRAME_SAMPLES = WIRE_RATE_HZ // 50          # 20 ms
DEFAULT_MAX_PAYLOAD = 16 * 1024                   # 1 s of audio
MAX_WIRE_PAYLOAD = 0xFFFF                         # what the 2-byte length allows
DTMF_KEYS = frozenset("0123456789*#ABCD")
ASTERISK_ERRORS = {0x01: "caller hung up", 0x02: "frame forwarding error", 0x04: "memory error"}
_HEADER = struct.Struct(">BH")


@dataclass(frozen=True, slots=True)
class Message:
    kind: int
    payload: bytes = b""


def encode(kind: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


def audio_message(pcm_8k: np.ndarray) -> bytes:
    return encode(KIND_AUDIO, np.asarray(pcm_8k, dtype="<i2").tobytes())


def uuid_message(call_uuid: uuid.UUID) -> bytes:
    return encode(KIND_UUID, call_uuid.bytes)


def dtmf_message(key: str) -> bytes:
    return encode(KIND_DTMF, key.encode("ascii"))


def hangup_message() -> bytes:
    return encode(KIND_HANGUP)


def error_message(code: int = 0) -> bytes:
    return encode(KIND_ERROR, bytes([code]) if code else b"")


def parse_audio(payload: bytes) -> np.ndarray:
    """slin16 little-endian -> int16 (a stray odd byte is dropped)."""
    return np.frombuffer(payload[: len(payload) // 2 * 2], dtype="<i2").astype(np.int16)


def parse_dtmf(payload: bytes) -> str | None:
    key = payload[:1].decode("ascii", "replace").upper()
    return key if len(payload) == 1 and key in DTMF_KEYS else None


def describe_error(payload: bytes) -> str:
    if not payload:
        return "no code"
    code = payload[0]
    names = [text for bit, text in ASTERISK_ERRORS.items() if code & bit]
    return f"0x{payload.hex()} ({', '.join(names) or 'application-specific'})"


class Decoder:
    """Bytes in (any split), whole messages out. A payload announced past `max_payload` stops
    decoding: `error` says why, and the messages before it are still returned."""

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self.error: str | None = None
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an unfinished message (non-zero at EOF means the stream was cut mid-message)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Message]:
        if self.error:
            return []
        self._buf += data
        out: list[Message] = []
        while len(self._buf) >= _HEADER.size:
            kind, length = _HEADER.unpack_from(self._buf)
            if length > self.max_payload:
                self.error = f"kind 0x{kind:02x} payload of {length} bytes (limit {self.max_payload})"
                self._buf.clear()
                break
            end = _HEADER.size + length
            if len(self._buf) < end:
                break
            out.append(Message(kind, bytes(self._buf[_HEADER.size : end])))
            del self._buf[:end]
        return out

