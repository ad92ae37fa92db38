"""Loading YAML flows: the demo loads, and every mistake is named at file:line:col with a hint."""

import textwrap
from pathlib import Path

import pytest

from ivr.errors import UserError
from ivr.flow.loader import FlowError, load_flow, parse_duration_ms
from ivr.flow.model import DEFAULT_MAX_ATTEMPTS, DEFAULT_NO_INPUT_MS, Choice, Prompt

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "flows" / "demo.yaml"


def write(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    """The loader's problems, each without the leading '<path>:'."""
    with pytest.raises(FlowError) as info:
        load_flow(path)
    prefix = f"{path}:"
    assert all(p.startswith(prefix) for p in info.value.problems), info.value.problems
    return [p.removeprefix(prefix) for p in info.value.problems]


# ---- the demo flow ------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo():
    return load_flow(DEMO)


def test_demo_header(demo):
    assert demo.name == "acme-demo"
    assert demo.language == "en-US"
    assert demo.voice == "piper"
    assert demo.agent_line == "sip:agents@127.0.0.1:5080"
    assert demo.start == "greet"
    assert demo.path == str(DEMO)


def test_demo_steps(demo):
    assert list(demo.steps) == ["greet", "main", "track", "hours", "anything_else", "to_agent", "bye"]
    greet, main = demo.steps["greet"], demo.steps["main"]
    assert greet.say == (Prompt("Thanks for calling ACME.", None, barge_in=False),)
    assert [r.goto for r in greet.next] == ["main"] and not greet.listens
    assert main.listens
    assert main.ask == Prompt("You can say track an order, opening hours, or agent. Or press 1, 2 or 0.")
    assert main.no_input == ("Sorry, I didn't hear you.", "Please say track an order, or press 1.")
    assert main.no_match == ("Sorry, I didn't catch that.", "You can also press 0 for an agent.")
    assert (main.max_attempts, main.on_fail, main.no_input_ms) == (3, "to_agent", 5000)
    assert demo.steps["anything_else"].max_attempts == 2
    assert demo.steps["to_agent"].transfer.to == "{{ agent_line }}"
    assert demo.steps["to_agent"].transfer.reason == "caller asked for an agent"
    assert demo.steps["bye"].hangup is True
    assert main.line == 20           # where the step's mapping starts, for traces


def test_demo_choices_and_dtmf(demo):
    main = demo.steps["main"]
    assert [(c.name, c.dtmf, c.goto) for c in main.choices] == [("track", "1", "track"), ("hours", "2", "hours")]
    assert main.choices[0].intent.phrases == (
        "track order", "track my order", "where is my order", "where is my package", "where is my parcel",
        "order status",
    )
    assert demo.steps["anything_else"].choices[0].dtmf == "9"


def test_demo_globals(demo):
    assert [(g.name, g.dtmf, g.goto, g.action) for g in demo.globals] == [
        ("agent", "0", "to_agent", None),
        ("repeat", "*", None, "repeat"),
        ("goodbye", "", "bye", None),
    ]
    assert demo.globals[1] == Choice(
        "repeat", demo.globals[1].intent, "*", None, "repeat", "repeat", 9)
    assert demo.globals[1].intent.phrases == ("repeat", "repeat that", "say that again", "say it again")
    assert demo.globals[2].intent.phrases == ("goodbye", "bye", "thats all", "no thanks")


def test_demo_prompts(demo):
    assert demo.prompts() == [
        "Thanks for calling ACME.",
        "You can say track an order, opening hours, or agent. Or press 1, 2 or 0.",
        "Sorry, I didn't hear you.",
        "Please say track an order, or press 1.",
        "Sorry, I didn't catch that.",
        "You can also press 0 for an agent.",
        "Your order shipped yesterday and arrives on Friday.",
        "We are open Monday to Friday, nine to six.",
        "Is there anything else? Say main menu, or goodbye.",
        "Are you still there? Say main menu or goodbye.",
        "Connecting you to an agent.",
        "Thanks for calling. Goodbye.",
    ]


# ---- a minimal valid flow and its defaults ------------------------------------------


def test_minimal_flow_defaults(tmp_path):
    path = write(tmp_path, """
        steps:
          hello:
            say: Hi.
            hangup: true
    """, name="tiny.yaml")
    flow = load_flow(path)
    assert (flow.name, flow.language, flow.start, flow.voice, flow.agent_line) == ("tiny", "en-US", "hello", None, None)
    step = flow.steps["hello"]
    assert (step.max_attempts, step.no_input_ms) == (DEFAULT_MAX_ATTEMPTS, DEFAULT_NO_INPUT_MS)
    assert step.say == (Prompt("Hi."),)
    assert flow.globals == ()


def test_lists_of_prompts_and_recorded_audio(tmp_path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "hello.wav").write_bytes(b"RIFF")
    path = write(tmp_path, """
        voice: {engine: espeak, name: cmn}
        language: zh-CN
        steps:
          hello:
            say: ["您好。", "欢迎致电。"]
            audio: prompts/hello.wav
            ask: ["请问有什么可以帮您？", "请说查订单。"]
            barge_in: false
            choices:
              track: {say: "查(订单|快递)", dtmf: 1, goto: bye}
          bye: {say: 再见。, hangup: true}
    """)
    flow = load_flow(path)
    hello = flow.steps["hello"]
    wav = str((tmp_path / "prompts" / "hello.wav").resolve())
    assert hello.say == (Prompt("您好。", wav, False), Prompt("欢迎致电。", None, False))
    assert hello.ask == Prompt("请问有什么可以帮您？ 请说查订单。", None, False)
    assert hello.choices[0].intent.phrases == ("查订单", "查快递")
    assert hello.choices[0].dtmf == "1"           # a bare number is a key
    assert flow.voice == "espeak:cmn"
    # recorded prompts need no synthesis
    assert flow.prompts() == ["欢迎致电。", "请问有什么可以帮您？ 请说查订单。", "再见。"]


def test_yes_and_no_are_words(tmp_path):
    # YAML 1.1 would read these as booleans: a choice 'False' matched by "false", never by "no"
    path = write(tmp_path, """
        steps:
          confirm:
            ask: Is that right?
            choices:
              yes: {say: [yes, yes please], dtmf: 1, goto: done}
              no: {say: [no, nope], dtmf: 2, goto: off}
          done: {say: Great., hangup: true}
          off: {say: [No problem., "On it."], hangup: true}
    """)
    flow = load_flow(path)
    assert [(c.name, c.intent.phrases, c.goto) for c in flow.steps["confirm"].choices] == [
        ("yes", ("yes", "yes please"), "done"),
        ("no", ("no", "nope"), "off"),
    ]
    assert list(flow.steps) == ["confirm", "done", "off"]
    assert flow.steps["done"].hangup is True


@pytest.mark.parametrize(
    ("value", "ms"),
    [("5s", 5000), ("500ms", 500), ("1.5s", 1500), (" 2 s ", 2000), ("250 ms", 250), ("1m", 60_000)],
)
def test_durations(tmp_path, value, ms):
    path = write(tmp_path, f"""
        steps:
          a:
            ask: Yes or no?
            no_input_timeout: {value!r}
            choices:
              yes: {{say: yes, goto: a}}
    """)
    assert load_flow(path).steps["a"].no_input_ms == ms


@pytest.mark.parametrize(
    ("value", "ms"),
    [("5s", 5000), ("500ms", 500), ("0.5s", 500), ("2m", 120_000), ("10min", 600_000), ("1h", 3_600_000), (0, 0)],
)
def test_parse_duration_ms(value, ms):
    assert parse_duration_ms(value) == ms


@pytest.mark.parametrize(("value", "says"), [
    (5, "write 5s for seconds or 5ms"), ("5", "write 5s for seconds"), ("5 days", "is not a duration"),
    ("fast", "is not a duration"), (True, "is not a duration"), (None, "is not a duration"), (-1, "not a duration"),
])
def test_parse_duration_ms_refuses(value, says):
    with pytest.raises(ValueError, match=says):
        parse_duration_ms(value)


def test_bare_number_durations_are_refused_with_a_hint(tmp_path):
    """`timeout: 2` used to be read as 2 ms (every HTTP call timed out): now it must say 2s or 2000ms."""
    path = write(tmp_path, """
        steps:
          a:
            ask: Order?
            no_input_timeout: 5
            collect: {slot: order, type: digits, inter_digit_timeout: 3}
            next: b
          b:
            http: {get: "http://127.0.0.1:9/x", timeout: 2}
            next: c
          c: {hangup: true}
    """)
    assert problems(path) == [
        "4:5: 'no_input_timeout': the duration 5 has no unit (hint: write 5s for seconds or 5ms for milliseconds)",
        "5:42: 'inter_digit_timeout': the duration 3 has no unit (hint: write 3s for seconds or 3ms for "
        "milliseconds)",
        "8:41: 'timeout': the duration 2 has no unit (hint: write 2s for seconds or 2ms for milliseconds)",
    ]


def test_numeric_step_names_and_agent_line(tmp_path):
    path = write(tmp_path, """
        agent_line: 100
        start: 1
        steps:
          1: {say: Hi., next: 2}
          2: {say: Transferring., transfer: "{{ agent_line }}"}
    """)
    flow = load_flow(path)
    assert flow.agent_line == "100"
    assert flow.start == "1" and [r.goto for r in flow.steps["1"].next] == ["2"]


# ---- errors: one per file, exact place and message ----------------------------------

ERRORS = [
    pytest.param(
        """
        steps:
          a:
            say: "unclosed
            hangup: true
        """,
        ["5:1: YAML does not parse: found unexpected end of stream "
         "(hint: check indentation and quote text containing ':' or '#')"],
        id="yaml-syntax",
    ),
    pytest.param(
        """
        steps:
          a:
            say: hi
           hangup: true
        """,
        ["4:4: YAML does not parse: expected <block end>, but found '<block mapping start>' "
         "(hint: check indentation and quote text containing ':' or '#')"],
        id="yaml-indentation",
    ),
    pytest.param(
        """
        name: x
        stpes:
          a: {say: hi, hangup: true}
        """,
        ["2:1: unknown key 'stpes' in the flow (hint: did you mean 'steps'?)",
         "1:1: the flow has no steps (hint: add a 'steps:' mapping of step names to steps)"],
        id="unknown-top-key",
    ),
    pytest.param(
        """
        langauge: en-US
        steps:
          a: {say: hi, hangup: true}
        """,
        ["1:1: unknown key 'langauge' in the flow (hint: did you mean 'language'?)"],
        id="unknown-top-key-hint",
    ),
    pytest.param(
        """
        colour: blue
        steps:
          a: {say: hi, hangup: true}
        """,
        ["1:1: unknown key 'colour' in the flow "
         "(hint: allowed: agent_line, caller_lookup, globals, hours, knowledge, language, languages, name, nlu, on_error, start, steps, subflows, vars, voice, watch)"],  # noqa: E501
        id="unknown-top-key-no-hint",
    ),
    pytest.param(
        """
        steps:
          a:
            sya: hi
            hangup: true
        """,
        ["3:5: unknown key 'sya' in step 'a' (hint: did you mean 'say'?)"],
        id="unknown-step-key",
    ),
    pytest.param(
        """
        steps:
          a:
            ask: Track or hours?
            choices:
              track: {say: track, goto: trak}
              hours: {say: hours, goto: a}
          track: {say: Shipped., hangup: true}
        """,
        ["5:27: unknown step 'trak' (hint: did you mean 'track'?)"],
        id="unknown-choice-goto",
    ),
    pytest.param(
        """
        steps:
          a: {say: hi, next: mian}
          main: {say: bye, hangup: true}
        """,
        ["2:16: unknown step 'mian' (hint: did you mean 'main'?)"],
        id="unknown-next",
    ),
    pytest.param(
        """
        steps:
          a:
            say: hi
            goto: elsewhere
          b: {say: bye, hangup: true}
        """,
        ["4:5: unknown step 'elsewhere' (hint: steps: a, b)"],
        id="unknown-step-goto-alias",
    ),
    pytest.param(
        """
        steps:
          a:
            ask: Yes?
            on_fail: nowhere
            choices:
              yes: {say: yes, goto: a}
        """,
        ["4:5: unknown step 'nowhere' (hint: steps: a)"],
        id="unknown-on-fail",
    ),
    pytest.param(
        """
        globals:
          agent: {say: agent, goto: agnet}
        steps:
          agent: {say: Connecting., transfer: "sip:agents@pbx"}
        """,
        ["2:23: unknown step 'agnet' (hint: did you mean 'agent'?)"],
        id="unknown-global-goto",
    ),
    pytest.param(
        """
        start: mian
        steps:
          main: {say: bye, hangup: true}
        """,
        ["1:1: unknown step 'mian' (hint: did you mean 'main'?)"],
        id="bad-start",
    ),
    pytest.param(
        """
        steps:
          a: {say: hi, next: {b: 1}}
          b: {say: bye, hangup: true}
        """,
        ["2:16: 'next' must be a step name or a list of {if: CONDITION, goto: STEP}"],
        id="goto-not-a-name",
    ),
    pytest.param(
        """
        steps:
          a:
            ask: Track or hours?
            choices:
              track: {say: track, dtmf: "1", goto: a}
              hours: {say: hours, dtmf: "1", goto: a}
        """,
        ["4:5: key '1' is used by both 'track' and 'hours' in step 'a' (hint: give each answer its own key)"],
        id="duplicate-dtmf",
    ),
    pytest.param(
        """
        globals:
          agent: {say: agent, dtmf: "0", goto: a}
        steps:
          a:
            ask: Track?
            choices:
              track: {say: track, dtmf: "0", goto: a}
        """,
        ["6:5: key '0' is used by both 'track' and global 'agent' in step 'a' (hint: globals answer at every step: pick another key)"],  # noqa: E501
        id="dtmf-clash-with-global",
    ),
    pytest.param(
        """
        globals:
          agent: {say: agent, dtmf: "0", goto: a}
          help: {say: help, dtmf: "0", goto: a}
        steps:
          a:
            ask: Track?
            choices:
              track: {say: track, goto: a}
          b: {say: hi, next: a}
        """,
        ["2:3: key '0' is used by both 'agent' and 'help' in globals (hint: give each answer its own key)"],     # once, not once per step  # noqa: E501
        id="duplicate-dtmf-in-globals",
    ),
    pytest.param(
        """
        steps:
          a:
            ask: Track?
            choices:
              track: {say: "(track|trace order", goto: a}
        """,
        ["5:15: bad sentence template: missing ')' in '(track|trace order' "
         "(hint: use (a|b) for choices and [x] for optional words)",
         "5:14: choice 'track' in step 'a' has neither 'say' nor 'dtmf'"],
        id="bad-template",
    ),
    pytest.param(
        """
        steps:
          a:
            ask: Track?
            choices:
              track: {say: [track, "order]"], goto: a}
        """,
        ["5:15: bad sentence template: unexpected ']' at column 6 in 'order]' "
         "(hint: use (a|b) for choices and [x] for optional words)"],
        id="bad-template-in-list",
    ),
    pytest.param(
        """
        steps:
          a:
            ask: Track?
            choices:
              track: {say: track, dtmf: "x", goto: a}
        """,
        ["5:27: 'x' is not a keypad key (hint: use 0-9, * or #, quoted: \"1\")"],
        id="non-keypad-dtmf",
    ),
    pytest.param(
        """
        steps:
          a:
            say: hi
        """,
        ["3:5: step 'a' does not say where the call goes next (hint: add ask, next, transfer, hangup or return)"],
        id="no-way-forward",
    ),
    pytest.param(
        """
        steps:
          a:
            say: Bye.
            transfer: "sip:agents@pbx"
            hangup: true
        """,
        ["5:5: step 'a' has both 'transfer' and 'hangup' "
         "(hint: a step either listens, calls a service, runs a subflow, transfers, queues or hangs up)"],
        id="transfer-and-hangup",
    ),
    pytest.param(
        """
        steps:
          a:
            say: Pick one.
            choices:
              track: {say: track, goto: b}
            next: b
          b: {say: bye, hangup: true}
        """,
        ["4:5: step 'a' has 'choices' but no 'ask' prompt (hint: add ask: \"...\" saying what the caller can answer)"],
        id="choices-without-ask",
    ),
    pytest.param(
        """
        steps:
          a:
            say: Hi.
            barge_in: sometimes
            hangup: true
        """,
        ["4:5: 'barge_in' must be true or false"],
        id="bad-barge-in",
    ),
    pytest.param(
        """
        steps:
          a:
            say: Hi.
            barge_in: no
            hangup: true
        """,
        ["4:5: 'barge_in' must be true or false"],       # yes/no are words, not YAML 1.1 booleans
        id="barge-in-no",
    ),
    pytest.param(
        """
        steps:
          a:
            say: Bye.
            hangup: yes
        """,
        ["4:5: 'hangup' must be true or false"],
        id="hangup-yes",
    ),
    pytest.param(
        """
        steps:
          a:
            ask: Yes?
            no_input_timeout: soon
            choices:
              yes: {say: yes, goto: a}
        """,
        ["4:5: 'no_input_timeout': 'soon' is not a duration (hint: write e.g. 500ms, 2s, 1.5s, 1m or 1h)"],
        id="bad-no-input-timeout",
    ),
    pytest.param(
        """
        steps:
          a:
            ask: Yes?
            no_input_timeout: 0
            choices:
              yes: {say: yes, goto: a}
        """,
        ["4:5: 'no_input_timeout' must be longer than 0 (hint: e.g. 2s)"],
        id="zero-no-input-timeout",
    ),
    pytest.param(
        """
        steps:
          a:
            ask: Yes?
            max_attempts: 0
            choices:
              yes: {say: yes, goto: a}
        """,
        ["4:5: 'max_attempts' must be a whole number >= 1"],
        id="bad-max-attempts",
    ),
    pytest.param(
        """
        steps:
          a:
            ask: Yes?
            max_attempts: "3"
            choices:
              yes: {say: yes, goto: a}
        """,
        ["4:5: 'max_attempts' must be a whole number >= 1"],
        id="max-attempts-as-text",
    ),
    pytest.param(
        """
        steps:
          a:
            ask: Yes?
            choices: [yes, no]
        """,
        ["4:5: choices of step 'a' must be a mapping of name to choice"],
        id="choices-not-a-mapping",
    ),
    pytest.param(
        """
        steps:
          a:
            ask: Yes?
            choices:
              yes: {say: yes}
        """,
        ["5:12: choice 'yes' in step 'a' has no 'goto' (hint: add goto: STEP)"],
        id="choice-without-goto",
    ),
    pytest.param(
        """
        globals:
          again: {say: again, action: rewind}
        steps:
          a: {say: hi, hangup: true}
        """,
        ["2:23: unknown action 'rewind' (hint: global choices may use action: repeat or action: hangup)"],
        id="unknown-action",
    ),
    pytest.param(
        """
        steps:
          a:
            say: hi
            transfer: {to: "sip:agents@pbx", why: busy}
        """,
        ["4:38: unknown key 'why' in transfer (hint: allowed: context, reason, to)"],
        id="unknown-transfer-key",
    ),
    pytest.param(
        "",
        ["1:1: a flow file must be a mapping with 'steps' and 'start'"],
        id="empty-file",
    ),
    pytest.param(
        """
        steps:
          - a
        """,
        ["1:1: the flow has no steps (hint: add a 'steps:' mapping of step names to steps)"],
        id="steps-not-a-mapping",
    ),
]


@pytest.mark.parametrize(("text", "expected"), ERRORS)
def test_flow_errors(tmp_path, text, expected):
    assert problems(write(tmp_path, text)) == expected


def test_missing_recorded_prompt(tmp_path):
    path = write(tmp_path, """
        steps:
          a:
            say: Hello.
            audio: prompts/missing.wav
            hangup: true
    """)
    missing = (tmp_path / "prompts" / "missing.wav").resolve()
    assert problems(path) == [
        f"4:5: recorded prompt not found: {missing} (hint: paths are relative to the flow file)"]


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("steps:\n  a:\n    say: \"Café crème\"\n    hangup: true\n".encode("latin-1"))
    assert problems(path) == ["3:14: not UTF-8 text (invalid continuation byte); save the file as UTF-8"]


def test_control_character(tmp_path):
    path = tmp_path / "bell.yaml"
    path.write_text("steps:\n  a:\n    say: \"hi\a\"\n    hangup: true\n", encoding="utf-8")
    assert problems(path) == ["3:13: YAML does not allow the control character #x0007 (hint: delete it)"]


def test_file_not_found(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(UserError) as info:
        load_flow(missing)
    assert not isinstance(info.value, FlowError)
    assert info.value.message == f"no such flow file: {missing}"
    assert info.value.hint.startswith("check the path")


def test_directory_is_not_a_flow(tmp_path):
    with pytest.raises(UserError, match="no such flow file"):
        load_flow(tmp_path)


def test_all_problems_reported_together(tmp_path):
    path = write(tmp_path, """
        name: many
        colour: blue
        start: mian
        globals:
          agent: {say: agent, dtmf: "0", goto: to_agent}
        steps:
          main:
            ask: Track or hours?
            max_attempts: zero
            barge_in: maybe
            choices:
              track: {say: "(track|trace", dtmf: "0", goto: trak}
              hours: {say: hours, dtmf: "x", goto: main}
          to_agent:
            say: Connecting.
            transfer: "{{ agent_line }}"
            hangup: true
    """)
    with pytest.raises(FlowError) as info:
        load_flow(path)
    found = [p.removeprefix(f"{path}:") for p in info.value.problems]
    assert found == [
        "2:1: unknown key 'colour' in the flow "
        "(hint: allowed: agent_line, caller_lookup, globals, hours, knowledge, language, languages, name, nlu, on_error, start, steps, subflows, vars, voice, watch)",  # noqa: E501
        "10:5: 'barge_in' must be true or false",
        "9:5: 'max_attempts' must be a whole number >= 1",
        "12:15: bad sentence template: missing ')' in '(track|trace' "
        "(hint: use (a|b) for choices and [x] for optional words)",
        "13:27: 'x' is not a keypad key (hint: use 0-9, * or #, quoted: \"1\")",
        "17:5: step 'to_agent' has both 'transfer' and 'hangup' "
        "(hint: a step either listens, calls a service, runs a subflow, transfers, queues or hangs up)",
        "3:1: unknown step 'mian' (hint: did you mean 'main'?)",
        "12:47: unknown step 'trak' (hint: steps: main, to_agent)",
        "11:5: key '0' is used by both 'track' and global 'agent' in step 'main' (hint: globals answer at every step: pick another key)",  # noqa: E501
    ]
    assert len(info.value.problems) == 9
    # the exception's text lists them all, for the CLI's one-shot report
    assert str(info.value).startswith("9 problems:\n")
    assert str(info.value).count(f"{path}:") == 9


def test_single_problem_message_is_the_problem(tmp_path):
    path = write(tmp_path, "steps:\n  a: {say: hi}\n")
    with pytest.raises(FlowError) as info:
        load_flow(path)
    assert str(info.value) == info.value.problems[0]
    assert isinstance(info.value, UserError)


def test_misspelt_goto_points_at_the_goto_and_suggests_the_step(tmp_path):
    path = write(tmp_path, """
        steps:
          main:
            ask: "Track or returns?"
            choices:
              track: {say: ["track"], goto: trak}
              returns:
                say: ["return"]
                goto: retuns
          track:
            next:
              - {if: "open", goto: main}
              - goto: bey
          returns: {say: hi, goto: byee}
          bye: {hangup: true}
    """)
    assert problems(path) == [
        "5:31: unknown step 'trak' (hint: did you mean 'track'?)",
        "8:9: unknown step 'retuns' (hint: did you mean 'returns'?)",
        "12:9: unknown step 'bey' (hint: did you mean 'bye'?)",
        "13:22: unknown step 'byee' (hint: did you mean 'bye'?)",
    ]


def test_regex_question_mark_in_a_sentence_template_is_refused(tmp_path):
    """`(my)? order` never matched what its author meant; a `?` ending a question is punctuation."""
    path = write(tmp_path, """
        steps:
          main:
            ask: "How can I help?"
            choices:
              track: {say: ["track (my)? order", "where is my order?"], goto: main}
              hours: {say: ["colou?r"], goto: main}
    """)
    assert problems(path) == [
        "5:15: bad sentence template: '?' at column 11 in 'track (my)? order': sentence templates are not regular "
        "expressions; write optional words in brackets, e.g. 'track [my] order' (hint: use (a|b) for choices and "
        "[x] for optional words)",
        "6:15: bad sentence template: '?' at column 6 in 'colou?r': sentence templates are not regular expressions; "
        "write optional words in brackets, e.g. 'track [my] order' (hint: use (a|b) for choices and [x] for "
        "optional words)",
        "6:14: choice 'hours' in step 'main' has neither 'say' nor 'dtmf'",
    ]


def test_conditions_naming_what_does_not_exist_are_warned_with_did_you_mean(tmp_path):
    """`slot.pin` for `slots.pin` used to be silently false; the flow still loads, validate warns."""
    path = write(tmp_path, """
        vars: {tries: 0}
        steps:
          main:
            ask: "PIN?"
            collect: {slot: pin, type: digits, length: 4}
            set: {more: "{{ tris + 1 }}"}
            next:
              - {if: "slot.pin", goto: ok}
              - {if: "slots.pn and open and caller.vip", goto: ok}
              - {if: "vars.trie > 2 or http.stauts == 404", goto: ok}
              - goto: ok
          ok: {hangup: true}
    """)
    flow = load_flow(path)
    prefix = f"{path}:"
    assert [w.removeprefix(prefix) for w in flow.warnings] == [
        "8:10: warning: condition 'slot.pin' names 'slot', which does not exist: it is always empty (false) "
        "(hint: did you mean 'slots'?)",
        "9:10: warning: condition 'slots.pn and open and caller.vip' reads slots.pn, but no step collects a slot "
        "'pn': it is always empty (false) (hint: did you mean 'slots.pin'?)",
        "10:10: warning: condition 'vars.trie > 2 or http.stauts == 404' reads vars.trie, but no variable 'trie': "
        "it is always empty (false) (hint: did you mean 'vars.tries'?)",
        "10:10: warning: condition 'vars.trie > 2 or http.stauts == 404' reads http.stauts, but there is no "
        "'stauts': it is always empty (false) (hint: did you mean 'http.status'?)",
        "6:5: warning: set value 'tris + 1' names 'tris', which does not exist: it is always empty (false) "
        "(hint: did you mean 'tries'?)",
    ]


def test_validate_prints_warnings(tmp_path, capsys):
    from ivr.cli_flow import cmd_validate

    path = write(tmp_path, """
        steps:
          main:
            next: [{if: "slot.pin", goto: bye}, {goto: bye}]
          bye: {hangup: true}
    """)
    assert cmd_validate(type("Args", (), {"flows": [str(path)]})) == 0
    out = capsys.readouterr().out
    assert f"{path}:3:13: warning: condition 'slot.pin' names 'slot'" in out and "did you mean 'slots'?" in out
