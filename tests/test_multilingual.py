"""One flow, several languages: `{en: ..., zh: ...}` maps, the `language:` step, and the call going
on in the chosen language (prompts, phrases, slots, FAQ, default texts, holiday names, voices)."""

import textwrap
from datetime import datetime
from pathlib import Path

import pytest

from ivr.call_output import CallOutput
from ivr.events import CallStarted, Digits, Heard, Listen, NoInput, Play
from ivr.flow.interpreter import CallState, Interpreter
from ivr.flow.languages import script_language
from ivr.flow.loader import FlowError, load_flow

ROOT = Path(__file__).resolve().parent.parent
OCT_1 = datetime.fromisoformat("2026-10-01T10:00:00+08:00").timestamp()   # National Day (CN), a Thursday
TUESDAY = datetime.fromisoformat("2026-11-24T10:00:00+08:00").timestamp()

FLOW = """
name: shop
languages: [en, cmn]
voice: {en: piper, zh: "espeak:cmn"}
knowledge: {en: faq_en.yaml, zh: faq_zh.yaml}
hours: {timezone: Asia/Shanghai, open: {mon-fri: "09:00-18:00"}, holidays: CN}
globals:
  agent: {say: {en: [agent], zh: [人工]}, dtmf: "0", goto: bye}
start: pick
steps:
  pick:
    language: [en-US, zh-CN]
    max_attempts: 2
    next: greet
  greet:
    say:
      en: "Welcome{% if holiday %}, happy {{ holiday }}{% endif %}."
      zh: "欢迎致电{% if holiday %}，今天是{{ holiday }}{% endif %}。"
    next: main
  main:
    ask: {en: "Say order, or press 1.", zh: "请说订单，或者按1。"}
    choices:
      order:
        say: {en: ["[my] order"], zh: ["订单", "查订单"]}
        not: {en: ["how can i pay"], zh: ["怎么付款"]}    # the FAQ answers these
        dtmf: "1"
        goto: number
        label: {en: "your order", zh: "订单"}
    faq: true
  number:
    ask: {en: "Your order number?", zh: "请说订单号。"}
    collect: {slot: order_id, type: digits, length: 6}
    confirm: {en: "That's {{ slots.order_id | digits }}?", zh: "订单号是{{ slots.order_id | digits }}，对吗？"}
    next: bye
  bye:
    say: {en: Goodbye., zh: 再见。}
    hangup: true
"""
FAQ_EN = "faqs:\n  - {id: pay, questions: ['how can i pay'], answer: 'We take cards.'}\n"
FAQ_ZH = "language: zh-CN\nfaqs:\n  - {id: pay, questions: ['怎么付款'], answer: '我们支持银行卡。'}\n"


def write(tmp_path, text: str, name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    (tmp_path / "faq_en.yaml").write_text(FAQ_EN, encoding="utf-8")
    (tmp_path / "faq_zh.yaml").write_text(FAQ_ZH, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(FlowError) as err:
        load_flow(path)
    return [p.replace(f"{path}:", "") for p in err.value.problems]


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    return load_flow(write(tmp_path_factory.mktemp("ml"), FLOW))


def said(actions):
    return [(a.text, a.language) for a in actions if isinstance(a, Play)]


def run(interp, events, at_s=TUESDAY):
    state, out = interp.handle(CallState(), CallStarted("+8613800000000", at_s=at_s))
    outs = [out]
    for event in events:
        state, out = interp.handle(state, event)
        outs.append(out)
    return state, outs


# ---- loading -----------------------------------------------------------------------------


def test_each_language_is_a_variant_with_its_own_texts_phrases_faq_and_voice(flow):
    assert flow.languages == ("en-US", "zh-CN") and flow.language == "en-US"   # the first is the default
    zh = flow.in_language("zh_CN")
    assert zh.language == "zh-CN" and zh.variants is flow.variants and flow.in_language("en") is flow
    assert flow.steps["main"].ask.text.source == "Say order, or press 1."
    assert zh.steps["main"].ask.text.source == "请说订单，或者按1。"
    order = zh.steps["main"].choices[0]
    assert order.intent.phrases == ("订单", "查订单") and order.label == "订单" and order.intent.avoid == ("怎么付款",)
    assert zh.globals[0].intent.phrases == ("人工",)
    assert (flow.voice, zh.voice) == ("piper", "espeak:cmn")
    assert flow.knowledge.entries[0].answer == "We take cards." and zh.knowledge.entries[0].answer == "我们支持银行卡。"
    assert load_flow(flow.path, language="cmn").language == "zh-CN"
    # each voice synthesises only its own language's fixed prompts when the flow loads
    assert "For English, press 1." in flow.prompts() and "普通话请按2。" not in flow.prompts()
    assert "普通话请按2。" in zh.prompts() and "Goodbye." not in zh.prompts()


def test_a_single_language_flow_is_unchanged(tmp_path):
    path = write(tmp_path, "steps:\n  a: {say: Hello., hangup: true}\n")
    flow = load_flow(path)
    assert flow.languages == () and flow.variants == {"en": flow}
    _, [out] = run(Interpreter(flow), [])
    assert out[0] == Play("Hello.")   # no language on Plays: the call's one voice


def test_a_text_missing_for_one_language_and_an_unknown_language_key_are_reported(tmp_path):
    path = write(tmp_path, """\
        languages: [en-US, zh-CN]
        steps:
          a:
            say: {en: Hello.}
            next: b
          b:
            say: {en: Bye., zh: 再见。, fr: Au revoir.}
            hangup: true
        """)
    assert problems(path) == [
        "4:5: 'say' has no text for zh-CN, one of the flow's languages (hint: add zh: ... to the map)",
        "7:30: unknown language key 'fr' in 'say' (hint: the flow's languages are en-US, zh-CN (declare more "
        "with languages: [en-US, zh-CN]))",
    ]


def test_language_list_problems(tmp_path):
    text = "languages: [en, english, klingon]\nsteps: {a: {say: {en: Hi}, hangup: true}}\n"
    assert problems(write(tmp_path, text)) == [
        "1:17: 'english' repeats en-US (hint: a flow speaks each language once (one variant per base language))",
        "1:26: unknown language 'klingon' (hint: accepted languages: en, en-US, en-GB, zh, zh-CN, zh-TW, zh-Hans, "
        "cmn, ko, ko-KR (and the same with '_' or in any case))",
    ]
    assert problems(write(tmp_path, "steps:\n  a: {language: [en, zh], next: b}\n  b: {hangup: true}\n")) == [
        "2:22: the flow does not speak zh (hint: add it to the flow's languages: [...])",
        "2:7: a language step needs a flow with several languages (hint: declare them at the top: "
        "languages: [en-US, zh-CN])",
    ]
    assert problems(write(tmp_path, "languages: [en, zh]\nsteps:\n  a: {language: [en, zh]}\n")) == [
        "3:7: step 'a' needs 'next' (where to go after 'language')"]


def test_a_plain_prompt_in_a_flow_with_several_languages_is_a_warning(tmp_path):
    flow = load_flow(write(tmp_path, "languages: [en, zh]\nsteps:\n  a: {say: Hello., next: b}\n"
                                     "  b: {say: '{{ caller.number }}', hangup: true}\n"))
    assert flow.warnings == ("flow.yaml:3:7: warning: 'say' has one text for all of the flow's languages "
                             "(en-US, zh-CN) (hint: write a map like {en: \"...\", zh: \"...\"})",) \
        or [w.split("/")[-1] for w in flow.warnings] == [
            "flow.yaml:3:7: warning: 'say' has one text for all of the flow's languages (en-US, zh-CN) "
            "(hint: write a map like {en: \"...\", zh: \"...\"})"]


# ---- the language step and the call in the chosen language ------------------------------


def test_the_menu_speaks_each_part_in_its_own_language_and_a_key_picks_mandarin(flow):
    state, outs = run(Interpreter(flow), [Digits("2"), Heard("查订单"), Heard("四八一五一六")])
    assert said(outs[0]) == [("For English, press 1.", "en-US"), ("普通话请按2。", "zh-CN")]
    assert outs[0][-1] == Listen("pick", (), max_digits=1, language="en-US", languages=("en-US", "zh-CN"))
    assert said(outs[1]) == [("欢迎致电。", "zh-CN"), ("请说订单，或者按1。", "zh-CN")]
    assert outs[1][-1].language == "zh-CN"                      # the recognizer of the chosen language
    assert said(outs[2]) == [("请说订单号。", "zh-CN")]           # Mandarin phrases matched
    assert said(outs[3]) == [("订单号是四 八 幺 五 幺 六，对吗？", "zh-CN")]   # digits parsed from Mandarin
    assert state.slots == {"order_id": "481516"} and state.call["language"] == "zh-CN"


@pytest.mark.parametrize(("words", "language"), [
    ("我想查一下订单", "zh-CN"),          # Chinese characters
    ("hello there", "en-US"),            # Latin letters
    ("mandarin please", "zh-CN"),        # a word naming the language beats the script
    ("说中文", "zh-CN"),
])
def test_the_first_words_pick_the_language(flow, words, language):
    state, outs = run(Interpreter(flow), [Heard(words)])
    assert state.call["language"] == language and state.step == "main"
    assert state.last.choice == language and state.last.via == "language"
    assert all(lang == language for _, lang in said(outs[1]))


def test_no_choice_repeats_the_menu_then_goes_on_in_the_default_language(flow):
    state, outs = run(Interpreter(flow), [NoInput(), Heard("123")])
    assert said(outs[1]) == said(outs[0])                        # the menu again
    assert state.call["language"] == "en-US" and state.step == "main"
    assert said(outs[2])[0] == ("Welcome.", "en-US")


def test_default_texts_faq_and_holiday_names_in_the_chosen_language(flow):
    _, outs = run(Interpreter(flow), [Digits("2"), Heard("怎么付款"), Heard("天气怎么样")], at_s=OCT_1)
    assert said(outs[1])[0] == ("欢迎致电，今天是国庆节。", "zh-CN")   # python-holidays' zh_CN name
    assert said(outs[2])[0] == ("我们支持银行卡。", "zh-CN")             # the Mandarin FAQ
    assert said(outs[3])[0] == ("抱歉，我没有听清楚。", "zh-CN")          # the Mandarin default re-prompt
    _, outs = run(Interpreter(flow), [Digits("1")], at_s=OCT_1)
    assert said(outs[1])[0] == ("Welcome, happy National Day.", "en-US")


def test_a_call_routed_to_a_language_skips_the_menu(flow):
    state, [out] = run(Interpreter(flow, language="zh-CN"), [])
    assert said(out) == [("欢迎致电。", "zh-CN"), ("请说订单，或者按1。", "zh-CN")]
    assert state.step == "main" and state.call["language_chosen"] is True


def test_the_call_loop_speaks_each_play_in_its_languages_voice(flow):
    class Loop(CallOutput):   # the call loop's voice choice, without audio
        prompts = "default voice"

    loop = Loop()
    loop.voices = {"en": "piper", "zh": "espeak:cmn"}
    loop.interp = Interpreter(flow)
    loop.state, _ = loop.interp.handle(CallState(), CallStarted())
    assert loop._voice(Play("普通话请按2。", language="zh-CN")) == "espeak:cmn"
    assert loop._voice(Play("For English, press 1.", language="en-US")) == "piper"
    loop.state, _ = loop.interp.handle(loop.state, Digits("2"))
    assert loop._voice(Play("抱歉")) == "espeak:cmn"   # a Play without a language: the call's language now


def test_script_language():
    assert [script_language(t) for t in ("查订单", "hello", "안녕하세요", "123", "")] == ["zh", "en", "ko", None, None]


# ---- the bilingual retail example --------------------------------------------------------


def test_the_retail_example_is_one_flow_in_two_languages():
    flow = load_flow(ROOT / "flows" / "retail" / "retail.yaml")
    assert flow.languages == ("en-US", "zh-CN")
    assert all("FAQ question" in w for w in flow.warnings)   # no text missing, none plain
    zh = flow.in_language("zh")
    assert zh.steps["order/ask_number"].ask.text.source == "请说出或按键输入您的六位订单号。"   # the subflow too
    assert zh.hours.timezone == "Asia/Shanghai" and flow.hours.timezone == "America/New_York"


# ---- by voice: the real call loop with a recognizer and a voice per language ---------------


def _call_with_languages(samples, recognizers: dict, voices: dict, at_s: float):
    """A replayed call of the bilingual retail flow, wired as `ivr serve` wires a flow with several
    languages (ivr/service/service.py): one recognizer and one voice per language."""
    import asyncio

    from ivr.call import Call
    from ivr.transports.wavfile import WavReplayTransport

    flow = load_flow(ROOT / "flows" / "retail" / "retail.yaml")

    async def go():
        transport = WavReplayTransport(samples)
        call = Call("bilingual", Interpreter(flow, {"ORDERS_API": "http://127.0.0.1:9"}), recognizers["en"],
                    voices["en"], transport, started_at_s=at_s)
        call.voices, call.recognizers = voices, recognizers
        transport.keep_going = lambda: call.busy
        return await call.run()
    return asyncio.run(go())


@pytest.mark.slow
def test_a_mandarin_caller_picks_mandarin_by_voice_and_is_answered_in_mandarin(
        zh_line_audio, whisper_asr, whisper_base, prompt_cache, zh_prompt_cache):
    """The English-only tiny.en turns Mandarin into English-looking words ("BOO! TONG!"), so the
    menu is heard with whisper base's language id, then the language's own recognizer."""
    caller = [("pause", 4500), ("say", "普通话"), ("pause", 9000), ("say", "人工客服"), ("pause", 4000)]
    trace = _call_with_languages(zh_line_audio(caller), {"en": whisper_asr, "zh": whisper_base},
                                 {"en": prompt_cache, "zh": zh_prompt_cache}, TUESDAY)
    heard = [(t.step, t.heard, (t.match or {}).get("choice")) for t in trace.turns if t.kind == "speech"]
    assert trace.path == ["choose_language", "greet", "main", "to_agent"], heard
    assert heard[0][2] == "zh-CN" and heard[1][2] == "agent", heard
    said = " ".join(s for t in trace.turns for s in t.said)
    assert "For English, press 1." in said and "普通话请按2。" in said and "正在为您转接人工客服。" in said
    assert trace.outcome.kind == "transfer" and trace.outcome.context["language"] == "zh-CN"


@pytest.mark.slow
def test_an_english_caller_picks_english_by_voice(line_audio, whisper_asr, whisper_base, prompt_cache,
                                                  zh_prompt_cache):
    caller = [("pause", 4500), ("say", "English please"), ("pause", 9000), ("say", "agent"), ("pause", 4000)]
    trace = _call_with_languages(line_audio(caller), {"en": whisper_asr, "zh": whisper_base},
                                 {"en": prompt_cache, "zh": zh_prompt_cache},
                                 datetime.fromisoformat("2026-11-24T10:00:00-05:00").timestamp())   # open in New York
    heard = [(t.step, t.heard, (t.match or {}).get("choice")) for t in trace.turns if t.kind == "speech"]
    assert trace.path == ["choose_language", "greet", "main", "to_agent"], heard
    # whisper's language id says en, then tiny.en transcribes
    assert heard[0][1] == "English, please." and heard[0][2] == "en-US" and heard[1][2] == "agent", heard
    assert "Connecting you to an agent." in " ".join(s for t in trace.turns for s in t.said)


@pytest.mark.slow
def test_ivr_serve_loads_a_recognizer_and_a_voice_per_language(tmp_path, zh_line_audio):
    """`ivr serve` with the bilingual flow: both languages' models and voices load before calls;
    a Mandarin caller over the WebSocket bridge picks Mandarin by voice and is answered in it."""
    import asyncio
    import json
    import shutil

    from ivr.clients.twilio_ws import run_ws_call
    from ivr.service.config import Listener, ServeConfig
    from ivr.service.service import Service

    # The service dates a call by the wall clock; the shipped flow's business hours would send a call
    # placed while Shanghai's agents are off to the closed notice. The same flow without hours is open.
    shutil.copytree(ROOT / "flows" / "retail", tmp_path / "flows" / "retail")
    shutil.copytree(ROOT / "flows" / "faq", tmp_path / "flows" / "faq")
    flow_file = tmp_path / "flows" / "retail" / "retail.yaml"
    lines = flow_file.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("hours:"))
    del lines[start:start + 3]
    assert not any(line.startswith(("  en: {timezone", "  zh: {timezone")) for line in lines)
    flow_file.write_text("".join(lines), encoding="utf-8")
    cfg = ServeConfig(listeners={"ws": Listener("127.0.0.1", 0)},
                      default_flow=flow_file, asr="whisper", max_calls=1,
                      records_dir=tmp_path / "records", reload=False, shutdown_grace_ms=2000)
    caller = zh_line_audio([("pause", 4500), ("say", "普通话"), ("pause", 9000), ("say", "人工客服"), ("pause", 4000)])

    async def go():
        service = Service(cfg, {})
        bound = await service.start()
        try:
            assert {"en-US", "zh-CN"} <= set(service.asr)
            host, port = bound["ws"]
            return await run_ws_call(f"ws://{host}:{port}/media", caller, custom={"from": "+8613800000000"})
        finally:
            await service.stop(grace_ms=1000)

    result = asyncio.run(go())
    assert result.unanswered_turns == 0
    [record] = [json.loads(p.read_text()) for p in (tmp_path / "records").rglob("*.json")]
    assert record["path"] == ["choose_language", "greet", "main", "to_agent"], record["path"]


def test_a_bridge_language_parameter_starts_the_call_in_that_language(flow):
    from ivr.service.service import _call_language
    from ivr.transports.base import CallInfo

    assert _call_language(flow, CallInfo("c1", "ws", params={"language": "zh_CN"})) == "zh_CN"
    assert _call_language(flow, CallInfo("c2", "ws", params={"language": "ko"})) is None   # not one of the flow's
    assert _call_language(flow, CallInfo("c3", "sip")) is None                              # the flow asks


def test_a_knowledge_file_in_the_wrong_language_is_reported(tmp_path):
    path = write(tmp_path, "languages: [en, zh]\nknowledge: {en: faq_zh.yaml, zh: faq_zh.yaml}\n"
                           "steps: {a: {say: {en: Hi, zh: 你好}, hangup: true}}\n")
    assert problems(path) == ["2:1: the knowledge file for en-US is in zh-CN: faq_zh.yaml (hint: give each language "
                              "its own file, with language: set in it)"]


def test_validate_checks_a_bilingual_subflow_file_on_its_own(capsys):
    from ivr.cli import main

    assert main(["validate", str(ROOT / "flows" / "retail" / "subflows" / "order_lookup.yaml")]) == 0
    assert "order_lookup.yaml: ok (subflow, 7 steps)" in capsys.readouterr().out
