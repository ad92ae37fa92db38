"""The intent library (`builtin: retail.track_order`): prebuilt customer-service intents per business domain."""

import textwrap
from pathlib import Path

import pytest
import yaml

from ivr.flow import builtins, understand
from ivr.flow.loader import load_flow
from ivr.flow.yamlsrc import FlowError
from tests.nlu_bench import script

FLOW = """
    language: {language}
    start: main
    globals:
      agent: {{say: ["{agent}"], builtin: agent, goto: done}}
    steps:
      main:
        ask: Track an order, returns or opening hours?
        choices:
          track: {{say: ["{track}"], {tag} goto: done}}
          returns: {{say: ["{returns}"], goto: done}}
          hours: {{say: ["{hours}"], goto: done}}
      done: {{hangup: true}}
    """
WORDS = {"en": ("en-US", "agent", "track [my] order", "return an item", "opening hours"),
         "zh": ("zh-CN", "人工", "查订单", "退货", "营业时间"),
         "ko": ("ko-KR", "상담원", "주문 조회", "반품", "영업 시간")}


def write(tmp_path: Path, tag: str, lang: str = "en"):
    language, agent, track, returns, hours = WORDS[lang]
    path = tmp_path / "flow.yaml"
    path.write_text(textwrap.dedent(FLOW.format(language=language, agent=agent, track=track, returns=returns,
                                                hours=hours, tag=tag)), encoding="utf-8")
    return load_flow(path)


def menu(flow):
    return tuple(c.intent for c in flow.steps["main"].choices), tuple(g.intent for g in flow.globals)


@pytest.mark.parametrize("language, least", [("en", 40), ("zh", 30)])
def test_every_library_intent_has_many_sentences_and_no_two_share_one(language, least):
    shelf = builtins.library(language)
    domains = {name.split(".")[0] for name in shelf}
    assert {"retail", "telecom", "banking", "utilities", "travel", "healthcare"} <= domains
    seen: dict[str, str] = {}
    for name, intent in shelf.items():
        assert intent.phrases and len(intent.examples) >= least, name
        domain = name.split(".")[0]
        for sentence in (*intent.phrases, *intent.examples):
            other = seen.setdefault(f"{domain}:{sentence}", name)
            assert other == name, f"{sentence!r} is in {other} and {name}"
    assert set(builtins.names(language)) == set(builtins.NAMES) | set(shelf)


def test_both_languages_have_the_same_library():
    assert set(builtins.library("en")) == set(builtins.library("zh"))
    assert builtins.library("ko") == {}


def test_a_choice_tagged_with_a_library_intent_hears_its_sentences(tmp_path):
    flow = write(tmp_path, "builtin: retail.track_order,")
    track = flow.steps["main"].choices[0].intent
    assert track.builtin == "retail.track_order"
    assert track.phrases == ("track order", "track my order")      # its own say: stays
    assert set(builtins.library("en")["retail.track_order"].examples) <= set(track.examples)


@pytest.mark.parametrize("lang, said", [("en", "i bought a lamp from you ten days ago and it still has not come"),
                                        ("zh", "我上周买的东西到现在还没收到")])
def test_a_request_in_callers_own_words_is_taken_with_the_library(tmp_path, lang, said):
    """Worded nothing like the choice's one template: without the library the step cannot take it at once."""
    plain = understand.rank(said, *menu(write(tmp_path, "", lang)))
    tagged = understand.rank(said, *menu(write(tmp_path, "builtin: retail.track_order,", lang)))
    assert tagged[0].name == "track" and tagged[0].score >= 0.8
    assert not (plain[0].name == "track" and plain[0].score >= 0.8)


def test_the_library_does_not_pull_other_requests_in(tmp_path):
    step, globals_ = menu(write(tmp_path, "builtin: retail.track_order,"))
    for said, meant in (("i want to return an item", "returns"), ("what are your opening hours", "hours"),
                        ("can i speak to a real person", "agent")):
        assert understand.rank(said, step, globals_)[0].name == meant, said
    off_topic = understand.rank("can i book a table for two tonight", step, globals_)
    assert not off_topic or off_topic[0].score < 0.6


@pytest.mark.parametrize("said, taken", [("is the bank open yet", False),
                                         ("how much is parking here for an hour", False),
                                         ("what time do you open on sunday", True)])
def test_another_places_hours_are_not_the_shops(said, taken):
    """retail.store_hours' `not:` sentences name other places' hours (a bank, a car park, a train): a caller asking
    for those at the shop's menu is out of its scope."""
    from tests.nlu_bench import tagged_step

    top = understand.rank(said, *tagged_step("en", "retail"))[0]
    assert (top.name == "store_hours" and top.score >= 0.8) is taken, top


@pytest.mark.parametrize("lang, said", [("en", "lovely day isn't it"), ("en", "the thing about my"),
                                        ("zh", "今天外面下雪了没有"), ("zh", "我那个女儿她")])
def test_chit_chat_and_half_sentences_are_not_taken_as_an_answer(tmp_path, monkeypatch, lang, said):
    """The off-topic guard (builtins.off_topic) holds what e5 alone would take: no answer taken or offered, and the
    candidate says why."""
    step, globals_ = menu(write(tmp_path, "builtin: retail.track_order,", lang))
    ranked = understand.rank(said, step, globals_)
    assert ranked[0].score < 0.6 and ranked[0].signal.startswith("off topic (like '")
    monkeypatch.setattr(understand, "OFF_TOPIC_MARGIN", float("inf"))
    assert understand.rank(said, step, globals_)[0].score >= 0.6


def test_the_off_topic_guard_keeps_requests_and_spares_a_language_without_sentences(tmp_path):
    step, globals_ = menu(write(tmp_path, "builtin: retail.track_order,"))
    for said in ("my parcel still has not turned up", "has my order been sent out yet"):
        top = understand.rank(said, step, globals_)[0]
        assert top.name == "track" and top.score >= 0.8 and not top.signal.startswith("off topic"), said
    korean = menu(write(tmp_path, "", "ko"))
    assert builtins.off_topic("ko") == ()
    assert understand.off_topic(understand.semantic.sentence_vector("날씨 좋네요"), korean[0], "zh") == (0.0, "")


def test_an_unknown_library_name_says_the_nearest(tmp_path):
    with pytest.raises(FlowError, match=r"unknown built-in intent 'retail\.track_ordr'.*did you mean "
                                        r"'retail\.track_order'"):
        write(tmp_path, "builtin: retail.track_ordr,")
    with pytest.raises(FlowError, match=r"the intent library: domain\.intent"):
        write(tmp_path, "builtin: bakery.bread,")


def test_a_language_without_the_library_warns(tmp_path):
    flow = write(tmp_path, "builtin: retail.track_order,", "ko")
    assert flow.steps["main"].choices[0].intent.examples == ()
    assert any("no built-in intent 'retail.track_order' for language 'ko'" in w for w in flow.warnings)


@pytest.mark.parametrize("where, loader, name, text, match", [
    ("DATA_DIR", "load", "en.yaml", "yes: {say: [yes]}\n", "must be exactly yes, no, agent"),
    ("LIBRARY_DIR", "library", "retail.en.yaml", 'Track Order: {say: ["track order"]}\n', "is not an intent name"),
    ("DATA_DIR", "off_topic", "offtopic.en.yaml", "chit_chat: how are you\n", "maps kinds to lists of sentences"),
    ("HEARD_DIR", "library", "retail.en.yaml", "track_order: [where is it]\n", "maps intents to parts to lists"),
    ("HEARD_DIR", "library", "retail.en.yaml", "teleport: {dev: [beam me up]}\n", "intents the library lacks"),
])
def test_a_broken_data_file_is_a_packaging_fault(tmp_path, monkeypatch, where, loader, name, text, match):
    """The system intents' file and a library file alike."""
    (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.setattr(builtins, where, tmp_path)
    getattr(builtins, loader).cache_clear()
    try:
        with pytest.raises(builtins.BuiltinDataError, match=match):
            getattr(builtins, loader)("en")
    finally:
        getattr(builtins, loader).cache_clear()


def test_ivr_intents_lists_what_a_choice_can_name(capsys):
    from ivr.cli import main

    assert main(["intents", "--language", "zh-CN", "--domain", "telecom", "--examples", "1"]) == 0
    out = capsys.readouterr().out
    assert "telecom.top_up" in out and "retail.track_order" not in out and "builtin: telecom." in out
    assert main(["intents", "--domain", "bakery"]) == 2
    assert "domains: banking, healthcare, retail" in capsys.readouterr().err
    assert main(["intents", "--language", "ko-KR"]) == 2
    assert "no built-in intents for language 'ko'" in capsys.readouterr().err


def test_what_callers_were_heard_saying_joins_the_library_and_a_part_can_be_left_out():
    shelf, without = builtins.library("en"), builtins.library("en", leave_out=("test13",))
    heard = yaml.safe_load((builtins.HEARD_DIR / "retail.en.yaml").read_text(encoding="utf-8"))
    from_test13 = heard["returns"]["test13"]
    assert set(from_test13) <= set(shelf["retail.returns"].examples)
    assert not set(from_test13) & set(without["retail.returns"].examples)
    assert set(heard["returns"]["dev"]) <= set(without["retail.returns"].examples)
    assert builtins.library("en", leave_out=()) == shelf


def test_the_heard_sentences_are_the_read_parts_and_no_sealed_one():
    """The heard files are what scripts/gather_heard.py makes of the read parts now (re-run it when a part is read),
    and hold no part still sealed (bench_nlu.HEARD_PARTS are the read ones)."""
    bench_nlu, gather_heard = script("bench_nlu"), script("gather_heard")
    for lang in ("en", "zh"):
        made = gather_heard.gather(lang)
        for domain in ("retail", "telecom"):
            stored = yaml.safe_load((builtins.HEARD_DIR / f"{domain}.{lang}.yaml").read_text(encoding="utf-8"))
            assert stored == made[domain], f"{domain}.{lang}.yaml is stale: run scripts/gather_heard.py"
            assert {p for parts in stored.values() for p in parts} <= set(bench_nlu.HEARD_PARTS)


def _same(fast, slow, where):
    """Equal values, types and file positions, all the way down."""
    assert type(fast) is type(slow), where
    if isinstance(slow, dict):
        assert (fast.line, fast.col, fast.key_pos, list(fast)) == (slow.line, slow.col, slow.key_pos, list(slow)), where
        for k in slow:
            _same(fast[k], slow[k], f"{where}/{k}")
    elif isinstance(slow, list):
        assert (fast.line, fast.col, fast.item_pos, len(fast)) == (slow.line, slow.col, slow.item_pos, len(slow)), where
        for i, (a, b) in enumerate(zip(fast, slow, strict=True)):
            _same(a, b, f"{where}[{i}]")
    else:
        assert fast == slow, where


def test_shipped_files_read_by_libyaml_as_by_the_python_parser():
    """read_yaml(shipped=True) takes libyaml (10x faster: the library cost 2.9 s of every command's start): every
    file ivr ships reads to the same values and file positions as the pure-Python parser gives flows."""
    from ivr.flow import yamlsrc

    if not yamlsrc._FAST:
        pytest.skip("PyYAML without libyaml: the pure-Python parser reads everything")
    shipped = sorted(builtins.DATA_DIR.rglob("*.yaml"))
    assert len(shipped) >= 20
    for path in shipped:
        text = path.read_text(encoding="utf-8")
        _same(yaml.load(text, Loader=yamlsrc._CLoader), yaml.load(text, Loader=yamlsrc._Loader), str(path))


def test_a_broken_shipped_file_gets_the_flow_parsers_words(tmp_path):
    """libyaml refuses it; the pure-Python parser reads it again, for the same file:line:col message as a flow's."""
    from ivr.flow import yamlsrc
    from ivr.flow.yamlsrc import read_yaml

    bad = tmp_path / "retail.en.yaml"
    bad.write_text('track_order:\n  say: ["where is it"\n  examples: []\n', encoding="utf-8")
    if yamlsrc._FAST:
        with pytest.raises(yaml.YAMLError):         # libyaml refuses it: the fallback is what is tested
            yaml.load(bad.read_text(encoding="utf-8"), Loader=yamlsrc._CLoader)
    with pytest.raises(FlowError) as shipped:
        read_yaml(bad, "intent library file", shipped=True)
    with pytest.raises(FlowError) as flow:
        read_yaml(bad, "intent library file")
    assert str(shipped.value) == str(flow.value)
    assert f"{bad}:3:" in str(shipped.value) and "YAML does not parse" in str(shipped.value)
