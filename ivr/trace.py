"""The record of one call: turns with what was heard, matched and said, and their timing.

The call loop does not write it: it emits call events (`ivr/callevents.py`), and
`TraceBuilder` folds them into a `CallTrace`, the same way in a replay, a live call's
record writer or a database. Testers script against `CallTrace.to_dict()` (the JSON of
`ivr replay --json`): keep its keys stable. Fields under `timing` and `latency_ms` are
wall-clock measurements and vary run to run; everything else is deterministic for a given input.
"""

import json
from dataclasses import dataclass, field, fields

from ivr.callevents import CallBegan, CallEnded, CallEvent, TurnEnded

TRACE_VERSION = 1


@dataclass(slots=True)
class Turn:
    index: int
    kind: str                       # start | speech | dtmf | no_input
    step: str | None                # the step that was listening
    heard: str = ""
    confidence: float | None = None
    candidates: list = field(default_factory=list)   # up to 3 {choice, score, ...} the NLU weighed
    match: dict | None = None       # {choice, score, via} or None
    said: list[str] = field(default_factory=list)
    next_step: str | None = None
    endpoint: str | None = None     # silence | early_match | max_length | dtmf | timeout
    barge_in: bool = False
    t_speech_start_ms: int | None = None
    t_speech_end_ms: int | None = None   # end of the last voiced caller frame
    t_endpoint_ms: int | None = None     # when the turn was declared over
    t_reply_ms: int | None = None        # first reply frame out (audio time)
    latency_ms: float | None = None      # last voiced frame -> first reply frame
    timing: dict = field(default_factory=dict)  # endpoint_silence_ms, asr_ms, flow_ms, tts_ms
    sentiment: float | None = None       # the utterance's score, -1 angry .. 1 happy (ivr.sentiment)


    def event(self, call_id: str, t_ms: int, at_s: float) -> TurnEnded:
        """This turn, finished, as the event that tells everyone."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(said=tuple(self.said), candidates=tuple(self.candidates), timing=dict(self.timing))
        return TurnEnded(call_id=call_id, t_ms=t_ms, at_s=at_s, **data)

    @classmethod
    def from_event(cls, event: TurnEnded) -> "Turn":
        data = {f.name: getattr(event, f.name) for f in fields(cls)}
        data.update(said=list(event.said), candidates=[dict(c) for c in event.candidates], timing=dict(event.timing))
        return cls(**data)


@dataclass(slots=True)
class Outcome:
    kind: str                # hangup | transfer | transfer_failed | caller_hangup | protocol_error | ...
    target: str | None = None
    reason: str = ""
    step: str | None = None
    t_ms: int = 0
    context: dict = field(default_factory=dict)
    why: str = ""            # what ended the call on the wire (peer's stop/BYE, a protocol fault), if known


@dataclass(slots=True)
class CallTrace:
    call_id: str
    flow: str
    asr: str
    tts: str
    turns: list[Turn] = field(default_factory=list)
    outcome: Outcome | None = None
    path: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = _plain(self)
        data["version"] = TRACE_VERSION
        return data


def _plain(obj):
    """Like `dataclasses.asdict` for the trace's plain fields, without its deep copies (10x faster)."""
    if hasattr(obj, "__dataclass_fields__"):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


class TraceBuilder:
    """Folds one call's events into its `CallTrace` (`apply` each event in order)."""

    def __init__(self, call_id: str = "", flow: str = "", asr: str = "", tts: str = "") -> None:
        self.trace = CallTrace(call_id, flow, asr, tts)
        self.began: CallBegan | None = None
        self.ended: CallEnded | None = None

    def apply(self, event: CallEvent) -> None:
        trace = self.trace
        if isinstance(event, CallBegan):
            self.began = event
            trace.call_id, trace.flow, trace.asr, trace.tts = event.call_id, event.flow, event.asr, event.tts
        elif isinstance(event, TurnEnded):
            trace.turns.append(Turn.from_event(event))
        elif isinstance(event, CallEnded):
            self.ended = event
            trace.outcome = Outcome(event.kind, event.target, event.reason, event.step, event.t_ms,
                                    dict(event.context), event.why)
            trace.path = list(event.path)
            trace.stats = dict(event.stats)


def fold(events) -> CallTrace:
    """The trace of a call from its events (e.g. read back from a JSONL file)."""
    builder = TraceBuilder()
    for event in events:
        builder.apply(event)
    return builder.trace


def deterministic_view(trace: dict) -> dict:
    """The trace without wall-clock measurements: equal for equal input."""
    turns = [{k: v for k, v in t.items() if k not in ("latency_ms", "timing")} for t in trace["turns"]]
    stats = {k: v for k, v in trace.get("stats", {}).items() if k in ("frames", "audio_ms")}
    return {**trace, "turns": turns, "stats": stats}


def write_json(path, data: dict) -> None:
    """Write a trace (or any report) as readable UTF-8 JSON, creating parent folders."""
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
