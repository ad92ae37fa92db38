"""A `queue:` step in the pure interpreter: enter, announce, callback offer, leaving; a failed transfer.

Events in: `QueueUpdate` (announce the position and wait), `QueueLeft` (why the caller is out),
the caller's keys/speech while queued (the callback key, then the yes/no on the number), and
`TransferError` after any transfer. Actions out: `EnterQueue`, `Play`, `Listen` (only while
confirming the callback number: no recognizer runs on hold otherwise), `RequestCallback`,
`Hangup`. The call loop side is `ivr/call_queue.py`.
"""

from dataclasses import replace
from typing import TYPE_CHECKING

from ivr.events import (
    Digits,
    EnterQueue,
    Event,
    Hangup,
    Heard,
    Listen,
    NoInput,
    Play,
    QueueLeft,
    QueueUpdate,
    RequestCallback,
    TransferError,
)
from ivr.flow.model import Step
from ivr.flow.slots import SlotSpec, SlotValue, parse_speech
from ivr.flow.state import CallState, context
from ivr.privacy import redact_with_slots

if TYPE_CHECKING:
    from ivr.flow.interpreter import Interpreter, Result

_YES_NO = SlotSpec(name="confirm", type="yes_no")
CONFIRM_NO_INPUT_MS = 8000


def enter(it: "Interpreter", state: CallState, step: Step, actions: list) -> "Result":
    spec = step.queue
    last = state.last
    reason = spec.reason.render(context(it.flow, state)) if spec.reason else (
        (last.choice if last and last.choice else "") or "queue")
    ctx = it.agent_context(state, reason, step.name)
    reason, ctx = redact_with_slots((reason, ctx), state.slots, state.sensitive)
    action = EnterQueue(spec.name, step.name, spec.hold_music, spec.announce_every_ms, spec.max_wait_ms,
                        spec.callback_key, reason, ctx)
    state = replace(state, step=step.name, queue={"name": spec.name, "phase": "waiting"})
    return state, [*actions, action]


def handle(it: "Interpreter", state: CallState, step: Step, event: Event) -> "Result":
    """An event while the call is in the queue step `step`."""
    spec = step.queue
    phase = state.queue.get("phase", "waiting")
    if isinstance(event, QueueUpdate):
        return state, ([] if phase == "confirm" else [Play(t, barge_in=False) for t in announcement(it, spec, event)])
    if isinstance(event, QueueLeft):
        return left(it, state, step, event)
    if phase == "confirm":
        yes = None
        if isinstance(event, Digits):
            yes = {"1": True, "2": False}.get(event.digits[:1])
        elif isinstance(event, Heard):
            answer = parse_speech(_YES_NO, event.text, it.flow.language, None)
            yes = answer.value if isinstance(answer, SlotValue) else None
        elif isinstance(event, NoInput):
            yes = False
        if yes is None:
            return state, [Play(it.defaults["confirm_hint"]), _confirm_listen(it, step)]
        if not yes:   # keep waiting: hold music resumes
            return replace(state, queue={**state.queue, "phase": "waiting"}), []
        number = state.queue.get("number", "")
        state = replace(state, queue={**state.queue, "phase": "callback"}, data={**state.data, "callback": number})
        if spec.on_callback:
            return it.enter(replace(state, step=None), spec.on_callback, [RequestCallback(number)])
        done = Play(it.defaults["queue_callback_done"], barge_in=False)
        return replace(state, ended=True, step=None), [RequestCallback(number), done, Hangup("callback")]
    if isinstance(event, Digits) and spec.callback_key and spec.callback_key in event.digits:
        number = callback_number(state)
        if not number:
            return state, [Play(it.defaults["queue_callback_no_number"], barge_in=False)]
        state = replace(state, queue={**state.queue, "phase": "confirm", "number": number})
        spoken = " ".join(ch for ch in number if ch.isdigit())
        return state, [Play(it.defaults["queue_callback_confirm"].format(number=spoken)), _confirm_listen(it, step)]
    return state, []     # other keys and speech on hold: nothing


def announcement(it: "Interpreter", spec, event: QueueUpdate) -> list[str]:
    """Sentence by sentence (each its own prompt: the cache holds "You are number 2 in the queue."
    once for every caller at that place)."""
    d = it.defaults
    parts = [d["queue_position"].format(position=event.position, ahead=max(0, event.position - 1))]
    if event.wait_s is not None:
        minutes = round(event.wait_s / 60)
        parts.append(d["queue_wait"].format(minutes=minutes) if minutes >= 1 else d["queue_wait_short"])
    offer = spec.callback_key and (spec.callback_after_ms is None or event.waited_ms >= spec.callback_after_ms)
    if offer:
        parts.append(d["queue_callback_offer"].format(key=spec.callback_key))
    return parts


def callback_number(state: CallState) -> str:
    """A `phone` slot the flow collected, else the caller ID (digits and a leading +)."""
    for value in (state.slots.get("phone"), state.caller.get("number")):
        text = str(value or "")
        if text.startswith(("sip:", "sips:")):
            text = text.split(":", 1)[1].split("@", 1)[0]
        digits = "".join(ch for ch in text if ch.isdigit())
        if len(digits) >= 3:
            return ("+" if text.strip().startswith("+") else "") + digits
    return ""


def left(it: "Interpreter", state: CallState, step: Step, event: QueueLeft) -> "Result":
    spec = step.queue
    state = replace(state, queue={**state.queue, "phase": "left", "left": event.reason})
    if event.reason in ("answered", "caller_hangup", "callback"):
        return replace(state, ended=True, step=None), []
    target = spec.on_timeout if event.reason == "timeout" else spec.on_empty
    if target:
        return it.enter(replace(state, step=None), target)
    text = it.defaults["queue_timeout" if event.reason == "timeout" else "queue_empty"]
    return replace(state, ended=True, step=None), [Play(text, barge_in=False), Hangup(f"queue {event.reason}")]


def transfer_failed(it: "Interpreter", state: CallState, event: TransferError) -> "Result":
    """After a Transfer the caller is still there: the transfer step's `on_fail`, else goodbye."""
    step = it.flow.steps.get(state.path[-1]) if state.path else None
    if step is not None and step.transfer and step.on_fail:
        state = replace(state, ended=False, step=None, data={**state.data, "transfer_error": event.why})
        return it.enter(state, step.on_fail)
    return replace(state, ended=True, step=None), [Play(it.defaults["transfer_failed"], barge_in=False),
                                                   Hangup("transfer failed")]


def _confirm_listen(it: "Interpreter", step: Step) -> Listen:
    return Listen(step.name, tuple(it.defaults["yes_no"]), dtmf=True, max_digits=1, no_input_ms=CONFIRM_NO_INPUT_MS,
                  language=it.flow.language)
