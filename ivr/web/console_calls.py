"""What the agent console knows about each call: a fold over the hub's call events.

The console subscribes to the service's hub like the records writer does, and keeps per live
call what a screen pop shows: who calls (number; name from the caller lookup, which the
transfer context carries), language, the transcript so far with sentiment per turn, the
intent, the flow path, the FAQ answers the machine weighed, the transfer reason and the
collected slots (masked where sensitive: `public_slots` in the interpreter, then the hub's
entrance filter). Events arrive redacted; nothing here reaches into a call.

Bounded: at most `MAX_TURNS` turns per call and `MAX_CALLS` calls; an ended call is kept
`keep_ended_s` (the agent's wrap-up writes its disposition against it), then dropped.
"""

import time
from dataclasses import dataclass, field

from ivr import callevents as ev

MAX_TURNS = 200
MAX_CALLS = 2_000
MAX_TEXT = 2_000
NAME_KEYS = ("name", "full_name", "fullname", "display_name", "first_name")


def _text(value, limit: int = MAX_TEXT) -> str:
    return "" if value is None else str(value)[:limit]


def _plain(value, depth: int = 0):
    """JSON-safe plain data, bounded in size and depth (a context is the flow author's)."""
    if depth > 4:
        return _text(value, 200)
    if isinstance(value, dict):
        return {_text(k, 100): _plain(v, depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, list | tuple):
        return [_plain(v, depth + 1) for v in list(value)[:50]]
    if value is None or isinstance(value, bool | int | float):
        return value
    return _text(value, 500)


@dataclass(slots=True)
class CallView:
    call_id: str
    caller: str = ""
    called: str = ""
    language: str = ""
    flow: str = ""
    started_at_s: float = 0.0
    caller_info: dict = field(default_factory=dict)   # the caller lookup's answer (name, ...)
    turns: list = field(default_factory=list)
    path: list = field(default_factory=list)
    faq: list = field(default_factory=list)            # FAQ answers weighed: {id, score, used, turn}
    intent: str = ""
    reason: str = ""                                   # why the machine handed over
    target: str = ""
    slots: dict = field(default_factory=dict)
    queue: str = ""
    joined_at_s: float | None = None                   # in a queue since
    agent: str = ""                                    # ringing / answered by
    ended_at_s: float | None = None
    outcome: str = ""
    extra: dict = field(default_factory=dict)          # queue/agent events' other fields
    node: str = ""                                     # the node running the call (several nodes: relay.py)
    seen_s: float = 0.0                                # another node's call: when its last event came

    @property
    def caller_name(self) -> str:
        for key in NAME_KEYS:
            if self.caller_info.get(key):
                return _text(self.caller_info[key], 200)
        return ""

    def pop(self) -> dict:
        """The screen pop: everything as plain text/numbers, for the browser's textContent."""
        return {"call_id": self.call_id, "caller": self.caller, "caller_name": self.caller_name,
                "called": self.called, "language": self.language, "flow": self.flow, "intent": self.intent,
                "reason": self.reason, "target": self.target, "slots": self.slots, "path": self.path[-100:],
                "faq": self.faq[-20:], "turns": self.turns, "queue": self.queue, "joined_at_s": self.joined_at_s,
                "started_at_s": self.started_at_s, "ended": self.ended_at_s is not None, "outcome": self.outcome,
                "agent": self.agent, "node": self.node}

    def summary(self) -> dict:
        """One line of the supervisor's list of calls in progress."""
        state = "agent" if self.agent else "queue" if self.joined_at_s is not None else "ivr"
        return {"call_id": self.call_id, "node": self.node, "caller": self.caller, "caller_name": self.caller_name,
                "flow": self.flow, "language": self.language, "started_at_s": self.started_at_s, "state": state,
                "queue": self.queue, "agent": self.agent, "intent": self.intent, "turns": len(self.turns)}

    def _context(self, context: dict) -> None:
        """A transfer's (or queue's) context: the interpreter's agent_context keys."""
        if not isinstance(context, dict):
            return
        if isinstance(context.get("caller"), dict):
            self.caller_info.update(_plain(context["caller"]))
        if isinstance(context.get("slots"), dict):
            self.slots = _plain(context["slots"])
        if context.get("intent"):
            self.intent = _text(context["intent"], 200)
        if isinstance(context.get("path"), list | tuple) and len(context["path"]) >= len(self.path):
            self.path = [_text(p, 200) for p in context["path"]][-200:]
        if not self.flow and context.get("flow"):
            self.flow = _text(context["flow"], 200)


class CallBook:
    """Live calls as the console sees them. Feed it every hub event (`book(event)`); it calls
    `on_change(call_view, event)` after each, so the console can push updates."""

    def __init__(self, keep_ended_s: float = 600.0, clock=time.time, on_change=None) -> None:
        self.calls: dict[str, CallView] = {}
        self.keep_ended_s = keep_ended_s
        self.clock = clock
        self.on_change = on_change

    def get(self, call_id: str) -> CallView | None:
        return self.calls.get(call_id)

    def __call__(self, event: ev.CallEvent) -> None:
        call = self.calls.get(event.call_id)
        if call is None:
            if len(self.calls) >= MAX_CALLS:
                self.sweep(force=True)
            call = self.calls[event.call_id] = CallView(event.call_id, started_at_s=event.at_s or self.clock())
        self._apply(call, event)
        if self.on_change is not None:
            self.on_change(call, event)

    def _apply(self, call: CallView, event: ev.CallEvent) -> None:
        if isinstance(event, ev.CallBegan):
            call.caller, call.called = _text(event.caller, 100), _text(event.called, 100)
            call.language, call.flow = _text(event.language, 20), _text(event.flow, 200)
            call.started_at_s = event.at_s or call.started_at_s
        elif isinstance(event, ev.TurnEnded):
            self._turn(call, event)
        elif isinstance(event, ev.TransferRequested):
            call.reason, call.target = _text(event.reason, 500), _text(event.target, 300)
            call._context(event.context)
        elif isinstance(event, ev.CallEnded):
            call.ended_at_s = event.at_s or self.clock()
            call.outcome = _text(event.kind, 40)
            if event.path:
                call.path = [_text(p, 200) for p in event.path][-200:]
            if event.kind == "transfer" and not call.reason:
                call.reason = _text(event.reason, 500)
            self.sweep()
        else:   # the agents' events (ivr.agents): duck-typed, so this module needs no import of them
            self._other(call, event)

    def _turn(self, call: CallView, event: ev.TurnEnded) -> None:
        match = event.match or {}
        turn = {"index": event.index, "kind": event.kind, "step": _text(event.step, 200),
                "heard": _text(event.heard), "said": [_text(s) for s in event.said][:10],
                "sentiment": event.sentiment, "intent": _text(match.get("choice"), 200),
                "via": _text(match.get("via"), 40), "at_s": event.at_s}
        call.turns.append(turn)
        del call.turns[:-MAX_TURNS]
        if match.get("choice") and match.get("via") != "faq":
            call.intent = _text(match["choice"], 200)
        if event.step and (not call.path or call.path[-1] != event.step):
            call.path.append(_text(event.step, 200))
            del call.path[:-200]
        for cand in event.candidates or ():
            if isinstance(cand, dict) and (cand.get("signal") == "faq" or cand.get("group") == "faq"):
                call.faq.append({"id": _text(cand.get("choice"), 200), "score": _num(cand.get("score")),
                                 "used": match.get("via") == "faq" and match.get("choice") == cand.get("choice"),
                                 "turn": event.index, "heard": _text(event.heard, 300)})
        if match.get("via") == "faq" and not any(f["turn"] == event.index for f in call.faq):
            call.faq.append({"id": _text(match.get("choice"), 200), "score": _num(match.get("score")),
                             "used": True, "turn": event.index, "heard": _text(event.heard, 300)})
        del call.faq[:-50]

    def _other(self, call: CallView, event: ev.CallEvent) -> None:
        """The queue and agent events (ivr/agents). Duck-typed on the class name, so this module
        works with a callevents.py that has them or not."""
        kind = type(event).__name__
        if isinstance(getattr(event, "context", None), dict):
            call._context(event.context)
        for name in ("caller", "caller_name", "language", "intent", "reason"):
            value = getattr(event, name, "") if kind in ("QueueJoined", "AgentRinging") else ""
            if value and name == "caller_name":
                call.caller_info.setdefault("name", _text(value, 200))
            elif value and not getattr(call, name):
                setattr(call, name, _text(value, 500))
        if kind == "QueueJoined":
            call.queue = _text(event.queue, 100)
            call.joined_at_s = event.at_s or self.clock()
            call.extra["position"], call.extra["wait_s"] = event.position, event.wait_s
        elif kind == "QueueLeft":
            call.joined_at_s = None
            call.extra["left"] = _text(event.reason, 40)
        elif kind == "AgentRinging":
            call.agent, call.queue = _text(event.agent, 100), _text(event.queue, 100) or call.queue
            if event.intent:
                call.intent = _text(event.intent, 200)
            if event.reason:
                call.reason = _text(event.reason, 500)
            if isinstance(event.slots, dict) and event.slots:
                call.slots = _plain(event.slots)
            if len(event.path) > len(call.path):
                call.path = [_text(p, 200) for p in event.path][-200:]
            if not call.turns:   # the hub's history is richer; the event's own transcript when we joined late
                call.turns = [_ring_turn(i, t) for i, t in enumerate(event.transcript[-MAX_TURNS:])
                              if isinstance(t, dict)]
            if not call.faq:
                call.faq = [{"id": _text(f.get("choice") or f.get("id"), 200), "score": _num(f.get("score")),
                             "used": bool(f.get("used")), "turn": None, "heard": _text(f.get("heard"), 300)}
                            for f in event.faq[:50] if isinstance(f, dict)]
        elif kind == "AgentAnswered":
            call.agent, call.joined_at_s = _text(event.agent, 100), None
        elif kind == "AgentFailed" and call.agent == event.agent:
            call.agent = ""

    def sweep(self, force: bool = False) -> None:
        """Drop calls ended more than keep_ended_s ago (forced: the oldest ended, then the oldest)."""
        now = self.clock()
        for call_id in [k for k, c in self.calls.items() if c.ended_at_s and now - c.ended_at_s > self.keep_ended_s]:
            del self.calls[call_id]
        if force and len(self.calls) >= MAX_CALLS:
            ordered = sorted(self.calls.values(), key=lambda c: (c.ended_at_s is None, c.ended_at_s or c.started_at_s))
            for call in ordered[: len(self.calls) - MAX_CALLS + 1]:
                del self.calls[call.call_id]

    def live(self) -> list[CallView]:
        """Calls in progress (this node's and, with the relay, every node's), oldest first."""
        return sorted((c for c in self.calls.values() if c.ended_at_s is None), key=lambda c: c.started_at_s)

    def waiting(self) -> list[CallView]:
        """Callers in a queue now, longest wait first."""
        found = [c for c in self.calls.values() if c.joined_at_s is not None and c.ended_at_s is None]
        return sorted(found, key=lambda c: c.joined_at_s)


def _ring_turn(index: int, turn: dict) -> dict:
    said = turn.get("said") or ()
    return {"index": index, "kind": "speech", "step": _text(turn.get("step"), 200), "heard": _text(turn.get("heard")),
            "said": [_text(s) for s in (said if isinstance(said, list | tuple) else [said])][:10],
            "sentiment": _num(turn.get("sentiment")), "intent": "", "via": "", "at_s": None}


def _num(value) -> float | None:
    return round(float(value), 3) if isinstance(value, int | float) and not isinstance(value, bool) else None
