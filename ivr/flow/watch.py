"""Call-wide conditions checked after every caller utterance, and the caller's sentiment.

    watch:
      - {if: "sentiment.negative_turns >= 2", goto: to_agent}   # an angry caller reaches a person early

`sentiment.*` (last score, its label, turns scored, negative turns) is folded from the score
each `Heard` event carries (the call loop or text driver computes it with `ivr.sentiment`;
the interpreter stays pure). A `watch` branch is tested after that update and before the
listening step decides what the words mean; the first true one wins. Part of the pure
interpreter: no I/O here.
"""

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from ivr import sentiment
from ivr.events import Heard
from ivr.flow import listening, sayas
from ivr.flow.model import Route, Step
from ivr.flow.state import CallState, Understood, context
from ivr.flow.yamlsrc import LineDict, Problems, as_text

if TYPE_CHECKING:
    from ivr.flow.interpreter import Interpreter, Result

log = logging.getLogger("ivr.flow")

EMPTY = {"last": 0.0, "label": "neutral", "turns": 0, "negative_turns": 0}


def felt(state: CallState, event: Heard, language: str) -> CallState:
    """The state with `sentiment.*` updated by this utterance's score (unscored: unchanged)."""
    if event.sentiment is None:
        return state
    before = {**EMPTY, **state.sentiment}
    label = sentiment.label(event.sentiment, language)
    return replace(state, sentiment={
        "last": event.sentiment, "label": label, "turns": before["turns"] + 1,
        "negative_turns": before["negative_turns"] + (label == "negative")})


def heard(it: "Interpreter", state: CallState, step: Step, event: Heard) -> "Result":
    """Speech at a listening step: sentiment first, then `watch`, then the step's own answers."""
    state = felt(state, event, it.flow.language)
    goto = _diverted(it, state)
    if goto is None:
        return listening.heard(it, state, step, event)
    log.info("watch: %s -> %s (sentiment %s)", step.name, goto, state.sentiment)
    shown = sayas.mask(event.text) if step.collect and step.collect.sensitive else event.text
    return it.enter(replace(state, last=Understood("speech", shown, None, 0.0, "watch"), confirming=None), goto)


def needs_vector(it: "Interpreter", state: CallState, step: Step, event: Heard) -> bool:
    """Whether `heard` computes the caller sentence's e5 vector: not when a `watch` branch takes the call
    elsewhere, else as the listening step decides (listening.needs_vector)."""
    state = felt(state, event, it.flow.language)
    return _diverted(it, state) is None and listening.needs_vector(it, state, step, event.text)


def _diverted(it: "Interpreter", state: CallState) -> str | None:
    """The step of the first `watch` branch that holds now, else None."""
    return target(it.flow.watch, context(it.flow, state)) if it.flow.watch else None


def build(builder, data: LineDict) -> tuple[Route, ...]:
    """Parse the flow's `watch:` list of {if: CONDITION, goto: STEP} (every branch needs `if`)."""
    p: Problems = builder.p
    value = data.get("watch")
    if value is None:
        return ()
    if not isinstance(value, list):
        p.error(data, "watch", "'watch' must be a list of {if: CONDITION, goto: STEP}",
                'e.g. watch: [{if: "sentiment.negative_turns >= 2", goto: to_agent}]')
        return ()
    routes = []
    for i, item in enumerate(value):
        if not isinstance(item, LineDict) or "goto" not in item or "if" not in item:
            p.error(value, i, "each branch of 'watch' needs if: CONDITION and goto: STEP",
                    'e.g. {if: "sentiment.negative_turns >= 2", goto: to_agent}')
            continue
        p.check_keys(item, {"if", "goto"}, "a branch of 'watch'")
        cond = builder.template(item, "if", str(item["if"]), "condition")
        line, col = item.key_pos.get("goto", (item.line, item.col))
        routes.append(Route(str(as_text(item["goto"])), cond, line, col))
    return tuple(routes)


def target(routes: tuple[Route, ...], ctx: dict) -> str | None:
    """The step of the first branch whose condition holds, else None."""
    for route in routes:
        if route.condition is not None and route.condition.test(ctx):
            return route.goto
    return None
