"""The flow interpreter: a pure state machine. `state + event -> state + actions`.

No sockets, clocks or threads here: a live call, a WAV replay, a text chat and a
conversation test all drive this same code with the same events.
"""

import re
from dataclasses import dataclass, replace

from ivr.events import (
    Action,
    CallerHungUp,
    CallStarted,
    Digits,
    EngineFailed,
    Event,
    Hangup,
    Heard,
    Listen,
    NoInput,
    Play,
    Transfer,
)
from ivr.flow.model import Choice, Flow, Step
from ivr.flow.nlu import match

MAX_HOPS = 64  # steps entered without listening before we call it a loop

DEFAULT_PROMPTS = {
    "en": {"no_input": "Sorry, I didn't hear you.", "no_match": "Sorry, I didn't catch that.",
           "error": "Sorry, something went wrong."},
    "zh": {"no_input": "抱歉，我没有听到您的声音。", "no_match": "抱歉，我没有听清楚。",
           "error": "抱歉，系统出现了问题。"},
}


@dataclass(frozen=True, slots=True)
class Understood:
    """What the last caller input was taken to mean (for traces and the agent's screen)."""

    kind: str                 # speech | dtmf | no_input
    value: str                # text heard or keys pressed
    choice: str | None = None
    score: float = 0.0
    via: str = ""             # step | global


@dataclass(frozen=True, slots=True)
class CallState:
    step: str | None = None       # the step listening now, None before start / after end
    no_input_count: int = 0
    no_match_count: int = 0
    ended: bool = False
    last: Understood | None = None
    last_prompts: tuple[Play, ...] = ()
    path: tuple[str, ...] = ()    # steps entered, in order

    @property
    def attempts(self) -> int:
        return self.no_input_count + self.no_match_count


class Interpreter:
    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        lang = flow.language.split("-")[0].lower()
        self.defaults = DEFAULT_PROMPTS.get(lang, DEFAULT_PROMPTS["en"])

    def handle(self, state: CallState, event: Event) -> tuple[CallState, list[Action]]:
        if state.ended:
            return state, []
        if isinstance(event, CallStarted):
            return self._enter(state, self.flow.start)
        if isinstance(event, CallerHungUp):
            return replace(state, ended=True, step=None), []
        if isinstance(event, EngineFailed):
            return self._fallback(state, f"engine failure: {event.what}")
        step = self.flow.steps.get(state.step or "")
        if step is None:   # not listening: input between steps is ignored
            return state, []
        if isinstance(event, Heard):
            return self._heard(state, step, event)
        if isinstance(event, Digits):
            return self._digits(state, step, event.digits)
        if isinstance(event, NoInput):
            return self._fail(replace(state, last=Understood("no_input", "")), step, "no_input")
        raise TypeError(f"not a flow event: {event!r}")

    # ---- input ---------------------------------------------------------------------

    def _heard(self, state: CallState, step: Step, event: Heard) -> tuple[CallState, list[Action]]:
        found = match(event.text, tuple(c.intent for c in (*step.choices, *self.flow.globals)))
        if found is None:
            return self._fail(replace(state, last=Understood("speech", event.text)), step, "no_match")
        choice, via = self._choice(step, found.name)
        heard = Understood("speech", event.text, choice.name, found.score, via)
        return self._take(replace(state, last=heard), step, choice)

    def _digits(self, state: CallState, step: Step, digits: str) -> tuple[CallState, list[Action]]:
        for via, choices in (("step", step.choices), ("global", self.flow.globals)):
            for choice in choices:
                if choice.dtmf and choice.dtmf == digits:
                    pressed = Understood("dtmf", digits, choice.name, 1.0, via)
                    return self._take(replace(state, last=pressed), step, choice)
        return self._fail(replace(state, last=Understood("dtmf", digits)), step, "no_match")

    def _choice(self, step: Step, name: str) -> tuple[Choice, str]:
        for choice in step.choices:
            if choice.name == name:
                return choice, "step"
        return next(c for c in self.flow.globals if c.name == name), "global"

    def _take(self, state: CallState, step: Step, choice: Choice) -> tuple[CallState, list[Action]]:
        if choice.action == "repeat":
            return state, [*state.last_prompts, self._listen(step)]
        if choice.action == "hangup":
            return replace(state, ended=True, step=None), [Hangup("caller asked")]
        return self._enter(state, choice.goto or step.name)

    def _fail(self, state: CallState, step: Step, kind: str) -> tuple[CallState, list[Action]]:
        if kind == "no_input":
            state = replace(state, no_input_count=state.no_input_count + 1)
            count, prompts = state.no_input_count, step.no_input
        else:
            state = replace(state, no_match_count=state.no_match_count + 1)
            count, prompts = state.no_match_count, step.no_match
        if state.attempts >= step.max_attempts:
            if step.on_fail:
                return self._enter(state, step.on_fail)
            return self._fallback(state, f"{kind} after {state.attempts} attempts")
        text = prompts[min(count, len(prompts)) - 1] if prompts else self.defaults[kind]
        plays = (Play(text, barge_in=True), *self._ask(step))
        return replace(state, last_prompts=plays), [*plays, self._listen(step)]

    # ---- moving through steps ------------------------------------------------------

    def _enter(self, state: CallState, name: str) -> tuple[CallState, list[Action]]:
        actions: list[Action] = []
        for _ in range(MAX_HOPS):
            step = self.flow.steps[name]
            state = replace(state, step=None, path=(*state.path, name),
                            no_input_count=0, no_match_count=0)
            plays = [Play(p.text, p.audio_path, p.barge_in) for p in step.say]
            actions += plays
            if step.listens:
                asked = (*plays, *self._ask(step))
                actions += self._ask(step)
                return replace(state, step=name, last_prompts=asked), [*actions, self._listen(step)]
            if step.transfer:
                target = self._target(step.transfer)
                return replace(state, ended=True), [*actions, Transfer(
                    target, step.transfer_reason or self._reason(state), self._context(state, name))]
            if step.hangup or not step.next:
                return replace(state, ended=True), [*actions, Hangup("flow")]
            name = step.next
        # A loop of steps that never listen: get the caller to a person instead of spinning.
        return self._fallback(state, "flow loops without listening", actions)

    def _fallback(self, state: CallState, reason: str, actions: list[Action] | None = None):
        actions = list(actions or [])
        if self.flow.agent_line:
            return replace(state, ended=True, step=None), [
                *actions, Transfer(self.flow.agent_line, reason, self._context(state, state.step))]
        return replace(state, ended=True, step=None), [
            *actions, Play(self.defaults["error"], barge_in=False), Hangup(reason)]

    def _ask(self, step: Step) -> tuple[Play, ...]:
        ask = step.ask
        return (Play(ask.text, ask.audio_path, ask.barge_in),) if ask else ()

    def _listen(self, step: Step) -> Listen:
        phrases = [p for c in (*step.choices, *self.flow.globals) for p in c.intent.phrases]
        return Listen(step.name, tuple(dict.fromkeys(phrases)), dtmf=True, max_digits=1,
                      no_input_ms=step.no_input_ms)

    def _target(self, target: str) -> str:
        # Until full templates arrive, `{{ agent_line }}` is the one variable a target may use.
        return re.sub(r"\{\{\s*agent_line\s*\}\}", self.flow.agent_line or "", target)

    def _reason(self, state: CallState) -> str:
        return state.last.choice if state.last and state.last.choice else "transfer"

    def _context(self, state: CallState, step: str | None) -> dict:
        last = state.last
        return {"flow": self.flow.name, "step": step or "", "path": list(state.path),
                "last_heard": last.value if last else "", "intent": last.choice if last else ""}
