"""Mandarin words the recognizer wrote with same-sounding characters, put right (ivr.flow.homophones)."""

import pytest

from ivr.flow import homophones, understand
from ivr.flow.nlu import Intent
from tests.nlu_bench import tagged_step


def retail_menu() -> tuple[Intent, ...]:
    """The Mandarin retail menu of the evaluation's hotline (ops' phrases, the choices tagged with the intent
    library), the globals after it."""
    step, globals_ = tagged_step("zh", "retail")
    return (*step, *globals_)


@pytest.mark.parametrize("said, meant", [
    ("我的发漂有问题", "我的发票有问题"),     # fa piao: 发票 (invoice), as the answers write it
    ("发飘开错了", "发票开错了"),             # 发飘 is a word too, but one the answers hardly use
    ("我要查定单", "我要查订单"),              # 定单, a variant, written as the answers write it
    ("我买的电视机能退吗", "我买的电视机能退吗"),  # a longer word is kept
    ("你是真人还是机器", "你是真人还是机器"),      # a word said right is kept
    ("几时会到啊", "几时会到啊"),                # 会 is a function character: not 回到
    ("我手机卡丢了要补一张", "我手机卡丢了要补一张"),  # nor 补 -> 不
    ("where is my order", "where is my order"),
])
def test_a_word_written_with_same_sounding_characters_is_put_right(said, meant):
    assert homophones.fix(said, retail_menu()) == meant


def test_without_the_lexicon_nothing_changes(monkeypatch):
    monkeypatch.setattr(homophones, "_lexicon", lambda: frozenset())
    assert homophones.fix("我的发漂有问题", retail_menu()) == "我的发漂有问题"


def test_the_respelled_sentence_is_matched_by_its_meaning():
    """我的发漂有问题 was nearer to "where is my order" than to billing before (0.54, no match)."""
    menu = retail_menu()
    top = understand.rank("我的发漂有问题", menu[:5], menu[5:])[0]
    assert top.name == "billing" and top.score >= 0.8, top


def test_an_english_step_is_untouched():
    step = (Intent("billing", ("billing question",)), Intent("track_order", ("track my order",)))
    assert understand.heard_as("发漂", step) == "发漂"


def test_a_character_the_answers_use_is_not_respelled():
    """剩几 (how many left) sounds like 升级 (upgrade), but the answers say 剩 more often than 升级."""
    step, globals_ = tagged_step("zh", "telecom")
    assert homophones.fix("帮我看看流量剩几多", (*step, *globals_)) == "帮我看看流量剩几多"


@pytest.mark.parametrize("said, meant", [
    ("我要冲值 手机快停机了", "我要充值 手机快停机了"),   # 冲值 sounds like the phrase 充值 and is no word
    ("冲流量", "充流量"),
    ("重话费", "充话费"),                               # 重: zhong, and chong too
    ("帮我交话费", "帮我交话费"),                        # a phrase said right is kept
    ("我要重新开始", "我要重新开始"),
    ("套餐升级一下 送外卖流量不够", "套餐升级一下 送外卖流量不够"),   # 外卖 (takeaway): no 买流量 (buy data)
])
def test_a_run_said_like_an_answers_phrase_is_written_as_the_phrase(said, meant):
    """The answers write 充 dozens of times but keep a recognizer's 冲 in a few examples, which stops the pair rule;
    a run said like one of the answers' own phrases, no word itself, is written as the phrase."""
    step, globals_ = tagged_step("zh", "telecom")
    assert homophones.fix(said, (*step, *globals_)) == meant
