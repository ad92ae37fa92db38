"""The record of one call: turns with what was heard, matched and said, and their timing.

Testers script against `CallTrace.to_dict()` (the JSON of `ivr replay --json`): keep its
keys stable. Fields under `timing` and `latency_ms` are wall-clock measurements and vary
run to run; everything else is deterministic for a given input.
"""

import json
from dataclasses import asdict, dataclass, field

TRACE_VERSION = 1


@dataclass(slots=True)
class Turn:
    index: int
    kind: str                       # start | speech | dtmf | no_input
    step: str | None                # the step that was listening
    heard: str = ""
    confidence: float | None = None
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


@dataclass(slots=True)
class Outcome:
    kind: str                # hangup | transfer | caller_hangup
    target: str | None = None
    reason: str = ""
    step: str | None = None
    t_ms: int = 0
    context: dict = field(default_factory=dict)


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
        data = asdict(self)
        data["version"] = TRACE_VERSION
        return data


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
