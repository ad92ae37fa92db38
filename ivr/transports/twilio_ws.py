"""Twilio Media Streams (bidirectional) wire codec: JSON text messages <-> typed events.

Pure functions, no I/O: `decode` turns one text message into an event or raises `WireError`;
the `*_message` functions build the JSON both sides send. The server adapter
(`ws_server.py`) and the test/load client (`ivr/clients/twilio_ws.py`) share it.

Audio on the wire is base64 G.711 mu-law, 8 kHz mono. Messages from Twilio: connected, start,
media, dtmf, mark (an echo of ours, once the audio before it has played), stop. Messages to
Twilio: media, mark, clear.
"""

import base64
import binascii
import functools
import json
from dataclasses import dataclass, field

WIRE_RATE_HZ = 8000
WIRE_ENCODING = "audio/x-mulaw"
CLOSE_REASON_MAX_BYTES = 123      # RFC 6455: a close frame's reason fits in 123 bytes
DTMF_KEYS = frozenset("0123456789*#ABCD")


class WireError(ValueError):
    """A message we cannot use (bad JSON, missing field, bad base64): log, count, ignore."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind          # a short counter name: bad_json, bad_field, bad_payload, ...


@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str = "Call"
    version: str = "1.0.0"


@dataclass(frozen=True, slots=True)
class Start:
    stream_sid: str
    call_sid: str = ""
    account_sid: str = ""
    tracks: tuple[str, ...] = ("inbound",)
    custom_parameters: dict = field(default_factory=dict, hash=False)
    encoding: str = WIRE_ENCODING
    rate_hz: int = WIRE_RATE_HZ
    channels: int = 1


@dataclass(frozen=True, slots=True)
class Media:
    payload: bytes                # mu-law bytes, one per sample
    track: str = "inbound"
    chunk: int = 0
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class Mark:
    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    call_sid: str = ""


@dataclass(frozen=True, slots=True)
class Unknown:
    event: str


# Outbound (server -> Twilio) messages, as the client sees them.
@dataclass(frozen=True, slots=True)
class Clear:
    pass


Event = Connected | Start | Media | Dtmf | Mark | Stop | Clear | Unknown


def _field(obj: dict, key: str, kind: type = str):
    value = obj.get(key)
    if not isinstance(value, kind):
        raise WireError("bad_field", f"{key!r} missing or not {kind.__name__}")
    return value


def _int(value, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def decode_payload(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WireError("bad_payload", "media payload is not base64") from exc


def decode(text: str | bytes) -> Event:
    """One WebSocket text message -> an event (either direction). Raises WireError."""
    try:
        msg = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WireError("bad_json", "not JSON") from exc
    if not isinstance(msg, dict):
        raise WireError("bad_json", "not a JSON object")
    event = _field(msg, "event")
    if event == "connected":
        return Connected(str(msg.get("protocol", "")), str(msg.get("version", "")))
    if event == "start":
        start = _field(msg, "start", dict)
        fmt = start.get("mediaFormat") if isinstance(start.get("mediaFormat"), dict) else {}
        params = start.get("customParameters") if isinstance(start.get("customParameters"), dict) else {}
        stream_sid = start.get("streamSid") or msg.get("streamSid")
        if not isinstance(stream_sid, str) or not stream_sid:
            raise WireError("bad_field", "'streamSid' missing")
        tracks = start.get("tracks") if isinstance(start.get("tracks"), list) else ["inbound"]
        return Start(stream_sid, str(start.get("callSid", "")), str(start.get("accountSid", "")),
                     tuple(str(t) for t in tracks), {str(k): str(v) for k, v in params.items()},
                     str(fmt.get("encoding", WIRE_ENCODING)), _int(fmt.get("sampleRate"), WIRE_RATE_HZ),
                     _int(fmt.get("channels"), 1))
    if event == "media":
        media = _field(msg, "media", dict)
        payload = decode_payload(_field(media, "payload"))
        return Media(payload, str(media.get("track", "inbound")), _int(media.get("chunk")),
                     _int(media.get("timestamp")))
    if event == "dtmf":
        digit = _field(_field(msg, "dtmf", dict), "digit")
        if len(digit) != 1 or digit.upper() not in DTMF_KEYS:
            raise WireError("bad_field", f"unknown DTMF digit {digit[:8]!r}")
        return Dtmf(digit.upper())
    if event == "mark":
        return Mark(_field(_field(msg, "mark", dict), "name"))
    if event == "stop":
        stop = msg.get("stop") if isinstance(msg.get("stop"), dict) else {}
        return Stop(str(stop.get("callSid", "")))
    if event == "clear":
        return Clear()
    return Unknown(event[:40])


def _dumps(msg: dict) -> str:
    return json.dumps(msg, separators=(",", ":"))


# ---- server -> Twilio -----------------------------------------------------------------------

@functools.lru_cache(maxsize=1024)
def _media_head(stream_sid: str) -> str:
    return '{"event":"media","streamSid":' + json.dumps(stream_sid) + ',"media":{"payload":"'


def media_message(stream_sid: str, mulaw: bytes) -> str:
    """The JSON `_dumps` makes of {"event": "media", "streamSid": ..., "media": {"payload": ...}}, built
    without a dict and an encoder run: it is sent 50 times a second per call while a prompt plays."""
    return _media_head(stream_sid) + base64.b64encode(mulaw).decode("ascii") + '"}}'


def mark_message(stream_sid: str, name: str) -> str:
    return _dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    return _dumps({"event": "clear", "streamSid": stream_sid})


def _size(data: dict) -> int:
    return len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def close_reason(action: str, **fields: str) -> str:
    """A JSON close reason that fits the 123-byte limit: values are cut, never the JSON.
    The reason is cut first (then the other fields, last first): the target matters most."""
    data = {"action": action[:40], **{k: str(v) for k, v in fields.items()}}
    for key in sorted(reversed(list(fields)), key=lambda k: k != "reason"):
        while (excess := _size(data) - CLOSE_REASON_MAX_BYTES) > 0 and data[key]:
            data[key] = data[key][: -max(1, excess // 4)]
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


# ---- Twilio -> server (used by the client that plays Twilio) -------------------------------

def connected_message() -> str:
    return _dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def start_message(stream_sid: str, call_sid: str, custom: dict, seq: int = 1,
                  account_sid: str = "AC00000000000000000000000000000000") -> str:
    return _dumps({"event": "start", "sequenceNumber": str(seq), "streamSid": stream_sid,
                   "start": {"accountSid": account_sid, "streamSid": stream_sid, "callSid": call_sid,
                             "tracks": ["inbound"], "customParameters": dict(custom),
                             "mediaFormat": {"encoding": WIRE_ENCODING, "sampleRate": WIRE_RATE_HZ,
                                             "channels": 1}}})


def inbound_media_message(stream_sid: str, mulaw: bytes, seq: int, chunk: int, timestamp_ms: int) -> str:
    return _dumps({"event": "media", "sequenceNumber": str(seq), "streamSid": stream_sid,
                   "media": {"track": "inbound", "chunk": str(chunk), "timestamp": str(timestamp_ms),
                             "payload": base64.b64encode(mulaw).decode("ascii")}})


def dtmf_message(stream_sid: str, digit: str, seq: int) -> str:
    return _dumps({"event": "dtmf", "streamSid": stream_sid, "sequenceNumber": str(seq),
                   "dtmf": {"track": "inbound_track", "digit": digit}})


def mark_echo_message(stream_sid: str, name: str, seq: int) -> str:
    return _dumps({"event": "mark", "sequenceNumber": str(seq), "streamSid": stream_sid,
                   "mark": {"name": name}})


def stop_message(stream_sid: str, call_sid: str, seq: int,
                 account_sid: str = "AC00000000000000000000000000000000") -> str:
    return _dumps({"event": "stop", "sequenceNumber": str(seq), "streamSid": stream_sid,
                   "stop": {"accountSid": account_sid, "callSid": call_sid}})
