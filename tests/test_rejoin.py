"""Words the recognizer split in two are joined again before matching (ivr.flow.rejoin, understand.rank)."""

import textwrap

import pytest

from ivr.flow import understand
from ivr.flow.loader import load_flow
from ivr.flow.nlu import Intent
from ivr.flow.rejoin import rejoin

MENU = (Intent("returns", ("i want a refund", "return an item")),
        Intent("track", ("where is my parcel", "track my order")),
        Intent("agent", ("operator", "talk to someone")))


@pytest.mark.parametrize("said, joined", [
    ("i need to re turn a coat", "i need to return a coat"),          # the halves run together are a word
    ("re fund please", "refund please"),
    ("is my par sell on the way", "is my parcel on the way"),         # ... or sound like one (neither half is a word)
    ("opera tor", "operator"),
    ("Re fund, please", "refund please"),                              # case and punctuation do not hide a split
])
def test_a_split_word_of_the_answers_is_joined(said, joined):
    assert rejoin(said, MENU) == joined


@pytest.mark.parametrize("said", [
    "track my order",            # both halves are the answers' words: two words stay two
    "is my order here",
    "in to the shop",            # too short to be worth a guess
    "where is my parcel",
    "我想 退 货",                 # Mandarin has no spaces to split at
    "parcel",
    "",
    "Where is  my parcel?",      # nothing joined: spacing and punctuation kept as heard
])
def test_other_sentences_are_left_alone(said):
    assert rejoin(said, MENU) == said


def test_a_sound_guess_next_to_an_answer_word_is_not_taken():
    """'my bill' sounds like 'mobile', but 'my' is a word of the answers: only two unknown halves are guessed."""
    intents = (Intent("lost", ("i lost my mobile",)),)
    assert rejoin("my bill is too high", intents) == "my bill is too high"
    assert rejoin("somebody stole my mow bile", intents) == "somebody stole my mobile"


def test_a_split_an_example_keeps_makes_no_words_of_its_halves():
    """An example written as a recognizer splits a word ("re peat that for me") does not make "re" and "peat" words of
    the answers, which would keep them apart; and "re" joins "peat", not "you" ("youre" is a word too)."""
    intents = (Intent("repeat", ("repeat", "could you say that again"),
                      ("re peat that for me", "youre breaking up say it again")),)
    assert rejoin("could you re peat the options", intents) == "could you repeat the options"
    assert rejoin("youre very quiet", intents) == "youre very quiet"


def test_rank_hears_the_joined_word_and_can_be_switched_off(tmp_path, monkeypatch):
    """At a flow's menu, "i need to re turn this blender" is taken as returns by its words; without the rejoin the
    sound-alike matcher hears neither "re" nor "turn" as the choice's phrase."""
    path = tmp_path / "flow.yaml"
    path.write_text(textwrap.dedent("""
        language: en-US
        start: main
        steps:
          main:
            ask: Returns or tracking?
            choices:
              returns: {say: ["return [an item]", "[i want a] refund"], goto: done}
              track: {say: ["track [my] order", "where is my parcel"], goto: done}
          done: {hangup: true}
        """), encoding="utf-8")
    step = tuple(c.intent for c in load_flow(path).steps["main"].choices)
    joined = understand.rank("i need to re turn this blender", step, meaning=False)
    assert joined[0].name == "returns" and joined[0].words == 1.0
    monkeypatch.setattr(understand, "REJOIN", False)
    split = understand.rank("i need to re turn this blender", step, meaning=False)
    assert not split or split[0].words < 1.0
