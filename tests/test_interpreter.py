"""The flow interpreter as a pure state machine: event sequences in, exact actions out."""

import textwrap

import pytest

from ivr.events import (
    CallerHungUp,
    CallStarted,
    Digits,
    EngineFailed,
    Hangup,
    Heard,
    Listen,
    NoInput,
    Play,
    Transfer,
)
from ivr.flow.interpreter import MAX_HOPS, CallState, Interpreter
from ivr.flow.loader import load_flow

SHOP = """
name: shop
agent_line: sip:agents@pbx
globals:
  agent: {say: [agent, operator], dtmf: "0", goto: to_agent}
  repeat: {say: ["repeat [that]"], dtmf: "*", action: repeat}
  bye: {say: [goodbye], action: hangup}
start: welcome
steps:
  welcome:
    say: Welcome to the shop.
    next: main
  main:
    say: Main menu.
    ask: Say track or hours, or press 1 or 2.
    no_input_timeout: 4s
    choices:
      track: {say: "track [my] order", dtmf: "1", goto: track}
      hours: {say: "[opening] hours", dtmf: "2", goto: hours}
    no_input: ["I didn't hear anything.", "Please press 1 or 2."]
    no_match: ["I didn't understand.", "Say track or hours."]
    max_attempts: 4
    on_fail: to_agent
  track:
    say: It ships Friday.
    next: more
  hours:
    say: [We open at nine., We close at five.]
    next: more
  more:
    ask: Anything else?
    choices:
      menu: {say: [main menu, "yes"], dtmf: "9", goto: main}
      done: {say: ["no [thanks]"], goto: bye}
    max_attempts: 2
  to_agent:
    say: Connecting.
    barge_in: false
    transfer: {to: "{{ agent_line }}", reason: caller asked}
  bye:
    say: Goodbye.
    hangup: true
"""

MAIN_EXPECT = ("track order", "track my order", "hours", "opening hours",
               "agent", "operator", "repeat", "repeat that", "goodbye")
MORE_EXPECT = ("main menu", "yes", "no", "no thanks", "agent", "operator", "repeat", "repeat that", "goodbye")

WELCOME = Play("Welcome to the shop.")
MAIN_SAY = Play("Main menu.")
MAIN_ASK = Play("Say track or hours, or press 1 or 2.")
LISTEN_MAIN = Listen("main", MAIN_EXPECT, dtmf=True, max_digits=1, no_input_ms=4000)
MORE_ASK = Play("Anything else?")
LISTEN_MORE = Listen("more", MORE_EXPECT, dtmf=True, max_digits=1, no_input_ms=5000)
CONNECTING = Play("Connecting.", barge_in=False)


@pytest.fixture
def make(tmp_path):
    """Load an inline YAML flow and return its interpreter."""
    count = 0

    def _make(text: str) -> Interpreter:
        nonlocal count
        count += 1
        path = tmp_path / f"flow{count}.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return Interpreter(load_flow(path))

    return _make


@pytest.fixture
def shop(make):
    return make(SHOP)


def run(interp: Interpreter, *events, state: CallState | None = None):
    """Feed events in order; return the final state and the actions of each event."""
    state = state or CallState()
    out = []
    for event in events:
        state, actions = interp.handle(state, event)
        out.append(actions)
    return state, out


def ctx(step, path, last_heard="", intent=None, flow="shop", caller=""):
    """What the agent sees (the full flow language adds slots and the looked-up caller)."""
    return {"flow": flow, "step": step, "path": path, "last_heard": last_heard, "intent": intent or "",
            "caller": {"number": caller}, "slots": {}}


# ---- starting and moving through steps ----------------------------------------------


def test_call_started_plays_say_and_ask_then_listens(shop):
    state, [actions] = run(shop, CallStarted(caller="+15550001"))
    assert actions == [WELCOME, MAIN_SAY, MAIN_ASK, LISTEN_MAIN]
    assert state.step == "main"
    assert state.path == ("welcome", "main")
    assert not state.ended
    assert state.attempts == 0


# (events after CallStarted, expected actions of the last event, step, path)
MOVES = [
    pytest.param([Heard("track my order please")],
                 [Play("It ships Friday."), MORE_ASK, LISTEN_MORE],
                 "more", ("welcome", "main", "track", "more"), id="speech-choice"),
    pytest.param([Heard("what are your opening hours")],
                 [Play("We open at nine."), Play("We close at five."), MORE_ASK, LISTEN_MORE],
                 "more", ("welcome", "main", "hours", "more"), id="speech-choice-2"),
    pytest.param([Heard("attract my order")],
                 [Play("It ships Friday."), MORE_ASK, LISTEN_MORE],
                 "more", ("welcome", "main", "track", "more"), id="fuzzy-speech"),
    pytest.param([Digits("1")],
                 [Play("It ships Friday."), MORE_ASK, LISTEN_MORE],
                 "more", ("welcome", "main", "track", "more"), id="dtmf-choice"),
    pytest.param([Digits("2")],
                 [Play("We open at nine."), Play("We close at five."), MORE_ASK, LISTEN_MORE],
                 "more", ("welcome", "main", "hours", "more"), id="dtmf-choice-2"),
    pytest.param([Digits("1"), Heard("yes")],
                 [MAIN_SAY, MAIN_ASK, LISTEN_MAIN],
                 "main", ("welcome", "main", "track", "more", "main"), id="back-to-menu"),
    pytest.param([Digits("1"), Digits("9"), Digits("2")],
                 [Play("We open at nine."), Play("We close at five."), MORE_ASK, LISTEN_MORE],
                 "more", ("welcome", "main", "track", "more", "main", "hours", "more"), id="round-trip"),
]


@pytest.mark.parametrize(("events", "expected", "step", "path"), MOVES)
def test_moves(shop, events, expected, step, path):
    state, out = run(shop, CallStarted(), *events)
    assert out[-1] == expected
    assert state.step == step
    assert state.path == path


def test_understood_records_what_was_taken(shop):
    state, _ = run(shop, CallStarted(), Heard("attract my order"))
    assert (state.last.kind, state.last.value, state.last.choice, state.last.via) == (
        "speech", "attract my order", "track", "step")
    assert 0.8 <= state.last.score < 1.0
    state, _ = run(shop, CallStarted(), Digits("0"))
    assert (state.last.kind, state.last.value, state.last.choice, state.last.score, state.last.via) == (
        "dtmf", "0", "agent", 1.0, "global")


def test_goodbye_global_hangs_up(shop):
    state, out = run(shop, CallStarted(), Heard("ok goodbye"))
    assert out[-1] == [Hangup("caller asked")]
    assert state.ended and state.step is None


def test_step_choice_leading_to_hangup_step(shop):
    state, out = run(shop, CallStarted(), Digits("2"), Heard("no thanks"))
    assert out[-1] == [Play("Goodbye."), Hangup("flow")]
    assert state.ended
    assert state.path[-1] == "bye"


# ---- the agent: globals, transfer targets and context -------------------------------


@pytest.mark.parametrize(
    ("event", "heard"),
    [(Heard("get me an operator"), "get me an operator"), (Digits("0"), "0")],
    ids=["speech", "key-0"],
)
def test_global_agent_transfers_with_context(shop, event, heard):
    state, out = run(shop, CallStarted(), event)
    assert out[-1] == [
        CONNECTING,
        Transfer("sip:agents@pbx", "caller asked", ctx("to_agent", ["welcome", "main", "to_agent"], heard, "agent")),
    ]
    assert state.ended
    assert state.path == ("welcome", "main", "to_agent")


def test_global_agent_from_a_later_step(shop):
    _, out = run(shop, CallStarted(), Digits("1"), Heard("agent please"))
    assert out[-1] == [
        CONNECTING,
        Transfer("sip:agents@pbx", "caller asked",
                 ctx("to_agent", ["welcome", "main", "track", "more", "to_agent"], "agent please", "agent")),
    ]


@pytest.mark.parametrize(
    ("target", "agent_line", "expected"),
    [
        ("'{{ agent_line }}'", "sip:agents@pbx", "sip:agents@pbx"),
        ("'{{agent_line}}'", "sip:agents@pbx", "sip:agents@pbx"),
        ("'sip:{{ agent_line }}@pbx'", "'100'", "sip:100@pbx"),
        ("'sip:{{ agent_line }}@pbx'", "100", "sip:100@pbx"),          # a bare extension number
        ("sip:sales@pbx", "sip:agents@pbx", "sip:sales@pbx"),
        ("'{{ agent_line }}'", None, ""),
    ],
)
def test_transfer_target_substitution(make, target, agent_line, expected):
    interp = make(f"""
        name: t
        {"agent_line: " + agent_line if agent_line else ""}
        steps:
          main:
            ask: Press 1.
            choices:
              sales: {{dtmf: "1", goto: out}}
          out:
            transfer: {target}
    """)
    _, out = run(interp, CallStarted(), Digits("1"))
    # no reason given: the choice that led here is the reason
    assert out[-1] == [Transfer(expected, "sales", ctx("out", ["main", "out"], "1", "sales", flow="t"))]


# ---- repeat -------------------------------------------------------------------------


@pytest.mark.parametrize("event", [Heard("could you repeat that"), Digits("*")], ids=["speech", "key-star"])
def test_repeat_replays_the_last_prompts(shop, event):
    state, out = run(shop, CallStarted(), event)
    assert out[-1] == [MAIN_SAY, MAIN_ASK, LISTEN_MAIN]      # the step's prompts, not the welcome
    assert state.step == "main"
    assert state.path == ("welcome", "main")                 # repeating enters no step
    assert state.attempts == 0


def test_repeat_in_a_later_step(shop):
    _, out = run(shop, CallStarted(), Digits("2"), Digits("*"))
    assert out[-1] == [MORE_ASK, LISTEN_MORE]


def test_repeat_after_a_reprompt_replays_the_reprompt(shop):
    _, out = run(shop, CallStarted(), Heard("pizza"), Heard("repeat"))
    assert out[-1] == [Play("I didn't understand."), MAIN_ASK, LISTEN_MAIN]


# ---- no match, no input, attempts ---------------------------------------------------

ESCALATION = [
    pytest.param(
        [Heard("pizza"), Heard("pasta"), Heard("salad")],
        [
            [Play("I didn't understand."), MAIN_ASK, LISTEN_MAIN],
            [Play("Say track or hours."), MAIN_ASK, LISTEN_MAIN],
            [Play("Say track or hours."), MAIN_ASK, LISTEN_MAIN],       # the last prompt is reused
        ],
        id="no-match",
    ),
    pytest.param(
        [NoInput(), NoInput(), NoInput()],
        [
            [Play("I didn't hear anything."), MAIN_ASK, LISTEN_MAIN],
            [Play("Please press 1 or 2."), MAIN_ASK, LISTEN_MAIN],
            [Play("Please press 1 or 2."), MAIN_ASK, LISTEN_MAIN],
        ],
        id="no-input",
    ),
    pytest.param(
        [NoInput(), Digits("7"), Heard("")],
        [
            [Play("I didn't hear anything."), MAIN_ASK, LISTEN_MAIN],
            [Play("I didn't understand."), MAIN_ASK, LISTEN_MAIN],          # unknown key = no match
            [Play("Say track or hours."), MAIN_ASK, LISTEN_MAIN],           # nothing recognised = no match
        ],
        id="mixed",
    ),
]


@pytest.mark.parametrize(("events", "expected"), ESCALATION)
def test_escalation_then_on_fail(shop, events, expected):
    state, out = run(shop, CallStarted(), *events)
    assert out[1:] == expected
    assert state.step == "main" and state.attempts == 3
    # the 4th failure (max_attempts: 4) takes on_fail
    state, [last] = run(shop, NoInput(), state=state)
    assert last == [
        CONNECTING,
        Transfer("sip:agents@pbx", "caller asked", ctx("to_agent", ["welcome", "main", "to_agent"], "", None)),
    ]
    assert state.ended


def test_counts_per_kind(shop):
    state, _ = run(shop, CallStarted(), NoInput(), Heard("pizza"), NoInput())
    assert (state.no_input_count, state.no_match_count, state.attempts) == (2, 1, 3)


@pytest.mark.parametrize(
    ("language", "no_input", "no_match"),
    [
        ("en-US", "Sorry, I didn't hear you.", "Sorry, I didn't catch that."),
        ("zh-CN", "抱歉，我没有听到您的声音。", "抱歉，我没有听清楚。"),
        ("ko-KR", "Sorry, I didn't hear you.", "Sorry, I didn't catch that."),   # no Korean defaults yet
    ],
)
def test_default_reprompts(make, language, no_input, no_match):
    interp = make(f"""
        language: {language}
        steps:
          main:
            ask: Q?
            choices:
              a: {{dtmf: "1", goto: end}}
          end: {{say: E., hangup: true}}
    """)
    listen = Listen("main", (), no_input_ms=5000)
    _, out = run(interp, CallStarted(), NoInput(), Heard("xyz"))
    assert out == [[Play("Q?"), listen],
                   [Play(no_input), Play("Q?"), listen],
                   [Play(no_match), Play("Q?"), listen]]


FAIL_FLOW = """
    name: f
    {agent_line}
    language: {language}
    steps:
      main:
        ask: Press 1.
        max_attempts: 2
        choices:
          one: {{dtmf: "1", goto: main}}
"""


@pytest.mark.parametrize(
    ("events", "reason"),
    [([NoInput(), NoInput()], "no_input after 2 attempts"),
     ([NoInput(), Heard("what")], "no_match after 2 attempts")],
)
def test_max_attempts_without_on_fail_transfers_to_agent_line(make, events, reason):
    interp = make(FAIL_FLOW.format(agent_line="agent_line: sip:desk@pbx", language="en-US"))
    state, out = run(interp, CallStarted(), *events)
    last_heard = events[-1].text if isinstance(events[-1], Heard) else ""
    assert out[-1] == [Transfer("sip:desk@pbx", reason, ctx("main", ["main"], last_heard, None, flow="f"))]
    assert state.ended and state.step is None


@pytest.mark.parametrize(
    ("language", "apology"),
    [("en-US", "Sorry, something went wrong."), ("zh-CN", "抱歉，系统出现了问题。")],
)
def test_max_attempts_without_on_fail_or_agent_line_apologises_and_hangs_up(make, language, apology):
    interp = make(FAIL_FLOW.format(agent_line="", language=language))
    state, out = run(interp, CallStarted(), NoInput(), NoInput())
    assert out[-1] == [Play(apology, barge_in=False), Hangup("no_input after 2 attempts")]
    assert state.ended


def test_max_attempts_one_fails_at_once(make):
    interp = make("""
        steps:
          main:
            ask: Press 1.
            max_attempts: 1
            on_fail: bye
            choices:
              one: {dtmf: "1", goto: main}
          bye: {say: Bye., hangup: true}
    """)
    _, out = run(interp, CallStarted(), Heard("hello"))
    assert out[-1] == [Play("Bye."), Hangup("flow")]


def test_attempts_reset_on_entering_a_new_step(shop):
    # two failures in main, then a choice: 'more' (max_attempts: 2) gets its own two attempts
    state, out = run(shop, CallStarted(), Heard("pizza"), NoInput(), Digits("1"))
    assert (state.step, state.attempts) == ("more", 0)
    state, out = run(shop, NoInput(), state=state)
    assert out[-1] == [Play("Sorry, I didn't hear you."), MORE_ASK, LISTEN_MORE]
    assert (state.step, state.no_input_count) == ("more", 1)
    state, out = run(shop, Heard("pizza"), state=state)
    assert out[-1] == [Transfer("sip:agents@pbx", "no_match after 2 attempts",
                                ctx("more", ["welcome", "main", "track", "more"], "pizza", None))]


def test_attempts_reset_when_a_choice_reenters_the_same_step(make):
    interp = make("""
        steps:
          main:
            ask: Press 1.
            max_attempts: 2
            on_fail: bye
            choices:
              again: {dtmf: "1", goto: main}
          bye: {say: Bye., hangup: true}
    """)
    state, out = run(interp, CallStarted(), NoInput(), Digits("1"), NoInput())
    assert state.step == "main" and state.no_input_count == 1
    assert out[-1][0] == Play("Sorry, I didn't hear you.")
    assert state.path == ("main", "main")


# ---- failures, hang-ups, the end ----------------------------------------------------


def test_engine_failure_takes_the_fallback_to_an_agent(shop):
    state, out = run(shop, CallStarted(), EngineFailed("asr"))
    assert out[-1] == [Transfer("sip:agents@pbx", "engine failure: asr",
                                ctx("main", ["welcome", "main"], "", ""))]      # nothing heard yet
    assert state.ended and state.step is None


@pytest.mark.parametrize(
    ("language", "apology"),
    [("en-US", "Sorry, something went wrong."), ("zh-CN", "抱歉，系统出现了问题。")],
)
def test_engine_failure_without_agent_line_hangs_up(make, language, apology):
    interp = make(FAIL_FLOW.format(agent_line="", language=language))
    state, out = run(interp, CallStarted(), EngineFailed("tts"))
    assert out[-1] == [Play(apology, barge_in=False), Hangup("engine failure: tts")]
    assert state.ended


def test_caller_hung_up(shop):
    state, out = run(shop, CallStarted(), CallerHungUp())
    assert out[-1] == []
    assert state.ended and state.step is None
    assert state.path == ("welcome", "main")


ENDINGS = [
    pytest.param([CallerHungUp()], id="after-hangup"),
    pytest.param([Digits("0")], id="after-transfer"),
    pytest.param([Heard("goodbye")], id="after-caller-goodbye"),
    pytest.param([EngineFailed("asr")], id="after-engine-failure"),
]


@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize(
    "late",
    [CallStarted(), Heard("track my order"), Digits("1"), NoInput(), EngineFailed("asr"), CallerHungUp()],
    ids=lambda e: type(e).__name__,
)
def test_nothing_happens_after_the_end(shop, ending, late):
    state, _ = run(shop, CallStarted(), *ending)
    assert state.ended
    after, [actions] = run(shop, late, state=state)
    assert actions == []
    assert after == state


@pytest.mark.parametrize("event", [Heard("track my order"), Digits("1"), NoInput()],
                         ids=lambda e: type(e).__name__)
def test_input_when_not_listening_is_ignored(shop, event):
    before = CallState()
    state, [actions] = run(shop, event, state=before)
    assert actions == []
    assert state == before


def test_unknown_event_is_a_type_error(shop):
    state, _ = run(shop, CallStarted())
    with pytest.raises(TypeError, match="not a flow event"):
        shop.handle(state, "track my order")


def test_a_loop_that_never_listens_ends_in_the_fallback(make):
    interp = make("""
        name: loop
        agent_line: sip:agents@pbx
        steps:
          a: {say: A., next: [{if: "true", goto: b}, {goto: b}]}   # conditional: only caught at run time
          b: {say: B., next: a}
    """)
    state, [actions] = run(interp, CallStarted())
    assert state.ended and state.step is None
    assert actions[-1] == Transfer("sip:agents@pbx", "flow loops without listening",
                                   ctx("b", ["a", "b"] * (MAX_HOPS // 2), "", "", flow="loop"))
    plays = actions[:-1]
    assert len(plays) == MAX_HOPS
    assert plays[:2] == [Play("A."), Play("B.")]


def test_a_silent_loop_without_agent_line_hangs_up(make):
    interp = make("""
        steps:
          a: {next: [{if: "flow", goto: b}, {goto: b}]}
          b: {goto: a}
    """)
    state, [actions] = run(interp, CallStarted())
    assert actions == [Play("Sorry, something went wrong.", barge_in=False), Hangup("flow loops without listening")]
    assert state.ended


def test_path_records_every_step_entered(shop):
    state, _ = run(shop, CallStarted(), Digits("1"), Digits("9"), Heard("hours"), Heard("main menu"),
                   NoInput(), Digits("*"), Heard("operator"))
    assert state.path == ("welcome", "main", "track", "more", "main", "hours", "more", "main", "to_agent")


# ---- determinism --------------------------------------------------------------------

SCRIPT = [CallStarted(caller="+1555"), Heard("pizza"), NoInput(), Digits("*"), Heard("attract my order"),
          Heard("yes"), Digits("2"), NoInput(), Heard("no thanks")]


def test_same_events_same_actions(shop, make):
    first_state, first = run(shop, *SCRIPT)
    second_state, second = run(make(SHOP), *SCRIPT)
    assert first == second
    assert first_state == second_state
    assert first[-1] == [Play("Goodbye."), Hangup("flow")]
    assert sum(len(actions) for actions in first) == 28


def test_handle_does_not_mutate_the_state(shop):
    state, _ = run(shop, CallStarted())
    snapshot = (state.step, state.path, state.no_input_count, state.last_prompts)
    shop.handle(state, NoInput())
    shop.handle(state, Digits("1"))
    assert (state.step, state.path, state.no_input_count, state.last_prompts) == snapshot
