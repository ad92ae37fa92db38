"""What the console relay sends through PostgreSQL NOTIFY: one call event per notification, compact.

A notification's payload must be shorter than 8000 bytes (PostgreSQL's limit). The events the
console needs are small once the fields it never reads are left out (timings, candidates other
than FAQ answers, a call's params and stats): a turn is a few hundred bytes. Only an
`AgentRinging` carrying a long transcript, or a turn with a very long utterance, can pass the
limit; then the largest field is halved (lists keep their newest half, texts their start) until
the payload fits, and the notification says `"trimmed": true`. Nothing the pop shows is lost in
practice: the receiving console already has the turns from the `TurnEnded` events and uses the
ringing event's transcript only when it joined late. So no table of bodies (no migration, no
purge, no second query per event); see docs/cluster.md.

    {"v": 1, "n": "node1", "i": "3f2a...", "e": {"type": "TurnEnded", ...}}      an event
    {"v": 1, "n": "node1", "i": "3f2a...", "live": ["c-1", ...]}                 a heartbeat
    {"v": 1, "n": "node1", "i": "3f2a...", "live": [], "bye": true}              the node stops

`n` is the node's name (shown in the console), `i` the sending process (a node skips its own).
"""

import json

from ivr import callevents as ev

CHANNEL = "ivr_console"
VERSION = 1
MAX_PAYLOAD_BYTES = 7_900          # PostgreSQL refuses 8000 and more; a margin for the envelope
MAX_LIVE_IDS = 150                 # a heartbeat names at most this many live calls (else none: see relay.py)
MAX_TRIMS = 60

# The events the console folds (console_calls.CallBook, console_live.on_event); the others stay home.
RELAYED = frozenset({"CallBegan", "TurnEnded", "TransferRequested", "CallEnded", "QueueJoined", "QueueLeft",
                     "AgentRinging", "AgentAnswered", "AgentFailed", "CallbackRequested"})
# Fields the console never reads, left out (the receiver gets the dataclass defaults).
DROPPED = {
    "CallBegan": ("params", "remote", "transport_id", "asr", "tts", "recording", "flow_version"),
    "TurnEnded": ("timing", "t_speech_start_ms", "t_speech_end_ms", "t_endpoint_ms", "t_reply_ms", "latency_ms",
                  "confidence", "endpoint", "next_step", "barge_in"),
    "CallEnded": ("stats", "context", "why"),
}
KEEP_TOP = ("type", "call_id", "t_ms", "at_s", "index", "kind", "agent", "queue", "number")   # never trimmed


def _dumps(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)


def _size(value) -> int:
    return len(_dumps(value).encode()) if isinstance(value, dict | list | str) else 8


def compact(event: ev.CallEvent) -> dict | None:
    """The event as the console needs it, or None when the console has no use for it."""
    kind = type(event).__name__
    if kind not in RELAYED:
        return None
    data = ev.to_dict(event)
    for name in DROPPED.get(kind, ()):
        data.pop(name, None)
    if kind == "TurnEnded":   # the console lists only the FAQ answers weighed
        data["candidates"] = [c for c in data.get("candidates") or ()
                              if isinstance(c, dict) and (c.get("signal") == "faq" or c.get("group") == "faq")][:10]
    return data


def _halve(value):
    if isinstance(value, str):
        return value[: len(value) // 2]
    if isinstance(value, list):
        if len(value) > 1:
            return value[len(value) // 2:]          # the newest half (turns, path)
        return [_halve(value[0])] if value else value
    if isinstance(value, dict) and value:
        key = max(value, key=lambda k: _size(value[k]))
        if _size(value[key]) > 64:
            return {**value, key: _halve(value[key])}
        return dict(list(value.items())[: len(value) // 2])
    return value


def encode_event(node: str, instance: str, event: ev.CallEvent) -> tuple[str | None, bool]:
    """(payload, trimmed); payload None when the console does not need the event or it cannot fit."""
    data = compact(event)
    if data is None:
        return None, False
    envelope = {"v": VERSION, "n": node, "i": instance, "e": data}
    payload = _dumps(envelope)
    trimmed = False
    for _ in range(MAX_TRIMS):
        if len(payload.encode()) <= MAX_PAYLOAD_BYTES:
            return payload, trimmed
        fields = [k for k in data if k not in KEEP_TOP and _size(data[k]) > 16]
        if not fields:
            break
        biggest = max(fields, key=lambda k: _size(data[k]))
        data[biggest] = _halve(data[biggest])
        envelope["trimmed"] = trimmed = True
        payload = _dumps(envelope)
    return (payload, True) if len(payload.encode()) <= MAX_PAYLOAD_BYTES else (None, True)


def encode_heartbeat(node: str, instance: str, live: list[str], bye: bool = False) -> str:
    """The node's live calls (ids), so the others can end calls whose CallEnded they missed.
    More than MAX_LIVE_IDS: `live` is null (the receivers prune nothing by list). `bye`: the node
    stops (cleanly: the others need not wait for its silence)."""
    ids = [c[:100] for c in live] if len(live) <= MAX_LIVE_IDS else None
    return _dumps({"v": VERSION, "n": node, "i": instance, "live": ids, **({"bye": True} if bye else {})})


class BadPayload(ValueError):
    pass


def decode(payload: str) -> tuple[str, str, ev.CallEvent | None, list[str] | None, str]:
    """(node, instance, event or None, live ids or None, kind: event | beat | bye); BadPayload when it is not ours."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        raise BadPayload("not JSON") from None
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise BadPayload(f"not a version {VERSION} relay message")
    node, instance = str(data.get("n", ""))[:100], str(data.get("i", ""))[:64]
    if "live" in data:
        live = data["live"]
        if live is not None and not (isinstance(live, list) and all(isinstance(c, str) for c in live)):
            raise BadPayload("heartbeat: live must be a list of call ids")
        return node, instance, None, live, "bye" if data.get("bye") is True else "beat"
    body = data.get("e")
    if not isinstance(body, dict):
        raise BadPayload("no event")
    try:
        event = ev.from_dict(body)
    except (ValueError, TypeError) as exc:
        raise BadPayload(str(exc)[:200]) from None
    if not isinstance(event.call_id, str) or not event.call_id:
        raise BadPayload("event without a call id")
    return node, instance, event, None, "event"
