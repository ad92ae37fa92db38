"""Sentence templates, normalisation and tokens: the text side of matching, without models."""

import pytest

from ivr.flow.patterns import MAX_EXPANSIONS, TemplateError, expand, normalize, tokens

# ---- expand -------------------------------------------------------------------------

EXPANSIONS = [
    # plain text, normalised
    ("agent", ["agent"]),
    ("  Talk   to Someone ", ["talk to someone"]),
    ("that's all", ["thats all"]),
    # choices, in order
    ("(track|trace) order", ["track order", "trace order"]),
    ("(human|real person|representative)", ["human", "real person", "representative"]),
    # optional words: without first, then with
    ("repeat [that]", ["repeat", "repeat that"]),
    ("[what are your] opening hours", ["opening hours", "what are your opening hours"]),
    ("(track|trace) [my] order", ["track order", "track my order", "trace order", "trace my order"]),
    # nested groups
    ("a [b [c]] d", ["a d", "a b d", "a b c d"]),
    ("(a (b|c)|d)", ["a b", "a c", "d"]),
    ("say [(that|it)] again", ["say again", "say that again", "say it again"]),
    ("[(please|kindly)] help", ["help", "please help", "kindly help"]),
    # a group glued to a word is a suffix/prefix, not a new word
    ("order[s]", ["order", "orders"]),
    ("track[ing] [my] order[s]", [
        "track order", "track orders", "track my order", "track my orders",
        "tracking order", "tracking orders", "tracking my order", "tracking my orders",
    ]),
    ("(un|re)do", ["undo", "redo"]),
    # Mandarin, written without spaces
    ("查(订单|快递)", ["查订单", "查快递"]),
    ("[我要]转人工", ["转人工", "我要转人工"]),
    ("人工[客服]", ["人工", "人工客服"]),
    # duplicates removed, first kept; empty alternatives vanish
    ("(yes|yes)", ["yes"]),
    ("(Yes|YES|yes!)", ["yes"]),
    ("(a|)", ["a"]),
    ("[a]", ["a"]),
    ("()", []),
    ("", []),
    ("[x] [y]", ["y", "x", "x y"]),
    # punctuation inside templates is normalised away
    ("Where is my (order|package)?", ["where is my order", "where is my package"]),
]


@pytest.mark.parametrize(("template", "phrases"), EXPANSIONS)
def test_expand(template, phrases):
    assert expand(template) == phrases


def test_expand_many_choices_stays_under_the_limit():
    # 2**9 = 512 phrases is allowed, all distinct
    phrases = expand("(a|b)" * 9)
    assert len(phrases) == MAX_EXPANSIONS == 512
    assert len(set(phrases)) == 512
    assert phrases[0] == "aaaaaaaaa" and phrases[-1] == "bbbbbbbbb"


# ---- template errors ----------------------------------------------------------------

TEMPLATE_ERRORS = [
    ("(track order", "missing ')'"),
    ("[my order", "missing ']'"),
    ("(a|(b|c)", "missing ')'"),
    ("track order)", "unexpected ')' at column 12"),
    ("track] order", "unexpected ']' at column 6"),
    ("yes|no", "unexpected '|' at column 4"),
    ("(track|trace]", "']' closes a group opened with the other bracket"),
    ("[my)", "')' closes a group opened with the other bracket"),
    ("(a [b) c]", "')' closes a group opened with the other bracket"),
    ("(a|b)" * 10, f"more than {MAX_EXPANSIONS} phrases"),
    ("[a] " * 10, f"more than {MAX_EXPANSIONS} phrases"),
]


@pytest.mark.parametrize(("template", "message"), TEMPLATE_ERRORS)
def test_template_errors(template, message):
    with pytest.raises(TemplateError) as info:
        expand(template)
    assert message in str(info.value)


def test_template_error_is_a_value_error():
    assert issubclass(TemplateError, ValueError)


# ---- normalize ----------------------------------------------------------------------

NORMALIZED = [
    ("Hello, World!", "hello world"),
    ("  many   spaces\tand\nlines ", "many spaces and lines"),
    ("TRACK My Order.", "track my order"),
    ("What's up?", "whats up"),
    ("That’s all", "thats all"),          # typographic apostrophe reads like ASCII
    ("I'd like... to -- go", "id like to go"),
    ("e-mail", "e mail"),
    ("ＨＥＬＬＯ　ｗｏｒｌｄ！", "hello world"),   # full-width letters, space and '!'
    ("ｏｒｄｅｒ　１２３", "order 123"),
    ("café", "café"),                      # accents are letters, kept
    ("你好，世界！", "你好 世界"),             # full-width Chinese punctuation
    ("查订单。", "查订单"),
    ("", ""),
    ("?!...", ""),
]


@pytest.mark.parametrize(("text", "expected"), NORMALIZED)
def test_normalize(text, expected):
    assert normalize(text) == expected


# ---- tokens -------------------------------------------------------------------------

TOKENS = [
    ("Track my order!", ["track", "my", "order"]),
    ("查订单", ["查", "订", "单"]),
    ("我要 转人工。", ["我", "要", "转", "人", "工"]),
    ("查一下my订单 please", ["查", "一", "下", "my", "订", "单", "please"]),
    ("こんにちは", ["こ", "ん", "に", "ち", "は"]),
    ("안녕", ["안", "녕"]),
    ("ＯＲＤＥＲ１", ["order1"]),
    ("", []),
    ("...", []),
]


@pytest.mark.parametrize(("text", "expected"), TOKENS)
def test_tokens(text, expected):
    assert tokens(text) == expected


@pytest.mark.parametrize("template", ["track (my)? order", "track my order [please]?", "colou?r", "[my]? order"])
def test_regex_question_marks_are_refused(template):
    with pytest.raises(TemplateError, match=r"not regular expressions.*\[my\]"):
        expand(template)


@pytest.mark.parametrize(("template", "phrases"), [
    ("what are your hours?", ["what are your hours"]), ("你们几点开门？", ["你们几点开门"]),
    ("is it (open|closed)?", ["is it open", "is it closed"]),
])
def test_a_question_mark_ending_a_question_is_punctuation(template, phrases):
    assert expand(template) == phrases
