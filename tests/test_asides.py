"""A global request followed by why the caller makes it (ivr.flow.asides)."""

import pytest

from ivr.flow import asides, builtins, understand
from ivr.flow.nlu import Intent


@pytest.mark.parametrize("said, head", [
    ("could you say that again I'm standing next to a busy road", "could you say that again"),
    ("pardon the tractor was going past", "pardon"),
    ("operator please i have been waiting twenty minutes", "operator please"),
    ("back to the start i hit the wrong key", "back to the start"),
    ("say again my daughter is singing", "say again"),
    ("where is my order", None),                       # no reason
    ("my order is late", None),                        # a reason with nothing before it
    ("我在开车没听清再讲一遍", None),                     # Mandarin: one clause, no pause to cut at
    ("你说啥 这边太吵了", "你说啥"),                        # Mandarin: the first clause, ended by a pause
    ("嗯 你说啥", None),                                   # ... of two characters or more
    ("sorry i think i've rung the wrong number", None),  # what the caller thinks, not why they ask
    ("bye for now i'll ring back monday", "bye for now"),   # what they will do next
    ("sorry i think i've rung the wrong number i was trying to get the surgery",
     "sorry i think ive rung the wrong number"),
    ("start over i think i said the wrong thing", "start over"),   # a request, then what the caller thinks went wrong
    ("i'd like a human please this isn't working", "id like a human please"),
    ("还是转人工吧我跟机器讲不清楚", "还是转人工吧"),        # no pause: a clause-final particle ends the request
    ("我的订单到哪了", None),                             # ... not 的, and not one with nothing after it
    ("oh sorry love i think i missed that", None),                 # an apology, then what the caller thinks
    ("i'd like to speak to somebody my flight's boarding now", "id like to speak to somebody"),   # 's: is
    ("what were the choices again a tractor went past", "what were the choices again"),   # a, an, our, his ...
    ("come again love i'm outside in a gale", "come again"),     # the name for the listener asks nothing
    ("what did you say mate i'm at the till", "what did you say"),
])
def test_the_request_before_the_reason(said, head):
    assert asides.head(said) == head


GLOBALS = tuple(builtins.merge(Intent(n, ()), builtins.load("en")[n]) for n in ("agent", "repeat", "goodbye",
                                                                             "main_menu"))
STEP = (Intent("track_order", ("track my order", "where is my order")),
        Intent("billing", ("billing question", "i was charged twice")))


@pytest.mark.parametrize("said, meant", [("could you say that again i'm standing next to a busy road", "repeat"),
                                         ("operator please i have been waiting twenty minutes", "agent")])
def test_a_global_request_with_its_reason_is_taken(said, meant):
    top = understand.rank(said, STEP, GLOBALS)[0]
    assert top.name == meant and top.score >= 0.8 and "before the reason" in top.signal


@pytest.mark.parametrize("said, tails", [
    ("look i'm tired and it's four in the morning so can you just put me through to a person please",
     ["so can you just put me through to a person please", "please"]),     # "so can you just": one request
    ("i have been going around in circles for ten minutes just put me through to someone",
     ["just put me through to someone"]),
    ("please just put me through", []),                                    # no reason before the request
    ("我在开车 你能不能转人工", []),                                          # Mandarin: cut at its pauses (head)
    ("我刚下夜班 网上买的东西说今天送到 能不能帮我查一下", ["能不能帮我查一下"]),   # ... a later clause asks
    ("我要退款 那件外套不想要了", []),                                        # ... or says why: no request there
    ("we've just got back from my sister's and nobody wants to cook", []),   # "just" before a past form: when
])
def test_the_requests_after_the_reason(said, tails):
    assert list(asides.tails(said)) == tails


@pytest.mark.parametrize("said, step, meant", [
    ("look i'm at the gate and i've no time for the menu can you just put me through to an actual person", "retail",
     "agent"),
    ("i've been going round in circles for ten minutes just take me back to the main menu so i can pick again",
     "confirm", "main_menu"),
    ("no listen the gate's about to close and i can't keep answering yes or no can i just get a real agent on the "
     "line please", "confirm", "agent"),
])
def test_a_global_request_after_its_reason_is_taken(said, step, meant):
    from tests.nlu_bench import tagged_step

    top = understand.rank(said, *tagged_step("en", step))[0]
    assert top.name == meant and top.score >= 0.8 and "after the reason" in top.signal, top


@pytest.mark.parametrize("said, tails", [
    ("the baby's up i'll ring back later bye", ["bye", "later bye", "back later bye"]),
    ("i'll go now bye bye", ["bye", "bye bye"]),       # MIN_REASON_WORDS before the farewell
    ("cheers bye", []),
    ("我先挂了 拜拜", []),                               # English only
])
def test_the_farewells_that_end_a_sentence(said, tails):
    assert list(asides.farewell_tails(said)) == tails


@pytest.mark.parametrize("said", ["i'll ring back after my shift bye", "i've got to go the bus is here bye"])
def test_a_goodbye_heard_word_for_word_after_its_reason_is_taken(said):
    """The reason ("ring back" sounds like "bring back": returns) is most of the sentence; the farewell ends it."""
    from tests.nlu_bench import tagged_step

    top = understand.rank(said, *tagged_step("en", "retail"))[0]
    assert top.name == "goodbye" and top.score >= 0.8 and "after the reason" in top.signal, top


def test_an_apology_before_a_long_story_asks_for_no_repeat():
    """"sorry i was driving" asks to hear the prompt again; "sorry" and a story of a wrong number does not."""
    from tests.nlu_bench import tagged_step

    top = understand.rank("oh sorry i was actually trying to ring the letting agent about the deposit on the old flat "
                          "because they still haven't given it back", *tagged_step("en", "telecom"))[0]
    assert top.score < 0.8 or top.name != "repeat", top
    top = understand.rank("sorry i was driving", *tagged_step("en", "telecom"))[0]
    assert top.name == "repeat" and top.score >= 0.8, top


def test_a_no_then_a_correction_stays_a_no():
    """"no sorry i meant something different": "sorry" opens a correction here, not a request to repeat."""
    from tests.nlu_bench import tagged_step

    top = understand.rank("no sorry i meant something different", *tagged_step("en", "confirm"))[0]
    assert top.name == "no", top


def test_a_step_answer_after_a_reason_is_taken_at_a_menu_when_nearest_by_meaning_too():
    """A menu's own answer after the reason ("... so can you tell me where my parcel is") is taken when the request
    takes it with confidence and no other answer is nearer by meaning; at a yes/no step (no `own` answers given) only
    the globals are."""
    said = "i was charged twice last month so can you tell me where my parcel is"
    ranked = [understand.Candidate("billing", 0.3, "meaning", "step", 0.0, 0.9)]
    track = understand.Candidate("track_order", 0.95, "meaning", "step", 1.0, 0.95)
    globals_ = frozenset({"agent", "repeat", "main_menu"})
    menu = frozenset({"track_order", "billing"})
    taken = asides.apart(said, ranked, lambda part: [track], globals_, own=menu)
    assert taken[0].name == "track_order" and "after the reason" in taken[0].signal
    nearer = understand.Candidate("billing", 0.1, "meaning", "step", 0.0, 0.96)
    assert asides.apart(said, ranked, lambda part: [track, nearer], globals_, own=menu) == ranked
    assert asides.apart(said, ranked, lambda part: [track], globals_) == ranked


@pytest.mark.parametrize("lang, step, said, meant", [
    ("en", "telecom", "i've been on the road all week visiting my daughter and the data ran out on the motorway so "
     "can i add some more data to my phone please", "top_up"),
    ("zh", "retail", "孩子说那个书包太丑了不肯背 我想退了 有小票 吊牌也还在 怎么办理", "returns"),    # read part test29
])
def test_a_menu_answer_after_a_long_reason_is_taken(lang, step, said, meant):
    from tests.nlu_bench import tagged_step

    top = understand.rank(said, *tagged_step(lang, step))[0]
    assert top.name == meant and top.score >= 0.8 and "after the reason" in top.signal, top


def test_a_greeting_before_the_reason_is_no_goodbye():
    top = understand.rank("hello good afternoon i am calling because the invoice is wrong", STEP, GLOBALS)[0]
    assert not (top.name == "goodbye" and top.score >= 0.6)


def test_an_aside_the_off_topic_guard_holds_stays_held():
    """"sorry i was talking to my husband": the whole sentence is an aside (off topic), not "sorry" + a reason."""
    held = [understand.Candidate("repeat", 0.5, "off topic (like 'not you i was talking to my husband')", "global")]
    assert asides.apart("sorry i was talking to my husband", held, lambda part: 1 / 0,
                        frozenset({"repeat", "agent", "main_menu"})) == held


def test_an_apology_for_an_aside_asks_for_nothing():
    """"sorry" before why is an apology, not a request to repeat, when the whole sentence is nearer an off-topic
    sentence than any answer (under the cap, understand.NEARER_OFF_TOPIC); "pardon" before why still asks."""
    near = [understand.Candidate("repeat", 0.28, f"{understand.NEARER_OFF_TOPIC} (like 'x')", "global")]
    assert asides.apart("sorry i was talking to my son", near, lambda part: 1 / 0,
                        frozenset({"repeat", "agent", "main_menu"})) == near
    top = understand.rank("sorry i was talking to my son", STEP, GLOBALS)[0]
    assert not (top.name == "repeat" and top.score >= 0.6)
    assert not asides._apology_for_aside("pardon me", near)
    assert understand.NEARER_OFF_TOPIC.startswith(asides.ASIDE_SIGNALS[1])     # the signal asides looks for


def test_a_step_answer_is_not_cut_from_its_reason():
    """Only the globals that ask to repeat, for a person or for the main menu are taken from the head."""
    assert asides.apart("track it i'm worried", [], lambda part: understand.rank(part, STEP, GLOBALS),
                        frozenset({"repeat", "agent", "main_menu"})) == []


def globals_(language: str) -> tuple[Intent, ...]:
    known = builtins.load(language)
    return tuple(builtins.merge(Intent(n, ()), known[n]) for n in ("agent", "repeat", "goodbye", "main_menu"))


@pytest.mark.parametrize("said, lang, split", [
    ("no just get me an agent", "en", ("no", "just get me an agent")),
    ("no thanks i want an agent please", "en", ("no thanks", "i want an agent please")),
    ("no i don't want an agent", "en", None),            # a negation in the request
    ("no agent", "en", None),                            # "no" before a noun: maybe none wanted
    ("no need for a person", "en", None),
    ("no", "en", None),
    ("不用了再见", "zh", ("不用了", "再见")),               # the "no" ends at its particle
    ("不用了 挂了 白白", "zh", ("不用了", "挂了白白")),
    ("没有，再说一遍", "zh", ("没有", "再说一遍")),
    ("不要转人工", "zh", None),                           # "don't transfer me": no pause, no particle
    ("不用 不用转人工", "zh", None),                       # a negation in the request
    ("아니요 상담원", "ko", None),                         # English and Mandarin only
    ("never mind i'll sort it later bye", "en", ("never mind", "ill sort it later bye")),   # a dismissal
    ("算了算了 再见哈", "zh", ("算了算了", "再见哈")),
    # "never mind, I won't do it": dismissals, whole noes and 不X了 in a row, then the request
    ("算了 不办了 拜拜", "zh", ("算了不办了", "拜拜")),
    ("算了我不弄了 先挂了 再见", "zh", ("算了我不弄了", "先挂了再见")),
    ("不查了 我要转人工", "zh", ("不查了", "我要转人工")),
    ("不弄了太困了脑子转不动我先挂了", "zh", ("不弄了", "太困了脑子转不动我先挂了")),   # 转不动: no negation
    ("算了 不办了", "zh", None),                          # nothing asked after it
    ("不办了 不要转人工", "zh", None),                     # a negation in the request
])
def test_the_no_and_the_request_after_it(said, lang, split):
    assert asides.no_then(said, lang) == split


@pytest.mark.parametrize("said, lang, meant", [
    ("no just get me an agent", "en", "agent"), ("no i want an agent", "en", "agent"),
    ("no thank you bye", "en", "goodbye"),
    ("不用了再见", "zh", "goodbye"), ("没有 再说一遍", "zh", "repeat"),
    ("算了 不办了 拜拜", "zh", "goodbye"), ("算了不弄了再见", "zh", "goodbye"),
])
def test_a_no_then_a_global_request_takes_the_request(said, lang, meant):
    """At "did you mean ...?", the caller who says no and asks for a person is put through, not asked again."""
    from tests.test_builtins import yes_no_step

    top = understand.rank(said, yes_no_step(lang, tagged=True), globals_(lang))[0]
    assert top.name == meant and top.score >= 0.8, top


@pytest.mark.parametrize("said, lang", [("no i don't want an agent", "en"), ("no it's the other one", "en"),
                                        ("no i want a refund", "en"), ("不用了谢谢", "zh"), ("不了 我问别的", "zh")])
def test_a_no_without_a_global_request_stays_a_no(said, lang):
    from tests.test_builtins import yes_no_step

    top = understand.rank(said, yes_no_step(lang, tagged=True), globals_(lang))[0]
    assert top.name == "no" and top.score >= 0.8, top


def test_a_mandarin_request_then_why_takes_the_request():
    from tests.nlu_bench import tagged_step

    top = understand.rank("你说什么 雨声太大了", *tagged_step("zh", "confirm"))[0]
    assert top.name == "repeat" and top.score >= 0.8, top


def test_at_a_yes_no_step_a_request_wins_over_a_yes_or_no_in_its_reason():
    """那回主菜单吧 搞错了: 错 ("wrong") is why the caller asks for the main menu, not an answer; an answer said first
    stays the answer."""
    from tests.nlu_bench import tagged_step

    top = understand.rank("那回主菜单吧 搞错了", *tagged_step("zh", "confirm"))[0]
    assert top.name == "main_menu" and top.score >= 0.8 and "before the reason" in top.signal, top
    top = understand.rank("不对 搞错了", *tagged_step("zh", "confirm"))[0]
    assert top.name == "no", top
    top = understand.rank("start over i think i said the wrong thing", *tagged_step("en", "confirm"))[0]
    assert top.name == "main_menu" and top.score >= 0.8 and "before the reason" in top.signal, top


def test_a_mandarin_first_clause_is_not_taken_when_the_rest_asks_for_a_step_answer():
    """我老伴买重复了 取消一个: 重复 ("twice") in the first clause is no request to repeat; the rest asks to cancel."""
    from tests.nlu_bench import tagged_step

    top = understand.rank("我老伴买重复了 取消一个", *tagged_step("zh", "retail"))[0]
    assert top.name != "repeat", top


@pytest.mark.parametrize("said", ["cheers bye now i'm off to the market", "ah forget it i'll ring back bye"])
def test_a_goodbye_said_word_for_word_before_why_or_after_never_mind(said):
    from tests.nlu_bench import tagged_step

    top = understand.rank(said, *tagged_step("en", "confirm"))[0]
    assert top.name == "goodbye" and top.score >= 0.8, top


def test_never_mind_then_goodbye_at_a_menu():
    from tests.nlu_bench import tagged_step

    top = understand.rank("never mind i'll call back later", *tagged_step("en", "retail"))[0]
    assert top.name == "goodbye" and top.score >= 0.8, top
