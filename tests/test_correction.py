"""A caller who corrects themselves is taken at what follows the correction (ivr.flow.correction)."""

import pytest

from ivr.flow import builtins, correction, understand
from ivr.flow.nlu import Intent

SAY = {"en": {"track_order": ("track my order", "where is my order"), "returns": ("returns", "return an item"),
              "cancel_order": ("cancel my order", "cancel an order"), "billing": ("billing", "my bill"),
              "store_hours": ("opening hours",)},
       "zh": {"track_order": ("查订单", "我的快递到哪了"), "returns": ("退货", "我要退货"),
              "cancel_order": ("取消订单",), "billing": ("账单", "扣费不对"), "store_hours": ("营业时间",)},
       "telecom": {"check_balance": ("check my balance", "balance"), "top_up": ("top up", "add credit"),
                   "report_outage": ("no signal",), "change_plan": ("change my plan",), "lost_sim": ("lost my sim",)}}


def menu(lang: str, domain: str = "retail"):
    """A shop's (or in English a mobile operator's) menu as ops write it (a few phrases), its answers tagged with the
    intent library, which did not hear test16 (whose writer wrote the English sentence below)."""
    shelf, known = builtins.library(lang, leave_out=("test16",)), builtins.load(lang)
    said = SAY["telecom" if domain == "telecom" else lang]
    step = tuple(builtins.merge(Intent(n, say), shelf[f"{domain}.{n}"]) for n, say in said.items())
    return step, tuple(builtins.merge(Intent(n, ()), known[n]) for n in ("agent", "repeat", "goodbye", "main_menu"))


def yes_no(lang: str):
    known = builtins.load(lang)
    return tuple(builtins.merge(Intent(n, ()), known[n]) for n in ("yes", "no")), ()


@pytest.mark.parametrize("said, marker, tail", [
    ("returns no wait cancel it", "no wait", "cancel it"),
    ("no wait yes yes thats right", "no wait", "yes yes thats right"),
    ("billing sorry i mean opening hours", "sorry i mean", "opening hours"),
    ("我要退货 不对 我是想问我那个包裹咋还没到", "不对", "我是想问我那个包裹咋还没到"),
    ("查余额 不是 我要交话费", "不是", "我要交话费"),
    ("Top up. No, wait, how much have I got left?", "no wait", "how much have i got left"),   # as whisper writes it
    ("我要退货，不对，我是想问包裹咋还没到。", "不对", "我是想问包裹咋还没到"),
    ("退货 不是退货 是你们多扣了我的钱", "不是", "你们多扣了我的钱"),      # not X, (it) is Y: Y
    ("不是这个 是我的话费", "不是", "我的话费"),
    ("不是 我的手机是坏了", "不是", "我的手机是坏了"),   # that 是 is the sentence's own
])
def test_what_follows_the_last_correction(said, marker, tail):
    assert correction.after(said) == (marker, tail)


@pytest.mark.parametrize("said", ["no", "不是", "where is my parcel", "a refund i mean take them back", "no wait um",
                                  "我不对劲", "不对", "no it's not that eh"])   # a tag ("eh") names nothing
def test_no_correction_or_nothing_after_it(said):
    assert correction.after(said) is None


@pytest.mark.parametrize("lang, domain, said, first, meant", [
    ("en", "telecom", "top up no wait first tell me how much i've got left on it", "top_up", "check_balance"),
    ("zh", "retail", "我要退货 不对 我是想问我那个包裹咋还没到", "returns", "track_order"),
])
def test_a_menu_takes_what_the_caller_corrected_to(monkeypatch, lang, domain, said, first, meant):
    step, globals_ = menu(lang, domain)
    top = understand.rank(said, step, globals_)[0]
    assert top.name == meant and top.score >= 0.8 and "after the correction" in top.signal
    monkeypatch.setattr(understand, "CORRECTIONS", False)
    whole = understand.rank(said, step, globals_)[0]
    assert whole.name == first or whole.score < 0.8, whole      # the whole sentence: the first answer, or unsure


def test_at_a_yes_no_step_a_correction_leads_only_to_another_request():
    step, globals_ = yes_no("zh")
    globals_ = menu("zh")[1]
    top = understand.rank("不是我要转人工", step, globals_)[0]
    assert top.name == "agent" and "after the correction '不是'" in top.signal
    top = understand.rank("不是 我要查余额", step, globals_)[0]      # 我要 is a yes: a correction never leads to one
    assert top.name == "no" and "correction" not in top.signal


@pytest.mark.parametrize("said", ["no not that at all sorry", "definitely not that one sorry"])
def test_a_sure_no_then_no_request_said_word_for_word_stays_a_no(said):
    """"not that" goes on with the no; "at all sorry" was taken as a repeat by its meaning (0.81). A request said word
    for word after the marker still switches (不是我要转人工, above)."""
    step, globals_ = yes_no("en")[0], menu("en")[1]
    top = understand.rank(said, step, globals_)[0]
    assert top.name == "no" and top.score >= 0.8, top


def test_a_tail_that_only_names_the_request_again_corrects_a_detail():
    """"no wait two orders" corrects how many: its only answer word, "order", was said before the marker, so the
    request the whole sentence took stands; a tail with a word of its own ("cancel it") still switches."""
    ranked = [understand.Candidate("cancel_order", 0.95, "meaning", "step")]
    tail = [understand.Candidate("track_order", 0.83, "meaning", "step")]
    intents = menu("en")[0]
    kept = correction.corrected("i need to cancel an order no wait two orders", ranked, lambda _: tail,
                                repeated=lambda head, t, name: understand._repeated(head, t, name, intents))
    assert kept == ranked
    assert understand._repeated("i need to cancel an order", "two orders both from monday", "track_order", intents)
    assert not understand._repeated("returns", "cancel it", "cancel_order", intents)
