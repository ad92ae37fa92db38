"""English service words in a Mandarin sentence are heard in Mandarin (ivr.flow.codemix)."""

import pytest

from ivr.flow import codemix, understand
from ivr.flow.nlu import Intent


@pytest.mark.parametrize("said, heard", [
    ("我要cancel这个order", "我要取消这个订单"),
    ("这个bill我看不懂多charge了", "这个账单我看不懂多扣费了"),
    ("top up一下 100 块", "充值一下 100 块"),             # a phrase before its words
    ("lah我的Order几时会到啊", "我的订单几时会到啊"),        # a particle dropped, any case
    ("家里 wifi 一直断断续续的", "家里 wifi 一直断断续续的"),  # a word not in the glossary stays
    ("where is my order", "where is my order"),           # an English sentence stays English
    ("查订单", "查订单"),
    ("我的orders呢 cancellation呢", "我的订单呢 cancellation呢"),  # whole words only
])
def test_english_service_words_are_said_in_mandarin(said, heard):
    assert codemix.to_mandarin(said) == heard


STEP = (Intent("cancel_order", ("取消订单", "把订单取消", "不要了")),
        Intent("track_order", ("查订单", "我的快递到哪了", "订单状态")),
        Intent("billing", ("账单", "扣费不对", "发票")))


@pytest.mark.parametrize("said, meant", [("我要cancel这个order", "cancel_order"),
                                         ("帮我check一下我的order", "track_order"),
                                         ("这个bill我看不懂多charge了", "billing")])
def test_a_mandarin_step_takes_a_code_mixed_request(said, meant):
    top = understand.rank(said, STEP)[0]
    assert top.name == meant and top.score >= 0.8


def test_an_english_sentence_on_a_mandarin_step_is_still_another_language():
    top = understand.rank("where is my order", STEP)[0]
    assert top.score < 0.6 and "other language" in top.signal
