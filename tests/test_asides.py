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
    ("我在开车没听清再讲一遍", None),                     # English only
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


def test_a_greeting_before_the_reason_is_no_goodbye():
    top = understand.rank("hello good afternoon i am calling because the invoice is wrong", STEP, GLOBALS)[0]
    assert not (top.name == "goodbye" and top.score >= 0.6)


def test_an_aside_the_off_topic_guard_holds_stays_held():
    """"sorry i was talking to my husband": the whole sentence is an aside (off topic), not "sorry" + a reason."""
    held = [understand.Candidate("repeat", 0.5, "off topic (like 'not you i was talking to my husband')", "global")]
    assert asides.apart("sorry i was talking to my husband", held, lambda part: 1 / 0,
                        frozenset({"repeat", "agent", "main_menu"})) == held


def test_a_step_answer_is_not_cut_from_its_reason():
    """Only the globals that ask to repeat, for a person or for the main menu are taken from the head."""
    assert asides.apart("track it i'm worried", [], lambda part: understand.rank(part, STEP, GLOBALS),
                        frozenset({"repeat", "agent", "main_menu"})) == []
