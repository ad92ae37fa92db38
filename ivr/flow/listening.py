"""Deciding what caller input means at a listening step (part of the pure interpreter).

Order of questions for speech: an open yes/no question first; then a slot the step
collects; then the step's choices and the global ones, ranked by ivr.flow.understand (words and
meaning, one calibrated score). The knowledge base (`faq: true`) answers only when its entry
scores at least the flow's FAQ threshold and beats the best choice by the flow's `faq_margin`
(choices win ties: "is my order on the way" tracks the order). Then: a choice sure enough is
taken, one heard unsurely is offered ("Did you mean ...?"), else no-match escalation. A choice sure enough is
offered all the same when the recognizer doubts the words it heard (Heard.doubt: speech in another language
written as English words) and the caller did not say the answer whole, word for word (or it doubts them much). Every
speech turn keeps the top 3 candidates in `Understood.candidates`.
Keys: yes/no = 1/2, a slot's keypad entry, then choice and global keys.
"""

from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING

from ivr.events import VERY_DOUBTFUL, Hangup, Heard
from ivr.flow import understand
from ivr.flow.knowledge import FaqAnswer, KnowledgeBase
from ivr.flow.model import Choice, Step
from ivr.flow.slots import SlotSpec, SlotValue, parse_keys, parse_speech
from ivr.flow.state import CallState, Confirming, Understood
from ivr.privacy import mask_answer

if TYPE_CHECKING:
    from ivr.flow.interpreter import Interpreter, Result

_YES_NO = SlotSpec(name="confirm", type="yes_no")


def heard(it: "Interpreter", state: CallState, step: Step, event: Heard) -> "Result":
    text = event.text
    answer = _parsed(it, state, step, text)
    if answer is not None and state.confirming:
        last = Understood("speech", text, "yes" if answer.value else "no", 1.0, "confirm")
        return _confirmed(it, replace(state, last=last), step, answer.value)
    if answer is not None:
        return _filled(it, state, step, answer, "speech")
    weighed = _offered(it, state, step)
    ranked = understand.rank(text, *weighed)
    faq = _faq_best(it, state, step, text)
    top = ranked[0] if ranked and ranked[0].score >= it.flow.confirm else None
    offered = top is not None and top.score >= it.flow.accept and _doubted(event, top, weighed)
    if offered:   # words the recognizer doubts (another language written as English words): offered, not acted on
        top = replace(top, signal=f"{top.signal}; offered: the recognizer doubts the words "
                                  f"(confidence {event.confidence:.2f})")
        ranked = [top, *ranked[1:]]
    shown = _candidates(ranked, faq)
    clearly_better = faq is not None and (top is None or faq.score >= top.score + it.flow.faq_margin)
    if clearly_better and faq.score >= _faq_threshold(it):
        last = Understood("speech", text, faq.id, faq.score, "faq", shown)
        return _faq(it, replace(state, last=last), step, faq.answer)
    if top is not None and top.score >= it.flow.accept and not offered:
        choice, via = _choice(it, step, top.name)
        last = Understood("speech", text, choice.name, top.score, via, shown)
        return take(it, replace(state, last=last), step, choice)
    if top is not None and not state.confirming:
        choice, via = _choice(it, step, top.name)
        state = replace(state, last=Understood("speech", text, None, top.score, via, shown),
                        confirming=Confirming("choice", choice.name))
        question = it.play(it.defaults["did_you_mean"].format(label=choice.label), state)
        return replace(state, last_prompts=(question,)), [question, it.listen(step, yes_no=True)]
    last = Understood("speech", _shown(state, step, text), candidates=shown)
    return fail(it, replace(state, last=last), step, "no_match")


def _doubted(event: Heard, top: understand.Candidate, weighed: tuple[tuple, tuple]) -> bool:
    """Whether an answer scored to be taken is only offered: the recognizer doubts the words (Heard.doubt) and the
    caller did not say the answer whole, word for word, among the answers `weighed` (_offered; understand.said_whole:
    "goodbye"), or it doubts them much. A whole yes or no at a step that asks one stands."""
    if not event.doubt or top.signal == understand.WHOLE_YES_NO:
        return False
    return event.doubt >= VERY_DOUBTFUL or not understand.said_whole(event.text, *weighed, top.name)


def needs_vector(it: "Interpreter", state: CallState, step: Step, text: str) -> bool:
    """Whether `heard` computes the caller sentence's e5 vector (semantic.sentence_vector) for `text`: not when a
    yes/no or the slot's value is parsed from the words, else when ranking the offered answers does
    (understand.needs_vector: not when the words alone are sure) or the step's knowledge base does. The same
    helpers `heard` uses, so the two cannot disagree."""
    if _parsed(it, state, step, text) is not None:
        return False
    kb = _faq_base(it, state, step, text)
    return understand.needs_vector(text, *_offered(it, state, step)) or (kb is not None and kb.needs_vector(text))


def _parsed(it: "Interpreter", state: CallState, step: Step, text: str) -> SlotValue | None:
    """What the words give before any matching: the yes/no to a pending confirmation, else the value of the
    slot the step collects (None: nothing parsed, matching decides)."""
    if state.confirming:
        answer = parse_speech(_YES_NO, text, it.flow.language, _today(state))
    elif step.collect:
        answer = parse_speech(step.collect.slot, text, it.flow.language, _today(state))
    else:
        return None
    return answer if isinstance(answer, SlotValue) else None


def _offered(it: "Interpreter", state: CallState, step: Step) -> tuple[tuple, tuple]:
    """The intents matching weighs: the step's own choices (none while confirming or collecting), the globals."""
    choices = () if (state.confirming or step.collect) else step.choices
    return tuple(c.intent for c in choices), tuple(c.intent for c in it.flow.globals)


def digits(it: "Interpreter", state: CallState, step: Step, keys: str) -> "Result":
    if state.confirming and keys in ("1", "2"):
        last = Understood("dtmf", keys, "yes" if keys == "1" else "no", 1.0, "confirm")
        return _confirmed(it, replace(state, last=last), step, keys == "1")
    if step.collect and not state.confirming:
        value = parse_keys(step.collect.slot, keys, it.flow.language, _today(state))
        if isinstance(value, SlotValue):
            return _filled(it, state, step, value, "dtmf")
    choices = () if (state.confirming or step.collect) else step.choices
    for via, group in (("step", choices), ("global", it.flow.globals)):
        for choice in group:
            if choice.dtmf and choice.dtmf == keys:
                return take(it, replace(state, last=Understood("dtmf", keys, choice.name, 1.0, via)), step, choice)
    return fail(it, replace(state, last=Understood("dtmf", _shown(state, step, keys))), step, "no_match")


def no_input(it: "Interpreter", state: CallState, step: Step) -> "Result":
    return fail(it, state, step, "no_input")


def take(it: "Interpreter", state: CallState, step: Step, choice: Choice) -> "Result":
    if choice.action == "repeat":
        return state, [*state.last_prompts, it.listen(step, yes_no=state.confirming is not None)]
    if choice.action == "hangup":
        return replace(state, ended=True, step=None), [Hangup("caller asked")]
    if choice.goto and choice in it.flow.globals:
        state = replace(state, stack=())   # a global goto leaves any subflow for good
    state = it.assign(state, choice.assign)   # a choice's `set:` runs as it is taken
    return it.enter(state, choice.goto or step.name)


def fail(it: "Interpreter", state: CallState, step: Step, kind: str) -> "Result":
    if kind == "no_input":
        state = replace(state, no_input_count=state.no_input_count + 1)
        count, prompts = state.no_input_count, step.no_input
    else:
        state = replace(state, no_match_count=state.no_match_count + 1)
        count, prompts = state.no_match_count, step.no_match
    if state.attempts >= step.max_attempts:
        if step.on_fail:
            return it.enter(state, step.on_fail)
        return it.fallback(state, f"{kind} after {state.attempts} attempts")
    text = it.play(prompts[min(count, len(prompts)) - 1], state) if prompts else it.play(it.defaults[kind], state)
    if state.confirming:
        plays = (text, it.play(it.defaults["confirm_hint"], state))
        return replace(state, last_prompts=plays), [*plays, it.listen(step, yes_no=True)]
    plays = (text, *it.ask(step, state))
    return replace(state, last_prompts=plays), [*plays, it.listen(step)]


def _filled(it: "Interpreter", state: CallState, step: Step, value: SlotValue, kind: str) -> "Result":
    collect = step.collect
    name = collect.slot.name
    shown = mask_answer(value.heard, collect.slot.type) if collect.sensitive else value.heard
    state = replace(state, slots={**state.slots, name: value.value},
                    sensitive=state.sensitive | {name} if collect.sensitive else state.sensitive,
                    last=Understood(kind, shown, name, 1.0, "slot"))
    if collect.confirm is None:
        return it.collected(state, step)
    question = it.play(collect.confirm, state)
    state = replace(state, confirming=Confirming("slot", name, value.value), last_prompts=(question,))
    return state, [question, it.listen(step, yes_no=True)]


def _confirmed(it: "Interpreter", state: CallState, step: Step, yes: bool) -> "Result":
    pending = state.confirming
    state = replace(state, confirming=None)
    if pending.kind == "slot":
        if yes:
            return it.collected(state, step)
        slots = {k: v for k, v in state.slots.items() if k != pending.name}
        return _retry(it, replace(state, slots=slots), step)
    if yes:
        choice, via = _choice(it, step, pending.name)
        last = replace(state.last, choice=choice.name, via=via)
        return take(it, replace(state, last=last), step, choice)
    return _retry(it, state, step)


def _retry(it: "Interpreter", state: CallState, step: Step) -> "Result":
    """A "no" to a confirmation: counts as an attempt, then the question again."""
    state = replace(state, no_match_count=state.no_match_count + 1)
    if state.attempts >= step.max_attempts:
        if step.on_fail:
            return it.enter(state, step.on_fail)
        return it.fallback(state, f"not confirmed after {state.attempts} attempts")
    plays = (it.play(it.defaults["retry"], state), *it.ask(step, state))
    return replace(state, last_prompts=plays), [*plays, it.listen(step)]


def _faq(it: "Interpreter", state: CallState, step: Step, answer: str) -> "Result":
    said = it.play(answer, state)
    if step.after_faq:
        return it.enter(state, step.after_faq, [said])
    state = replace(state, no_input_count=0, no_match_count=0)
    plays = (said, *it.ask(step, state))
    return replace(state, last_prompts=plays), [*plays, it.listen(step)]


def _faq_best(it: "Interpreter", state: CallState, step: Step, text: str) -> FaqAnswer | None:
    """The knowledge base's best entry for `text` (any score), where the step may answer from it."""
    kb = _faq_base(it, state, step, text)
    return kb.answer(text, threshold=0.0) if kb is not None else None


def _faq_base(it: "Interpreter", state: CallState, step: Step, text: str) -> KnowledgeBase | None:
    """The knowledge base the step may answer `text` from (`faq: true`, not confirming or collecting), else None."""
    kb = it.flow.knowledge
    if not (step.faq and kb and text) or state.confirming or step.collect:
        return None
    return kb


def _faq_threshold(it: "Interpreter") -> float:
    """The flow's `nlu: {faq: ...}`, else the knowledge base's own threshold."""
    return it.flow.knowledge.threshold if it.flow.faq_threshold is None else it.flow.faq_threshold


def _candidates(ranked: list[understand.Candidate], faq: FaqAnswer | None) -> tuple[dict, ...]:
    """The top 3 answers weighed (choices, globals, the FAQ entry), for traces and `ivr chat`."""
    found = [c.as_dict() for c in ranked[:3]]
    if faq is not None:
        found.append({"choice": faq.id, "score": faq.score, "signal": "faq", "group": "faq"})
    return tuple(sorted(found, key=lambda c: -c["score"])[:3])


def _choice(it: "Interpreter", step: Step, name: str) -> tuple[Choice, str]:
    for choice in step.choices:
        if choice.name == name:
            return choice, "step"
    return next(c for c in it.flow.globals if c.name == name), "global"


def _shown(state: CallState, step: Step, value: str) -> str:
    return mask_answer(value, step.collect.slot.type) if step.collect and step.collect.sensitive else value


def _today(state: CallState) -> date:
    now = state.clock.get("now")
    return now.date() if now is not None else date.today()
