"""The flow interpreter: a pure state machine. `state + event -> state + actions`.

No sockets, clocks or threads here: a live call, a WAV replay, a text chat and a
conversation test all drive this same code with the same events. HTTP is an action out
(`Fetch`) and an event back in (`Fetched`); the time of day arrives with `CallStarted`.
Caller input at a listening step is decided in `ivr.flow.listening`.
"""

import logging
from dataclasses import replace

from ivr.events import (
    Action,
    CallerHungUp,
    CallStarted,
    Digits,
    EngineFailed,
    Event,
    Fetch,
    Fetched,
    Hangup,
    Heard,
    Listen,
    NoInput,
    Play,
    Transfer,
    TransferError,
)
from ivr.flow import languages, listening, queueing, watch
from ivr.flow.http import HttpRequest
from ivr.flow.model import Flow, HttpSpec, Step
from ivr.flow.prompts import defaults_for
from ivr.flow.slots import hint_phrases
from ivr.flow.state import CallState, Understood, context, public_slots, start_clock
from ivr.flow.templates import RenderError, Template, render_data
from ivr.lang import base_language
from ivr.privacy import redact_with_slots

__all__ = ["MAX_HOPS", "CallState", "Interpreter", "Understood"]

log = logging.getLogger("ivr.flow")

MAX_HOPS = 64  # steps entered without listening before we call it a loop
LOOKUP = "@lookup"

Result = tuple[CallState, list[Action]]


class Interpreter:
    def __init__(self, flow: Flow, env: dict[str, str] | None = None, language: str | None = None) -> None:
        """`language`: the call's language when it is known before the call (a number routed to it):
        the flow's `language:` steps then pass without asking. None: the flow's default."""
        self.flow = flow.in_language(language)
        self.defaults = defaults_for(self.flow.lang)
        self.language_given = language is not None and flow.speaks(language)
        # Only the variables the flow's HTTP steps name: nothing else of the process leaks in.
        env = env or {}
        self.env = {k: env[k] for k in flow.env_names if k in env}
        self._speakers = {self.flow.lang: self}   # one interpreter per language variant, shared

    def speaking(self, state: CallState) -> "Interpreter":
        """The interpreter of the call's language (ivr.flow.languages): its prompts, phrases, slots, FAQ."""
        tag = state.call.get("language")
        if not tag or base_language(tag) == self.flow.lang:
            return self
        base = base_language(tag)
        if base not in self._speakers:
            other = Interpreter(self.flow.in_language(tag), self.env)
            other.language_given, other._speakers = self.language_given, self._speakers
            self._speakers[base] = other
        return self._speakers[base]

    def fixed_defaults(self) -> list[str]:
        """Built-in prompts that never change, to synthesise when the flow loads."""
        return [v for v in self.defaults.values() if isinstance(v, str) and "{" not in v]

    def handle(self, state: CallState, event: Event) -> Result:
        speaker = self.speaking(state)
        if speaker is not self:
            return speaker.handle(state, event)
        if isinstance(event, TransferError):     # the call was "ended" by its transfer: it goes on
            return queueing.transfer_failed(self, state, event)
        if state.ended:
            return state, []
        if isinstance(event, CallStarted):
            return self._start(state, event)
        if isinstance(event, CallerHungUp):
            return replace(state, ended=True, step=None), []
        if isinstance(event, EngineFailed):
            return self.fallback(state, f"engine failure: {event.what}")
        if isinstance(event, Fetched):
            return self._fetched(state, event)
        step = self.flow.steps.get(state.step or "")
        if step is None:   # not listening (e.g. waiting for a service): input is ignored
            return state, []
        try:
            if step.language_menu:
                return languages.handle(self, state, step, event)
            if step.queue:
                return queueing.handle(self, state, step, event)
            if isinstance(event, Heard):
                return watch.heard(self, state, step, event)   # sentiment.*, `watch:`, then the step
            if isinstance(event, Digits):
                return listening.digits(self, state, step, event.digits)
            if isinstance(event, NoInput):
                return listening.no_input(self, replace(state, last=Understood("no_input", "")), step)
        except RenderError as exc:
            return self.failed(state, "template", f"template error: {exc}")
        raise TypeError(f"not a flow event: {event!r}")

    def needs_vector(self, state: CallState, event: Heard) -> bool:
        """Whether `handle(state, event)` computes the caller sentence's e5 vector (semantic.sentence_vector),
        asked by the call loop before the turn to embed it ahead on a thread of its own (ivr/call_workers.py);
        `handle` then finds it cached. Pure, like `handle`, and decided by the same helpers: not at a language
        menu, in a queue, or when a `watch` branch or a parsed yes/no or slot value takes the turn; at a listening
        step when the words alone are not sure (ivr.flow.understand) or the knowledge base is asked."""
        speaker = self.speaking(state)
        if speaker is not self:
            return speaker.needs_vector(state, event)
        step = self.flow.steps.get(state.step or "")
        if state.ended or step is None or step.language_menu or step.queue:
            return False
        return watch.needs_vector(self, state, step, event)

    # ---- start and services --------------------------------------------------------

    def _start(self, state: CallState, event: CallStarted) -> Result:
        state = replace(
            state, caller={"number": event.caller}, clock=start_clock(self.flow, event.at_s),
            call={"caller": event.caller, "called": event.called, "params": dict(event.data),
                  "language": self.flow.language, "language_chosen": self.language_given},
        )
        try:
            state = replace(state, data={k: self._value(v, state) for k, v in self.flow.variables})
            if self.flow.caller_lookup and event.caller:
                request = self._request(self.flow.caller_lookup, state)
                return replace(state, waiting=LOOKUP), [Fetch(request)]
        except RenderError as exc:
            log.warning("caller lookup skipped: %s", exc)
        return self.enter(state, self.flow.start)

    def _fetched(self, state: CallState, event: Fetched) -> Result:
        result, waiting = event.result, state.waiting
        state = replace(state, waiting=None, http={"ok": result.ok, "status": result.status, "error": result.error})
        if waiting == LOOKUP:
            if result.ok and isinstance(result.data, dict):
                state = replace(state, caller={**result.data, **state.caller})
            else:
                log.info("caller lookup failed (%s): greeting without a name", result.error or "no data")
            return self.enter(state, self.flow.start)
        step = self.flow.steps.get(waiting or "")
        if step is None or step.http is None:
            return state, []   # a stale answer: nothing waits for it
        if not result.ok:
            log.warning("step %s: %s", step.name, result.detail)
            if step.on_error:
                return self.enter(state, step.on_error)
            return self.failed(state, "service", f"service error in step {step.name}: {result.error}")
        if step.http.save:
            state = replace(state, data={**state.data, step.http.save: result.data})
        return self.enter(state, self.route(state, step))

    # ---- moving through steps ------------------------------------------------------

    def enter(self, state: CallState, name: str | None, actions: list[Action] | None = None) -> Result:
        """Run steps from `name` until one listens, waits for a service or ends the call."""
        actions = list(actions or [])
        try:
            for _ in range(MAX_HOPS):
                if name is None:
                    return self.fallback(state, "a subflow returned to nowhere", actions)
                step = self.flow.steps[name]
                state = replace(state, step=None, path=(*state.path, name), no_input_count=0,
                                no_match_count=0, confirming=None)
                if not step.collect:   # a collecting step sets once its value is known (collected)
                    state = self.assign(state, step.assign)
                plays = [self.play(p.text, state, p.audio_path, p.barge_in) for p in step.say]
                actions += plays
                if step.language_menu and not languages.chosen(state):
                    return languages.enter(self, _error_handled(state), step, actions)
                if step.listens and not step.language_menu:
                    state = _error_handled(state)
                    asked = (*plays, *self.ask(step, state))
                    actions += self.ask(step, state)
                    return replace(state, step=name, last_prompts=asked), [*actions, self.listen(step)]
                if step.http:
                    return replace(state, waiting=name), [*actions, Fetch(self._request(step.http, state))]
                if step.queue:
                    return queueing.enter(self, state, step, actions)
                if step.transfer:
                    return replace(state, ended=True), [*actions, self._transfer(step, state)]
                if step.hangup:
                    return replace(state, ended=True), [*actions, Hangup("flow")]
                if step.run:
                    state = replace(state, stack=(*state.stack, name))
                    name = self.flow.subflows[step.run]
                elif step.returns:
                    caller = self.flow.steps.get(state.stack[-1]) if state.stack else None
                    state = replace(state, stack=state.stack[:-1])
                    name = self.route(state, caller) if caller else None
                else:
                    name = self.route(state, step)
                    if name is None:
                        return replace(state, ended=True), [*actions, Hangup("flow")]
        except RenderError as exc:
            return self.failed(state, "template", f"template error: {exc}", actions)
        # A loop of steps that never listens: get the caller to a person instead of spinning.
        return self.fallback(state, "flow loops without listening", actions)

    def assign(self, state: CallState, values: tuple[tuple[str, object], ...]) -> CallState:
        """Run a step's or a choice's `set:` (each value sees the ones before it)."""
        for name, value in values:
            state = replace(state, data={**state.data, name: self._value(value, state)})
        return state

    def collected(self, state: CallState, step: Step) -> Result:
        """A collecting step has its value (confirmed if asked): its `set` runs now, so it can read
        the slot, then `next`."""
        try:
            state = self.assign(state, step.assign)
        except RenderError as exc:
            return self.failed(state, "template", f"template error: {exc}")
        return self.enter(state, self.route(state, step))

    def route(self, state: CallState, step: Step) -> str | None:
        ctx = context(self.flow, state)
        for route in step.next:
            if route.condition is None or route.condition.test(ctx):
                return route.goto
        return None

    def failed(self, state: CallState, kind: str, what: str, actions: list[Action] | None = None) -> Result:
        """A template or a service failed mid-call: go to the flow's own `on_error` step, which sees
        error.what/kind/step. Without one, or failing again before the caller is listened to, the fallback."""
        error = state.data.get("error")
        if not self.flow.on_error or (isinstance(error, dict) and error.get("active")):
            return self.fallback(state, what, actions)
        log.warning("%s; going to the flow's on_error step '%s'", what, self.flow.on_error)
        error = {"what": what, "kind": kind, "step": state.step or (state.path[-1] if state.path else ""),
                 "active": True}
        plays = [a for a in actions or [] if isinstance(a, Play)]
        state = replace(state, step=None, waiting=None, data={**state.data, "error": error})
        return self.enter(state, self.flow.on_error, plays)

    def fallback(self, state: CallState, reason: str, actions: list[Action] | None = None) -> Result:
        log.warning("fallback: %s", reason)
        actions = [a for a in actions or [] if isinstance(a, Play)]
        if self.flow.agent_line:
            return replace(state, ended=True, step=None, waiting=None), [
                *actions, self._to_agent(state, self.flow.agent_line, reason, self.agent_context(state, reason))]
        return replace(state, ended=True, step=None, waiting=None), [
            *actions, Play(self.defaults["error"], barge_in=False, language=self.voice_language), Hangup(reason)]

    # ---- rendering -----------------------------------------------------------------

    def play(self, text: Template | str, state: CallState, audio_path: str | None = None,
             barge_in: bool = True) -> Play:
        rendered = text.render(context(self.flow, state)) if isinstance(text, Template) else text
        return Play(rendered, audio_path, barge_in, self.voice_language)

    @property
    def voice_language(self) -> str:
        """Plays name their language only in a flow with several (the call loop then picks the voice)."""
        return self.flow.language if self.flow.languages else ""

    def ask(self, step: Step, state: CallState) -> tuple[Play, ...]:
        a = step.ask
        return (self.play(a.text, state, a.audio_path, a.barge_in),) if a else ()

    def listen(self, step: Step, yes_no: bool = False) -> Listen:
        phrases = [p for c in (*step.choices, *self.flow.globals) for p in c.intent.phrases]
        collect = step.collect
        if yes_no:
            phrases = [*self.defaults["yes_no"], *phrases]
        elif collect:
            phrases = [*hint_phrases(collect.slot, self.flow.language), *phrases]
        if collect and not yes_no:
            return Listen(step.name, tuple(dict.fromkeys(phrases)), True, collect.max_digits, step.no_input_ms,
                          collect.min_digits, collect.terminator, collect.inter_digit_ms, collect.slot,
                          self.flow.language)
        return Listen(step.name, tuple(dict.fromkeys(phrases)), dtmf=True, max_digits=1, no_input_ms=step.no_input_ms,
                      **({"language": self.flow.language} if self.flow.languages else {}))

    def _value(self, value, state: CallState):
        if isinstance(value, Template):
            return value.render(context(self.flow, state))
        return render_data(value, context(self.flow, state))

    def _request(self, spec: HttpSpec, state: CallState) -> HttpRequest:
        ctx = context(self.flow, state, self.env)
        return HttpRequest(spec.method, spec.url.render(ctx), tuple((k, v.render(ctx)) for k, v in spec.headers),
                           render_data(spec.json_body, ctx), spec.timeout_ms, spec.retries, spec.save)

    def _transfer(self, step: Step, state: CallState) -> Transfer:
        spec = step.transfer
        ctx = context(self.flow, state, self.env)
        target = spec.to.render(ctx) or self.flow.agent_line or ""
        reason = spec.reason.render(context(self.flow, state)) if spec.reason else (
            state.last.choice if state.last and state.last.choice else "transfer")
        extra = {k: v.render(context(self.flow, state)) for k, v in spec.context}
        return self._to_agent(state, target, reason, {**self.agent_context(state, reason, step.name), **extra})

    @staticmethod
    def _to_agent(state: CallState, target: str, reason: str, context: dict) -> Transfer:
        """What an agent sees never holds a sensitive slot's value or a card number, whatever the
        flow's reason/context templates wrote (ivr.privacy)."""
        reason, context = redact_with_slots((reason, context), state.slots, state.sensitive)
        return Transfer(target, reason, context)

    def agent_context(self, state: CallState, reason: str, step: str | None = None) -> dict:
        """What the agent's screen shows: who calls, what they wanted, what was collected."""
        last = state.last
        caller = {k: v for k, v in state.caller.items() if isinstance(v, str | int | float | bool)}
        return {"flow": self.flow.name, "step": step or state.step or (state.path[-1] if state.path else ""),
                "caller": caller, "path": list(state.path), "slots": public_slots(state),
                "last_heard": last.value if last else "", "intent": (last.choice or "") if last else ""}


def _error_handled(state: CallState) -> CallState:
    """The call listens again after an error: a later failure may take `on_error` again."""
    error = state.data.get("error")
    if isinstance(error, dict) and error.get("active"):
        return replace(state, data={**state.data, "error": {**error, "active": False}})
    return state
