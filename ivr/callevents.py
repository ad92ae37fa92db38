"""The call events: what happened in a call, as it happens, for everything that wants to know.

The call loop emits these (through the `emit` callable it is given); the service's hub
(`ivr/service/hub.py`) fans them out to subscribers: the record builder (`ivr/records.py`,
the trace of `ivr replay --json`), the database writer, metrics, reports, the agent console.
Nothing reaches into the call loop; everything subscribes here.

A closed set of frozen dataclasses, keyword-only, plain data only (str, numbers, bool,
tuples, dicts of plain data), so an event can be logged, serialised (`to_dict`/`from_dict`),
redacted (`dataclasses.replace`) and sent to another process as is. Every event has:

- `call_id`: the id the service made for this call (`CallBegan.transport_id` is the peer's);
- `t_ms`: audio time in the call (20 ms frames consumed so far), deterministic in replay;
- `at_s`: wall time (Unix seconds) when the event was made.

This module imports nothing from `ivr`: anyone can depend on it.
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

EVENTS_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEvent:
    call_id: str
    t_ms: int = 0
    at_s: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CallBegan(CallEvent):
    transport: str = ""           # sip | ws | audiosocket | mic | replay | chat
    transport_id: str = ""        # the peer's own id: SIP Call-ID, Twilio callSid, AudioSocket UUID
    caller: str = ""
    called: str = ""
    remote: str = ""              # peer address "host:port"
    flow: str = ""
    flow_version: str = ""        # content hash of the flow's source files (see `flow_version`)
    language: str = ""
    asr: str = ""
    tts: str = ""
    params: dict = field(default_factory=dict, hash=False)   # e.g. bridge custom parameters
    recording: str = ""           # the call's stereo WAV (ivr/recordings.py); "" when not recorded


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechStarted(CallEvent):
    step: str | None = None       # the step listening
    barge_in: bool = False        # over a prompt, which was cut


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnEnded(CallEvent):
    """One turn, complete: the caller's input (or the call's start), what it was taken to mean,
    and the reply. Emitted when the reply is done (listening again, or the call ends), so its
    fields are final. `t_ms` is when it was emitted; the turn's own times are below."""

    index: int
    kind: str                     # start | speech | dtmf | no_input
    step: str | None = None       # the step that was listening
    heard: str = ""
    confidence: float | None = None
    candidates: tuple = ()        # up to 3 dicts {choice, score, ...} the NLU weighed, best first
    match: dict | None = None     # {choice, score, via} or None
    said: tuple[str, ...] = ()
    next_step: str | None = None
    endpoint: str | None = None   # silence | early_match | max_length | dtmf | terminator | timeout ...
    barge_in: bool = False
    t_speech_start_ms: int | None = None
    t_speech_end_ms: int | None = None
    t_endpoint_ms: int | None = None
    t_reply_ms: int | None = None
    latency_ms: float | None = None
    timing: dict = field(default_factory=dict, hash=False)   # endpoint_silence_ms, asr_ms, flow_ms, tts_ms, http_ms
    sentiment: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptPlayed(CallEvent):
    """A prompt queued for playing (`t_ms`: when queued; it plays after those before it)."""

    text: str
    audio_path: str | None = None
    barge_in: bool = True
    duration_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptCut(CallEvent):
    """The caller barged in (speech or a key): these queued prompts stopped."""

    texts: tuple[str, ...] = ()
    by: str = "speech"            # speech | dtmf


@dataclass(frozen=True, slots=True, kw_only=True)
class KeysPressed(CallEvent):
    keys: str
    step: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferRequested(CallEvent):
    target: str
    reason: str = ""
    step: str | None = None
    context: dict = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferFailed(CallEvent):
    target: str
    why: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded(CallEvent):
    """The call is over. `kind`: hangup | transfer | transfer_failed | caller_hangup |
    protocol_error | peer_lost | busy | shutdown | error. `reason` is the flow's (hang-up or
    transfer reason) or a short cause; `why` says what ended it on the wire, when known."""

    kind: str
    target: str | None = None
    reason: str = ""
    step: str | None = None
    context: dict = field(default_factory=dict, hash=False)
    why: str = ""
    path: tuple[str, ...] = ()    # the steps visited
    stats: dict = field(default_factory=dict, hash=False)   # frames, audio_ms, wall_ms, speed_x


# ---- queues and agents (ivr/agents): what the console, the reports and the records need ----


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueJoined(CallEvent):
    """The caller entered a queue (a flow's `queue` step). `position` is 1-based, `wait_s` the
    estimate announced (None: no estimate, e.g. no agent logged in)."""

    queue: str
    caller: str = ""
    caller_name: str = ""
    language: str = ""
    intent: str = ""              # what the caller wants (the flow's transfer reason / last match)
    reason: str = ""
    step: str | None = None
    position: int = 0
    wait_s: float | None = None
    context: dict = field(default_factory=dict, hash=False)   # slots (redacted), flow path, ...


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueLeft(CallEvent):
    """The caller left a queue. `reason`: answered | caller_hangup | timeout | empty | callback |
    out_of_hours | failed | shutdown. `waited_ms`: time in the queue (the reports' wait)."""

    queue: str
    reason: str
    waited_ms: int = 0
    agent: str = ""               # who answered (reason "answered")


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRinging(CallEvent):
    """An agent's phone is ringing for this call: everything the console's screen pop shows.
    `slots` are already masked where sensitive (and the hub's filter passes over all of it);
    `transcript` is the turns so far [{heard, said, sentiment, step}], `path` the steps visited,
    `faq` the knowledge answers the machine considered [{choice, score}]."""

    agent: str
    address: str = ""             # the agent's SIP address dialled
    queue: str = ""
    caller: str = ""
    caller_name: str = ""
    language: str = ""
    intent: str = ""
    reason: str = ""
    waited_ms: int = 0
    attempt: int = 1              # 1 for the first agent tried for this call, 2 for the next ...
    slots: dict = field(default_factory=dict, hash=False)
    transcript: tuple = ()
    path: tuple[str, ...] = ()
    faq: tuple = ()
    context: dict = field(default_factory=dict, hash=False)   # the X-IVR-Context sent to the phone


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentAnswered(CallEvent):
    agent: str
    queue: str = ""
    waited_ms: int = 0            # in the queue, until this answer (service level)
    ring_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentFailed(CallEvent):
    """An agent's phone did not take the call. `why`: no_answer | rejected | busy | error |
    cancelled (the caller hung up while it rang) | taken (another agent had it)."""

    agent: str
    why: str
    queue: str = ""
    ring_ms: int = 0
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackRequested(CallEvent):
    """The caller asked to be called back; the task is stored (`ivr/agents/queues.py`)."""

    queue: str
    number: str
    callback_id: str = ""
    caller: str = ""
    language: str = ""
    reason: str = ""
    waited_ms: int = 0


EVENT_TYPES: dict[str, type[CallEvent]] = {cls.__name__: cls for cls in (
    CallBegan, SpeechStarted, TurnEnded, PromptPlayed, PromptCut, KeysPressed, TransferRequested,
    TransferFailed, CallEnded, QueueJoined, QueueLeft, AgentRinging, AgentAnswered, AgentFailed,
    CallbackRequested)}


_NAMES: dict[type, tuple[str, ...]] = {}


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


def to_dict(event: CallEvent) -> dict:
    """{"type": "TurnEnded", "call_id": ..., ...}: plain data for `json.dumps` (containers copied,
    tuples as lists). Hand-rolled: `dataclasses.asdict` took 0.25 ms per turn, most of a writer's time."""
    cls = type(event)
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in fields(cls))
    data = {"type": cls.__name__}
    for name in names:
        value = getattr(event, name)
        data[name] = _copy(value) if isinstance(value, dict | list | tuple) else value
    return data


def from_dict(data: dict) -> CallEvent:
    """The inverse of `to_dict`; unknown keys are ignored (newer writers), lists become tuples."""
    cls = EVENT_TYPES.get(str(data.get("type")))
    if cls is None:
        raise ValueError(f"unknown call event type {data.get('type')!r}")
    names = {f.name for f in fields(cls)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names}
    return cls(**values)


def flow_version(paths: Iterable[str | Path]) -> str:
    """A flow's version: the first 12 hex digits of SHA-256 over its source files (by file name
    and content, sorted by path), so a record says exactly which text of the flow answered,
    wherever it is installed. "" if none is readable."""
    digest = hashlib.sha256()
    seen = False
    for path in sorted(str(p) for p in paths):
        try:
            data = Path(path).read_bytes()
        except OSError:
            continue
        digest.update(Path(path).name.encode() + b"\0" + data + b"\0")
        seen = True
    return digest.hexdigest()[:12] if seen else ""
