"""A caller speaking another language than the step's: a defined no-match, never an answer taken."""

import pytest

from ivr.flow import foreign, understand
from ivr.flow.nlu import Intent

MENU = (Intent("track", ("track my order", "where is my order")), Intent("returns", ("return an item", "refund")))
MENU_ZH = (Intent("track", ("查订单", "我的快递到哪了")), Intent("returns", ("退货", "退款")))


@pytest.mark.parametrize("text, found", [
    ("je veux retourner un article", "fr"), ("hola quiero hablar con alguien", "es"),
    ("Ich möchte meine Rechnung sehen.", "de"), ("我想查一下我的订单", "zh"),
])
def test_sentences_in_other_languages_are_found(text, found):
    assert foreign.other_language(text, "en") == found


@pytest.mark.parametrize("text", [
    "wear is my order", "kansel my order", "i want to we turn this blender", "yeah", "ok ta ra",
    "the net is not coming since two days", "um uh", "where is my parcel from last week", "",
])
def test_english_with_recognition_errors_is_english(text):
    assert foreign.other_language(text, "en") is None


def test_at_a_mandarin_step_a_latin_sentence_is_foreign_but_a_latin_word_is_not():
    assert foreign.other_language("sorry i don't speak chinese", "zh") == "latin"
    assert foreign.other_language("4G突然用不了了", "zh") is None
    assert foreign.other_language("ok", "zh") is None


def test_the_matcher_takes_nothing_said_in_another_language():
    """multilingual e5 understands the French request; the step must not take it (nor offer it)."""
    ranked = understand.rank("je veux retourner un article s'il vous plait", MENU)
    assert ranked and ranked[0].name == "returns" and ranked[0].score < 0.6
    assert ranked[0].signal == "other language (fr)"
    assert understand.rank("sorry i don't speak chinese at all", MENU_ZH)[0].score < 0.6
    assert understand.rank("i want to return an item", MENU)[0].score >= 0.8
