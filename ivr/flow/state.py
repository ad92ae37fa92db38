"""The state of one call in the flow, and the data templates see.

`CallState` is an immutable value: the interpreter returns a new one for every event, so a
test can keep any state and replay from it.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from ivr.flow import sayas
from ivr.flow.model import Flow
from ivr.flow.templates import trusted


@dataclass(frozen=True, slots=True)
class Understood:
    """What the last caller input was taken to mean (for traces and the agent's screen)."""

    kind: str                 # speech | dtmf | no_input
    value: str                # text heard or keys pressed (masked for sensitive slots)
    choice: str | None = None
    score: float = 0.0
    via: str = ""             # step | global | slot | faq | confirm
    # The top 3 answers weighed for speech, best first: {choice, score, signal, group[, words, meaning]}
    candidates: tuple[dict, ...] = field(default=(), hash=False)


@dataclass(frozen=True, slots=True)
class Confirming:
    """A yes/no question is open: about a slot value just heard, or a choice heard unsurely."""

    kind: str                 # slot | choice
    name: str                 # slot name or choice name
    value: object = None


@dataclass(frozen=True, slots=True)
class CallState:
    step: str | None = None       # the step listening now, None before start / after end
    no_input_count: int = 0
    no_match_count: int = 0
    ended: bool = False
    last: Understood | None = None
    last_prompts: tuple = ()      # the Plays to repeat on "repeat"
    path: tuple[str, ...] = ()    # steps entered, in order
    slots: dict = field(default_factory=dict, hash=False)
    data: dict = field(default_factory=dict, hash=False)      # `set:` variables and saved HTTP results
    caller: dict = field(default_factory=dict, hash=False)    # number, plus what the caller lookup found
    call: dict = field(default_factory=dict, hash=False)      # caller, called, params, started_at
    clock: dict = field(default_factory=dict, hash=False)     # now (local), open, holiday
    waiting: str | None = None    # step waiting for its HTTP answer ("@lookup": the caller-ID lookup)
    confirming: Confirming | None = None
    stack: tuple[str, ...] = ()   # steps that ran a subflow, innermost last
    http: dict = field(default_factory=dict, hash=False)      # the last HTTP call: ok, status, error
    sensitive: frozenset[str] = frozenset()                   # slot names masked outside the flow
    sentiment: dict = field(default_factory=dict, hash=False)  # last, label, turns, negative_turns
    queue: dict = field(default_factory=dict, hash=False)      # in a queue step: phase, number (flow/queueing.py)

    @property
    def attempts(self) -> int:
        return self.no_input_count + self.no_match_count


def start_clock(flow: Flow, at_s: float | None) -> dict:
    """now/open/holiday for conditions, fixed at the call's start (business hours)."""
    if at_s is None:
        return {"now": None, "open": False, "holiday": ""}
    moment = datetime.fromtimestamp(at_s, UTC)
    if flow.hours is None:
        return {"now": moment, "open": True, "holiday": ""}
    status = flow.hours.status(moment)
    return {"now": status.local, "open": status.open, "holiday": status.holiday}


def context(flow: Flow, state: CallState, env: dict[str, str] | None = None) -> dict:
    """What templates and conditions read. `env` only for HTTP requests and transfer targets."""
    last = state.last
    ctx = {
        **state.data,
        "vars": state.data, "slots": state.slots, "caller": state.caller, "call": state.call,
        "http": state.http, "flow": flow.name, "agent_line": flow.agent_line or "",
        "last": {"heard": last.value if last else "", "intent": (last.choice or "") if last else "",
                 "kind": last.kind if last else "", "score": last.score if last else 0.0},
        "now": state.clock.get("now"), "open": state.clock.get("open", False),
        "holiday": state.clock.get("holiday", ""),
        "sentiment": {"last": 0.0, "label": "neutral", "turns": 0, "negative_turns": 0, **state.sentiment},
    }
    if env is not None:
        ctx["env"] = trusted(env)
        ctx["agent_line"] = trusted({"a": flow.agent_line or ""})["a"]
    return ctx


def public_slots(state: CallState) -> dict:
    """Slots as the agent, traces and logs may see them: sensitive ones masked."""
    return {k: (sayas.mask(str(v)) if k in state.sensitive else v) for k, v in state.slots.items()}
