"""The whole pipeline on real audio: caller speech synthesized with piper through an 8 kHz
mu-law line, replayed through VAD, DTMF, whisper tiny.en, the demo flow and piper prompts."""

import asyncio

import numpy as np
import pytest

from ivr.call import CallConfig
from ivr.flow.loader import load_flow
from ivr.replay import replay_samples
from ivr.trace import deterministic_view
from tests.conftest import espeak_korean

pytestmark = pytest.mark.slow

# Greeting + menu prompt last about 6.5 s; the caller answers after them.
DEMO_CALLER = [
    ("pause", 7500), ("say", "Where is my order?"),
    ("pause", 6500), ("say", "main menu"),
    ("pause", 2000), ("say", "opening hours"),          # over the menu prompt: barge-in
    ("pause", 5000), ("keys", "0"),                     # the agent key, over a prompt
    ("pause", 3000),
]


def replay(audio, flow, asr, prompts, config=None):
    return asyncio.run(replay_samples(audio, flow, asr, prompts, config, call_id="test"))


@pytest.fixture(scope="module")
def demo_result(demo_flow, whisper_asr, prompt_cache, line_audio):
    return replay(line_audio(DEMO_CALLER), demo_flow, whisper_asr, prompt_cache)


def test_demo_call_turns(demo_result):
    trace = demo_result.trace.to_dict()
    turns = trace["turns"]
    assert [t["kind"] for t in turns] == ["start", "speech", "speech", "speech", "dtmf"]
    assert turns[0]["said"] == ["Thanks for calling ACME.",
                                "You can say track an order, opening hours, or agent. Or press 1, 2 or 0."]
    heard = [(t["step"], t["match"]["choice"], t["next_step"]) for t in turns[1:]]
    assert heard == [("main", "track", "anything_else"), ("anything_else", "menu", "main"),
                     ("main", "hours", "anything_else"), ("anything_else", "agent", None)]
    assert turns[1]["heard"].lower().startswith("where is my order")
    assert turns[1]["said"][0] == "Your order shipped yesterday and arrives on Friday."
    assert [t["barge_in"] for t in turns[1:]] == [False, False, True, True]
    assert turns[4]["heard"] == "0" and turns[4]["match"]["via"] == "global"
    # every speech turn keeps the top 3 answers the matcher weighed, best first (docs/replay.md)
    first = turns[1]["candidates"]
    assert 1 <= len(first) <= 3 and first[0]["choice"] == "track" and first[0]["signal"] in ("words", "meaning")


def test_demo_call_outcome_and_path(demo_result):
    trace = demo_result.trace.to_dict()
    assert trace["outcome"]["kind"] == "transfer"
    assert trace["outcome"]["target"] == "sip:agents@127.0.0.1:5080"
    assert trace["outcome"]["context"]["intent"] == "agent"
    assert trace["path"] == ["greet", "main", "track", "anything_else", "main", "hours", "anything_else",
                             "to_agent"]
    assert demo_result.transport.events[-1][1:] == ("transfer", "sip:agents@127.0.0.1:5080")
    assert any(kind == "clear" for _, kind, _ in demo_result.transport.events)   # barge-in cleared


def test_turn_timing(demo_result):
    for t in demo_result.trace.to_dict()["turns"][1:]:
        assert t["t_speech_end_ms"] <= t["t_endpoint_ms"] <= t["t_reply_ms"]
        assert t["t_reply_ms"] - t["t_endpoint_ms"] <= 20          # the reply starts on the next frame
        assert t["latency_ms"] >= t["timing"]["endpoint_silence_ms"]
        if t["kind"] == "speech":
            assert t["endpoint"] == "early_match"                 # the answers matched: no 600 ms wait
            assert t["timing"]["endpoint_silence_ms"] == 200
            assert t["timing"]["asr_ms"] > 0


def test_stereo_recording(demo_result, tmp_path):
    import soundfile as sf

    path = tmp_path / "call.wav"
    demo_result.write_stereo(path)
    audio, rate = sf.read(path, dtype="int16")
    assert rate == 16000 and audio.ndim == 2 and audio.shape[1] == 2
    caller, machine = audio[:, 0].astype(float), audio[:, 1].astype(float)
    reply_ms = demo_result.trace.turns[1].t_reply_ms
    at = reply_ms * 16
    assert np.abs(machine[at : at + 8000]).mean() > 200           # the reply plays after the turn
    assert np.abs(machine[:16000]).mean() > 200                   # the greeting at the start
    assert np.abs(caller[:16000]).mean() < 50                     # the caller is quiet then


def test_replay_is_deterministic(demo_result, demo_flow, whisper_asr, prompt_cache, line_audio):
    again = replay(line_audio(DEMO_CALLER), demo_flow, whisper_asr, prompt_cache)
    assert deterministic_view(again.trace.to_dict()) == deterministic_view(demo_result.trace.to_dict())
    assert np.array_equal(again.transport.stereo()[1], demo_result.transport.stereo()[1])


def test_silent_caller_escalates_to_agent(demo_flow, whisper_asr, prompt_cache, line_audio):
    result = replay(line_audio([("pause", 40_000)]), demo_flow, whisper_asr, prompt_cache)
    trace = result.trace.to_dict()
    no_inputs = [t for t in trace["turns"] if t["kind"] == "no_input"]
    assert len(no_inputs) == 3
    assert no_inputs[0]["said"][0] == "Sorry, I didn't hear you."
    assert no_inputs[1]["said"][0] == "Please say track an order, or press 1."
    assert trace["outcome"]["kind"] == "transfer" and trace["path"][-1] == "to_agent"
    # Each no-input fires 5 s after the re-prompt before it has finished playing.
    assert no_inputs[1]["t_endpoint_ms"] - no_inputs[0]["t_endpoint_ms"] > 5000


def test_caller_hangs_up_while_listening(demo_flow, whisper_asr, prompt_cache, line_audio):
    result = replay(line_audio([("pause", 3000)]), demo_flow, whisper_asr, prompt_cache)
    trace = result.trace.to_dict()
    assert trace["outcome"]["kind"] == "caller_hangup"
    assert trace["outcome"]["step"] == "main"        # the prompts finished before the hang-up


def test_speech_over_a_prompt_without_barge_in_is_ignored(demo_flow, whisper_asr, prompt_cache, line_audio):
    # "agent" during the greeting (barge_in: false) is not heard; the call goes on to the menu.
    result = replay(line_audio([("pause", 300), ("say", "agent"), ("pause", 12_000)]),
                    demo_flow, whisper_asr, prompt_cache)
    turns = result.trace.to_dict()["turns"]
    assert not [t for t in turns if t["kind"] == "speech"]
    assert turns[1]["kind"] == "no_input" and turns[1]["step"] == "main"


def test_no_match_then_recovery(demo_flow, whisper_asr, prompt_cache, line_audio):
    caller = [("pause", 7500), ("say", "the weather is lovely today"), ("pause", 4000),
              ("say", "opening hours"), ("pause", 6000)]
    trace = replay(line_audio(caller), demo_flow, whisper_asr, prompt_cache).trace.to_dict()
    speech = [t for t in trace["turns"] if t["kind"] == "speech"]
    assert speech[0]["match"] is None and speech[0]["endpoint"] == "silence"   # waited the full 600 ms
    assert speech[0]["said"][0] == "Sorry, I didn't catch that."
    assert speech[1]["match"]["choice"] == "hours"


def test_without_early_endpoint_turns_wait_the_full_silence(demo_flow, whisper_asr, prompt_cache, line_audio):
    config = CallConfig(early_endpoint=False)
    trace = replay(line_audio(DEMO_CALLER[:3]), demo_flow, whisper_asr, prompt_cache, config).trace.to_dict()
    turn = trace["turns"][1]
    assert turn["endpoint"] == "silence" and turn["timing"]["endpoint_silence_ms"] == 600


REWORDED = [("pause", 7500), ("say", "my parcel never arrived"), ("pause", 5000)]


def test_words_taken_at_once_by_meaning_end_the_turn_early(demo_flow, whisper_asr, prompt_cache, line_audio):
    """No expected phrase in the words, but the flow takes them at once by meaning: no 600 ms wait."""
    trace = replay(line_audio(REWORDED), demo_flow, whisper_asr, prompt_cache).trace.to_dict()
    turn = trace["turns"][1]
    assert turn["match"]["choice"] == "track" and turn["candidates"][0]["signal"] == "meaning"
    assert turn["endpoint"] == "early_match" and turn["timing"]["endpoint_silence_ms"] == 200
    assert turn["said"][0] == "Your order shipped yesterday and arrives on Friday."


def test_early_end_by_meaning_can_be_turned_off(demo_flow, whisper_asr, prompt_cache, line_audio):
    config = CallConfig(early_meaning=False)
    trace = replay(line_audio(REWORDED), demo_flow, whisper_asr, prompt_cache, config).trace.to_dict()
    turn = trace["turns"][1]
    assert turn["match"]["choice"] == "track"
    assert turn["endpoint"] == "silence" and turn["timing"]["endpoint_silence_ms"] == 600


def test_asr_failure_goes_to_the_agent_line(demo_flow, whisper_asr, prompt_cache, line_audio):
    class BrokenSession:
        def feed(self, pcm):
            return None

        def peek(self):
            raise RuntimeError("decoder crashed")

        finish = peek

    class BrokenAsr:
        name, language, streams_partials = "broken", "en", False

        def session(self, phrases=()):
            return BrokenSession()

    trace = replay(line_audio(DEMO_CALLER[:3]), demo_flow, BrokenAsr(), prompt_cache).trace.to_dict()
    assert trace["outcome"]["kind"] == "transfer"
    assert trace["outcome"]["reason"].startswith("engine failure: asr")


KOREAN_FLOW = """
name: ko-demo
language: ko-KR
agent_line: sip:agents@127.0.0.1:5080
start: main
steps:
  main:
    ask: "Say agent or order."
    barge_in: false
    choices:
      agent: {say: ["상담원 [연결]"], dtmf: "0", goto: agent}
      order: {say: ["주문 조회", "배송 조회"], dtmf: "1", goto: order}
  agent: {transfer: "sip:agents@127.0.0.1:5080"}
  order: {say: "Your order is on its way.", hangup: true}
"""


def test_vosk_replay_with_grammar_and_partials(vosk_ko, prompt_cache, tmp_path):
    path = tmp_path / "ko.yaml"
    path.write_text(KOREAN_FLOW, encoding="utf-8")
    flow = load_flow(path)
    silence = np.zeros(16000 * 4, np.int16)
    audio = np.concatenate([silence, espeak_korean("주문 조회"), np.zeros(16000 * 4, np.int16)])
    trace = replay(audio, flow, vosk_ko, prompt_cache).trace.to_dict()
    turn = trace["turns"][1]
    assert turn["heard"] == "주문 조회" and turn["match"]["choice"] == "order"
    assert turn["endpoint"] == "early_match"       # the streamed partial already matched
    assert trace["outcome"]["kind"] == "hangup" and trace["path"] == ["main", "order"]
