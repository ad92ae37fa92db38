"""The fixed vocabulary between the call loop and the flow interpreter.

Events go into the interpreter; actions come out. All are frozen dataclasses, compared by
content in tests, and carry no I/O handles, so the same flow runs in a live call, a WAV
replay and a text chat.
"""

from dataclasses import dataclass, field

from ivr.flow.http import HttpRequest, HttpResult
from ivr.flow.slots import SlotSpec

# ---- events: call loop -> interpreter -------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallStarted:
    caller: str = ""
    called: str = ""
    data: dict = field(default_factory=dict, hash=False, compare=True)   # e.g. bridge custom parameters
    at_s: float | None = None   # Unix time the call began (business hours); None = unknown, taken as closed


DOUBTFUL, VERY_DOUBTFUL = 1, 2    # Heard.doubt (the recognizer's Transcript.doubt)


@dataclass(frozen=True, slots=True)
class Heard:
    """The caller finished an utterance; `text` is the ASR final ("" if nothing recognised)."""

    text: str
    confidence: float = 1.0
    alternatives: tuple[str, ...] = ()
    sentiment: float | None = None   # ivr.sentiment.score(text): -1 angry .. 1 happy; None = not scored
    doubt: int = 0     # how much the recognizer doubts the words (ivr.asr.base.Transcript.doubt)


@dataclass(frozen=True, slots=True)
class Digits:
    """Keys the caller pressed (in-band tones, RFC 4733 or bridge events, all alike)."""

    digits: str


@dataclass(frozen=True, slots=True)
class NoInput:
    """The caller said and pressed nothing before the listening step's timeout."""


@dataclass(frozen=True, slots=True)
class CallerHungUp:
    pass


@dataclass(frozen=True, slots=True)
class EngineFailed:
    """Recognition or synthesis broke for this call: take the flow's fallback path."""

    what: str


@dataclass(frozen=True, slots=True)
class Fetched:
    """The answer to the flow's last `Fetch` (an HTTP step or the caller-ID lookup)."""

    result: HttpResult


@dataclass(frozen=True, slots=True)
class QueueUpdate:
    """In a queue step: time to tell the caller their place (at entry, then every `announce_every`).
    `wait_s` is the estimated wait (None: no estimate); `waited_ms` how long they have waited."""

    position: int
    wait_s: float | None = None
    waited_ms: int = 0


@dataclass(frozen=True, slots=True)
class QueueLeft:
    """The caller is out of the queue: answered (bridged to an agent) | timeout (max wait) |
    empty (nobody logged in) | out_of_hours | failed (no queue service here, e.g. a replay)."""

    reason: str
    agent: str = ""


@dataclass(frozen=True, slots=True)
class TransferError:
    """The transfer the flow asked for failed (nobody answered, rejected, unreachable); the caller
    is still on the line. The transfer step's `on_fail` goes on, else an apology and goodbye."""

    why: str


Event = (CallStarted | Heard | Digits | NoInput | CallerHungUp | EngineFailed | Fetched | QueueUpdate | QueueLeft
         | TransferError)

# ---- actions: interpreter -> call loop ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Play:
    """Speak `text` (synthesised) or play the recorded WAV at `audio_path`. `language`: the voice
    to speak it in, for a flow with several languages ("" = the call's only voice)."""

    text: str
    audio_path: str | None = None
    barge_in: bool = True
    language: str = ""


@dataclass(frozen=True, slots=True)
class Listen:
    """Wait for the caller, after queued prompts finish (the no-input timer starts then).

    `expect` holds the phrases this step understands: ASR phrase hints / grammar, and
    grammar-aware endpointing (end the turn early once the words heard match one of them).
    """

    step: str
    expect: tuple[str, ...] = ()
    dtmf: bool = True
    max_digits: int = 1
    no_input_ms: int = 5000
    min_digits: int = 1
    terminator: str = "#"         # ends key entry early (VoiceXML termchar); not part of the digits
    inter_digit_ms: int = 3000
    slot: SlotSpec | None = None  # a slot being collected: end early only once the words fill it
    language: str = "en-US"
    languages: tuple[str, ...] = ()   # a language menu: the caller may speak any of these (a multilingual
                                      # recognizer among theirs is used when the call has one)


@dataclass(frozen=True, slots=True)
class Transfer:
    target: str
    reason: str = ""
    context: dict = field(default_factory=dict, hash=False, compare=True)


@dataclass(frozen=True, slots=True)
class Hangup:
    reason: str = "flow"


@dataclass(frozen=True, slots=True)
class Fetch:
    """Make this HTTP request and answer with `Fetched` (the flow waits; input meanwhile is ignored)."""

    request: HttpRequest


@dataclass(frozen=True, slots=True)
class EnterQueue:
    """Wait in queue `queue` for an agent: the call loop registers the call (through the service's
    queue port), loops `hold_music` and sends `QueueUpdate` every `announce_every_ms`, `QueueLeft`
    at the end; keys go to the flow (the callback key). `context` is what the agent is shown."""

    queue: str
    step: str
    hold_music: str | None = None
    announce_every_ms: int = 30_000
    max_wait_ms: int = 300_000
    callback_key: str | None = None
    reason: str = ""
    context: dict = field(default_factory=dict, hash=False, compare=True)


@dataclass(frozen=True, slots=True)
class RequestCallback:
    """Store a callback task for `number` and leave the queue (the caller confirmed it)."""

    number: str


Action = Play | Listen | Transfer | Hangup | Fetch | EnterQueue | RequestCallback
