"""Sentiment per caller turn: the scorer (en, zh), and flows that take an angry caller to an agent."""

import asyncio
import textwrap

import pytest

from ivr import sentiment
from ivr.events import CallStarted, Heard, Listen, Transfer
from ivr.flow.http_fake import FakeResponses
from ivr.flow.interpreter import CallState, Interpreter
from ivr.flow.loader import FlowError, load_flow
from ivr.flow.textcall import TextCall


@pytest.mark.parametrize(("text", "expected"), [
    ("i have been on hold for an hour this is ridiculous", "negative"),
    ("i am not happy at all", "negative"),                      # negation
    ("oh great the line dropped again", "negative"),            # sarcasm
    ("I'd like to check my order status", "neutral"),
    ("thank you so much that was really helpful", "positive"),
    ("你们的服务太差了我要投诉", "negative"),
    ("我不满意", "negative"),                                     # negation
    ("我想查一下订单", "neutral"),
    ("太感谢了问题解决了", "positive"),
])
def test_labels(text, expected):
    value = sentiment.score(text)
    assert -1.0 <= value <= 1.0
    assert sentiment.label(value, sentiment.language_of(text)) == expected


@pytest.mark.parametrize("text", ["", "   ", "...", "？"])
def test_nothing_to_judge(text):
    assert sentiment.score(text) is None
    assert sentiment.label(None) == "neutral"


def test_language_from_call_or_text():
    assert sentiment.language_of("hello") == "en"
    assert sentiment.language_of("你好") == "zh"
    assert sentiment.language_of("ok", "zh-CN") == "zh"
    assert sentiment.language_of("你好", "en-US") == "en"


FLOW = """
name: angry
agent_line: sip:agents@127.0.0.1
watch:
  - {if: "sentiment.negative_turns >= 2", goto: to_agent}
steps:
  main:
    ask: "Say track or hours."
    choices:
      track: {say: "track [my] order", goto: track}
      hours: {say: "[opening] hours", goto: main}
    max_attempts: 5
    on_fail: to_agent
  track:
    say: "It ships Friday ({{ sentiment.label }}, {{ sentiment.negative_turns }} upset)."
    next: main
  to_agent:
    say: "Sorry about that. Let me get you a person."
    transfer: {to: "{{ agent_line }}", reason: upset caller}
"""


@pytest.fixture
def flow(tmp_path):
    path = tmp_path / "angry.yaml"
    path.write_text(textwrap.dedent(FLOW))
    return load_flow(path)


def run(interp, events):
    state, out = CallState(), []
    for event in events:
        state, actions = interp.handle(state, event)
        out.append(actions)
    return state, out


def test_two_angry_turns_reach_the_agent(flow):
    angry = [Heard("this is ridiculous", sentiment=-0.6), Heard("i'm furious", sentiment=-0.8)]
    state, out = run(Interpreter(flow), [CallStarted(), *angry])
    assert isinstance(out[1][-1], Listen)          # one angry turn: still in the menu (a no-match)
    transfer = out[2][-1]
    assert isinstance(transfer, Transfer) and transfer.reason == "upset caller"
    assert transfer.context["last_heard"] == "i'm furious"
    assert state.sentiment == {"last": -0.8, "label": "negative", "turns": 2, "negative_turns": 2}


def test_calm_or_unscored_turns_do_not(flow):
    events = [CallStarted(), Heard("blah", sentiment=-0.6), Heard("umm", sentiment=0.0), Heard("what"),
              Heard("track my order", sentiment=0.05)]
    state, out = run(Interpreter(flow), events)
    assert not any(isinstance(a, Transfer) for actions in out for a in actions)
    assert "It ships Friday (neutral, 1 upset)." in [a.text for a in out[-1] if hasattr(a, "text")]
    assert state.sentiment["turns"] == 3 and state.sentiment["negative_turns"] == 1


def test_conversation_scores_what_the_caller_says(flow):
    """The text driver scores each utterance itself, as the live call loop does."""
    async def talk():
        call = TextCall(flow, FakeResponses({}))
        await call.start()
        first = await call.say("this is ridiculous i have been on hold for an hour")
        second = await call.say("you people are useless")
        await call.close()
        return first, second
    first, second = asyncio.run(talk())
    assert first.end is None
    assert isinstance(second.end, Transfer) and second.end.target == "sip:agents@127.0.0.1"
    assert second.said == ["Sorry about that. Let me get you a person."]


def test_conversation_in_mandarin(tmp_path):
    path = tmp_path / "zh.yaml"
    path.write_text(textwrap.dedent(FLOW).replace("name: angry", "name: angry\nlanguage: zh-CN")
                    .replace('"track [my] order"', "查订单").replace('"[opening] hours"', "营业时间"))

    async def talk():
        call = TextCall(load_flow(path), FakeResponses({}))
        await call.start()
        replies = [await call.say(t) for t in ("我等了一个小时了太离谱了", "你们的服务太差了")]
        await call.close()
        return replies
    first, second = asyncio.run(talk())
    assert first.end is None and isinstance(second.end, Transfer)


@pytest.mark.parametrize(("watch", "message"), [
    ('[{if: "sentiment.negative_turns >= 2", goto: to_agnt}]', "unknown step 'to_agnt'"),
    ("[{goto: to_agent}]", "needs if: CONDITION and goto: STEP"),
    ("to_agent", "'watch' must be a list"),
])
def test_bad_watch_is_a_load_error(tmp_path, watch, message):
    path = tmp_path / "bad.yaml"
    text = textwrap.dedent(FLOW)
    path.write_text(text.replace(text[text.index("watch:"):text.index("steps:")], f"watch: {watch}\n"))
    with pytest.raises(FlowError) as err:
        load_flow(path)
    assert message in str(err.value) and "bad.yaml:" in str(err.value)


@pytest.mark.slow
def test_live_call_loop_scores_turns_and_transfers(flow, whisper_asr, prompt_cache, line_audio):
    """Real audio through VAD and whisper: each speech turn carries its score in the trace, and two
    angry utterances take the caller to the agent."""
    from ivr.replay import replay_samples

    audio = line_audio([("pause", 3500), ("say", "This is ridiculous, I have been on hold for an hour."),
                        ("pause", 3500), ("say", "You people are useless."), ("pause", 4000)])
    result = asyncio.run(replay_samples(audio, flow, whisper_asr, prompt_cache, None, call_id="angry"))
    trace = result.trace.to_dict()
    speech = [t for t in trace["turns"] if t["kind"] == "speech"]
    assert len(speech) == 2 and all(t["sentiment"] is not None and t["sentiment"] < 0 for t in speech)
    assert trace["outcome"]["kind"] == "transfer" and trace["outcome"]["target"] == "sip:agents@127.0.0.1"


def test_validate_warns_about_a_misspelt_sentiment_field(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text(textwrap.dedent(FLOW).replace("sentiment.negative_turns >= 2", "sentiment.negatve_turns >= 2"))
    warnings = load_flow(path).warnings
    assert any("sentiment.negatve_turns" in w and "did you mean 'sentiment.negative_turns'" in w for w in warnings)


def test_sentiment_is_a_reserved_variable_name(tmp_path):
    path = tmp_path / "var.yaml"
    path.write_text(textwrap.dedent(FLOW).replace("watch:", "vars: {sentiment: 1}\nwatch:"))
    with pytest.raises(FlowError, match="sentiment"):
        load_flow(path)
