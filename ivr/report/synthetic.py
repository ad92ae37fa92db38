"""Synthetic calls for the report's tests, benchmark and demos, written through the records
store's own API (begin_call / add_turn / add_event / end_call), the way the hub subscriber
writes real calls. Deterministic for a seed.

    seed_calls(store, count=300, start_s=..., span_s=7 * 86400, seed=1)

Outcome mix (before the randomness): ~55% contained, ~25% transferred (half asked by the
caller, the rest no-match escalations and a few angry-caller watches), ~15% abandoned, ~5%
lost on the wire. Unmatched utterances come from a handful of topics no flow handles.
"""

import random

from ivr.store.subscriber import turn_row

FLOWS = {"retail_en": ("en", "+15550100"), "retail_zh": ("zh", "4000"), "telecom": ("en", "+15550199")}
STEPS = ("menu", "order_number", "confirm_order", "billing_menu", "card_details")
INTENTS = ("track_order", "returns", "billing", "opening_hours", "agent", "store_locator")
TOPICS = {
    "warranty": ["does my blender have a warranty", "how long is the warranty on the blender",
                 "warranty claim for a broken blender", "is the blender still under warranty"],
    "gift cards": ["can i buy a gift card", "i want to check my gift card balance", "gift card balance please",
                   "how do i use a gift card online"],
    "jobs": ["are you hiring", "i want to apply for a job in your store", "job vacancies at the warehouse"],
    "cancel membership": ["cancel my membership", "i want to end my membership", "stop my loyalty membership"],
}
POSITIVE = ("thanks that's great", "perfect thank you", "lovely, cheers")
NEGATIVE = ("this is useless", "i am furious, third time calling", "unacceptable, my order is late again")
NEUTRAL = ("track my order", "billing", "what time do you open", "returns")


def _turn(call_id: str, idx: int, kind: str, step: str | None, at_s: float, t_ms: int, heard: str = "",
          choice: str | None = None, via: str | None = None, sentiment: float | None = None) -> dict:
    from ivr.callevents import TurnEnded

    event = TurnEnded(call_id=call_id, index=idx, kind=kind, step=step, heard=heard, t_ms=t_ms, at_s=at_s,
                      match={"choice": choice, "score": 0.9, "via": via} if choice else None,
                      said=("How can I help?",), next_step=step, sentiment=sentiment,
                      confidence=0.9 if kind == "speech" else None)
    return turn_row(event)


def synthetic_call(rnd: random.Random, n: int, start_s: float, span_s: float, callers: int = 0) -> tuple:
    """(call row, [turn rows], end row) for call number `n`."""
    flow = rnd.choices(list(FLOWS), weights=(6, 2, 2))[0]
    language, hotline = FLOWS[flow]
    # busier in the day: a triangular bump centred on 14:00 UTC
    day = rnd.randrange(max(1, int(span_s // 86400)))
    hour = min(23.99, max(0.0, rnd.triangular(6, 22, 14)))
    at = start_s + day * 86400 + hour * 3600 + rnd.random() * 60
    if at >= start_s + span_s:
        at = start_s + rnd.random() * span_s
    call_id = f"syn{n:07d}"
    caller = f"+1555{rnd.randrange(callers or max(50, n // 3 + 50)):07d}"
    row = {"call_id": call_id, "transport": "sip", "transport_id": call_id, "caller": caller, "called": hotline,
           "remote": "127.0.0.1:5062", "flow": flow, "flow_version": "synthetic", "language": language,
           "started_at": at, "data": {"asr": "synthetic", "tts": "synthetic", "params": {}}}
    turns = [_turn(call_id, 0, "start", None, at, 0)]
    t_ms = 4000
    roll = rnd.random()
    outcome, reason, target, step = "hangup", "done", None, "goodbye"
    sentiment = rnd.choice((0.3, 0.0, 0.0, -0.1))

    def speak(heard, choice=None, via=None, step_name="menu", score=None):
        nonlocal t_ms
        t_ms += rnd.randrange(3000, 12000)
        turns.append(_turn(call_id, len(turns), "speech", step_name, at + t_ms / 1000, t_ms, heard, choice, via,
                           score if score is not None else sentiment))

    if roll < 0.55:                                     # contained
        intent = rnd.choice(INTENTS[:4] + INTENTS[5:])
        speak(rnd.choice(NEUTRAL), intent, "step")
        if rnd.random() < 0.3:
            speak(rnd.choice(POSITIVE), None, None, "anything_else", 0.6)
    elif roll < 0.68:                                   # the caller asks for an agent
        speak("agent please", "agent", "global")
        outcome, reason, target, step = "transfer", "agent", "sip:agents@127.0.0.1", "to_agent"
    elif roll < 0.77:                                   # no-match escalation: what callers want, unhandled
        topic = rnd.choice(sorted(TOPICS))
        for _ in range(2):
            speak(rnd.choice(TOPICS[topic]), step_name="menu")
        outcome, reason, target, step = "transfer", "no_match after 2 attempts", "sip:agents@127.0.0.1", "menu"
    elif roll < 0.80:                                   # an angry caller taken early (watch:)
        speak(rnd.choice(NEGATIVE), "angry_caller", "watch", score=-0.7)
        outcome, reason, target, step = "transfer", "angry_caller", "sip:agents@127.0.0.1", "menu"
    elif roll < 0.95:                                   # abandoned somewhere
        step = rnd.choices(STEPS, weights=(5, 3, 1, 2, 4))[0]
        if rnd.random() < 0.5:
            speak(rnd.choice(NEGATIVE), None, None, step, -0.6)
        outcome, reason = "caller_hangup", ""
    else:
        outcome, reason, step = "peer_lost", "rtp timeout", "menu"
    t_ms += rnd.randrange(2000, 8000)
    end = {"call_id": call_id, "started_at": at, "ended_at": at + t_ms / 1000, "outcome": outcome, "reason": reason,
           "target": target, "end_step": step, "why": "", "duration_ms": t_ms, "turns": len(turns)}
    return row, turns, end


def seed_calls(store, count: int, start_s: float, span_s: float = 7 * 86400, seed: int = 1,
               number_from: int = 0) -> dict:
    """Write `count` synthetic calls through `store` (a started RecordStore), then flush.
    Returns counts by outcome, for tests to compare the report with. Call ids are numbered from
    `number_from` (several batches into one database)."""
    rnd = random.Random(seed)
    outcomes: dict[str, int] = {}
    for n in range(number_from, number_from + count):
        row, turns, end = synthetic_call(rnd, n, start_s, span_s)
        store.begin_call(row)
        for turn in turns:
            store.add_turn(turn)
        store.add_event(row["call_id"], "CallEnded", end["duration_ms"], end["ended_at"], {"kind": end["outcome"]})
        store.end_call(end)
        outcomes[end["outcome"]] = outcomes.get(end["outcome"], 0) + 1
    if not store.flush(600):
        raise RuntimeError("the records store did not write the synthetic calls in time")
    return outcomes
