"""RFC 4733 telephone-events: DTMF keys carried in RTP instead of as tones.

Payload (4 bytes): event code, E(nd) bit + reserved bit + 6-bit volume (-dBm0), 16-bit duration
in timestamp units. All packets of one event share its RTP timestamp; the duration grows as the
key is held, and the final packet (E set) is sent three times. So a receiver reports a key the
first time it sees a new event timestamp and ignores the rest.
"""

import struct
from collections import deque
from dataclasses import dataclass

KEYS = "0123456789*#ABCD"        # event codes 0-15
MAX_DURATION = 0xFFFF
END_REPEATS = 3                  # RFC 4733 2.5.1.4: the final packet is sent three times
DEFAULT_VOLUME = 10              # -10 dBm0


@dataclass(frozen=True, slots=True)
class DtmfEvent:
    key: str
    end: bool
    volume: int      # 0..63, power level in -dBm0
    duration: int    # timestamp units since the event started


def parse_event(payload: bytes) -> DtmfEvent | None:
    """Decode a telephone-event payload; None if it is too short or not a DTMF key (0-15)."""
    if len(payload) < 4:
        return None
    code, flags, duration = struct.unpack_from("!BBH", payload)
    if code >= len(KEYS):
        return None
    return DtmfEvent(KEYS[code], bool(flags & 0x80), flags & 0x3F, duration)


def build_event(key: str, *, end: bool, duration: int, volume: int = DEFAULT_VOLUME) -> bytes:
    code = KEYS.find(key.upper()) if len(key) == 1 else -1
    if code < 0:
        raise ValueError(f"not a DTMF key: {key!r} (use 0-9 * # A-D)")
    if not 0 <= duration <= MAX_DURATION:
        raise ValueError(f"event duration {duration} does not fit 16 bits")
    if not 0 <= volume <= 0x3F:
        raise ValueError(f"event volume {volume} is not 0..63")
    return struct.pack("!BBH", code, (0x80 if end else 0) | volume, duration)


def build_events(key: str, duration_ms: int = 100, *, rate_hz: int = 8000, ptime_ms: int = 20,
                 volume: int = DEFAULT_VOLUME) -> list[bytes]:
    """The payloads of one key press, one per `ptime_ms`, all to carry the same RTP timestamp
    (the first with the marker bit): growing durations, then the end packet three times."""
    if duration_ms <= 0:
        raise ValueError(f"DTMF duration must be positive, got {duration_ms} ms")
    step = rate_hz * ptime_ms // 1000
    n_packets = -(-duration_ms // ptime_ms)
    total = n_packets * step
    if total > MAX_DURATION:
        raise ValueError(f"DTMF duration {duration_ms} ms is too long for one event")
    payloads = [build_event(key, end=False, duration=i * step, volume=volume) for i in range(1, n_packets)]
    payloads += [build_event(key, end=True, duration=total, volume=volume)] * END_REPEATS
    return payloads


class DtmfReceiver:
    """Turns a stream of event packets into keys, each event once (start, updates, end copies,
    and reordered or duplicated packets all carry the event's timestamp)."""

    def __init__(self, memory: int = 32) -> None:
        self._recent: deque[tuple[int, int]] = deque(maxlen=memory)

    def feed(self, timestamp: int, event: DtmfEvent, ssrc: int = 0) -> str | None:
        ident = (ssrc, timestamp)
        if ident in self._recent:
            return None
        self._recent.append(ident)
        return event.key
