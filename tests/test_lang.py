"""One language normaliser (ivr/lang.py) for flows, slots, prompts, TTS and ASR: `cmn`, `zh_CN` and
`zh-Hans` all mean Mandarin everywhere; a language the product cannot serve is refused with
file:line:col and the accepted list."""

import textwrap

import pytest

from ivr import lang
from ivr.asr.registry import language_matches
from ivr.events import CallStarted, Heard, Play
from ivr.flow.interpreter import CallState, Interpreter
from ivr.flow.knowledge import load_knowledge
from ivr.flow.loader import FlowError, load_flow
from ivr.flow.money import default_currency
from ivr.flow.prompts import DEFAULT_PROMPTS
from ivr.flow.sayas import say_digits
from ivr.tts.registry import load_tts


@pytest.mark.parametrize(("given", "tag", "base"), [
    ("cmn", "zh-CN", "zh"), ("zh_CN", "zh-CN", "zh"), ("zh-Hans", "zh-CN", "zh"), ("zh", "zh-CN", "zh"),
    ("cmn-Hans-CN", "zh-CN", "zh"), ("zh_CN.UTF-8", "zh-CN", "zh"), ("zh-Hant", "zh-TW", "zh"),
    ("ZH-tw", "zh-TW", "zh"), ("mandarin", "zh-CN", "zh"), ("en", "en-US", "en"), ("en_GB", "en-GB", "en"),
    ("EN-us", "en-US", "en"), ("english", "en-US", "en"), ("ko", "ko-KR", "ko"), ("ko_KR", "ko-KR", "ko"),
    (None, "en-US", "en"), ("", "en-US", "en"),
])
def test_every_accepted_spelling_has_one_canonical_tag(given, tag, base):
    found = lang.parse_language(given)
    assert (found.tag, found.base) == (tag, base)
    assert lang.canonical(given) == tag and lang.base_language(given) == base


@pytest.mark.parametrize("given", ["klingon", "de", "fr-FR", "yue", "x", "--", "12"])
def test_unknown_languages_are_refused_with_the_accepted_list(given):
    with pytest.raises(lang.UnknownLanguage) as err:
        lang.parse_language(given)
    assert "zh-CN" in err.value.hint and "cmn" in err.value.hint and "en-US" in err.value.hint
    assert lang.base_language(given, "en") == "en"                 # the lenient form falls back
    assert lang.canonical_or_raw(given) == given                    # tools that serve any engine language


MANDARIN_FLOW = """
    language: {language}
    start: main
    steps:
      main:
        ask: 请说查询订单。
        choices:
          track: {{say: ["查询订单"], goto: order}}
      order:
        ask: 请说订单号。
        collect: {{slot: order_id, type: digits, length: 6}}
        next: done
      done:
        say: "订单 {{{{ slots.order_id | digits }}}}。"
        hangup: true
    """


def write(tmp_path, text, name="flow.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def said(actions):
    return [a.text for a in actions if isinstance(a, Play)]


@pytest.mark.parametrize("language", ["cmn", "zh_CN", "zh-Hans", "cmn-Hans-CN"])
def test_a_mandarin_flow_is_mandarin_everywhere(tmp_path, language):
    flow = load_flow(write(tmp_path, MANDARIN_FLOW.format(language=language)))
    assert flow.language == "zh-CN" and flow.lang == "zh"
    interp = Interpreter(flow)
    state, _ = interp.handle(CallState(), CallStarted())
    state, actions = interp.handle(state, Heard("今天天气不错"))
    assert said(actions)[0] == DEFAULT_PROMPTS["zh"]["no_match"]        # not the English default
    state, _ = interp.handle(state, Heard("查询订单"))
    state, actions = interp.handle(state, Heard("一二三四五六"))          # Mandarin digits fill the slot
    assert state.slots["order_id"] == "123456"
    assert said(actions) == [f"订单 {say_digits('123456', 'zh-CN')}。"] and "二 三" in said(actions)[0]
    assert load_tts(flow.voice, flow.language).name == "espeak:cmn"     # TTS voice
    assert language_matches("cn", flow.language) and language_matches("cn", language)   # vosk's Mandarin model
    assert default_currency(flow.language) == "CNY"


def test_validate_rejects_an_unknown_language_at_its_line(tmp_path):
    path = write(tmp_path, """
        name: x
        language: klingon
        start: a
        steps:
          a: {say: hi, hangup: true}
        """)
    with pytest.raises(FlowError) as err:
        load_flow(path)
    (problem,) = [p for p in err.value.problems if "klingon" in p]
    assert problem.startswith(f"{path}:3:1: unknown language 'klingon'") and "accepted languages: en" in problem


def test_a_knowledge_file_language_goes_through_the_same_normaliser(tmp_path):
    faq = "language: {}\nfaqs:\n  - id: hours\n    questions: [营业时间]\n    answer: 九点到五点。\n"
    write(tmp_path, faq.format("zh_CN"), "faq.yaml")
    assert load_knowledge(tmp_path / "faq.yaml", semantic=False).language == "zh-CN"
    write(tmp_path, faq.format("elvish"), "faq.yaml")
    with pytest.raises(FlowError) as err:
        load_knowledge(tmp_path / "faq.yaml", semantic=False)
    assert any(p.startswith(f"{tmp_path / 'faq.yaml'}:1:1: unknown language") for p in err.value.problems)
