"""faster-whisper tiny.en (the bundled model) on phone-line audio synthesized with piper."""

import numpy as np
import pytest

from ivr.asr.whisper import collapse_repeats, has_repeat
from ivr.asr.zh_text import clean_zh, zh_prompt
from ivr.flow.patterns import normalize


def decode(asr, audio, phrases=()):
    session = asr.session(phrases)
    for i in range(0, len(audio), 1600):
        assert session.feed(audio[i : i + 1600]) is None   # no partials from whisper
    return session.finish()


@pytest.mark.parametrize("text", ["where is my order", "main menu", "opening hours", "agent",
                                  "no thanks goodbye", "when are you open on saturday"])
def test_recognises_phone_speech(whisper_asr, line_audio, text):
    result = decode(whisper_asr, line_audio([("pause", 200), ("say", text), ("pause", 300)]))
    assert normalize(result.text) == normalize(text)
    assert 0.3 < result.confidence <= 1.0


def test_long_sentence_mostly_right(whisper_asr, line_audio):
    # tiny.en drops the "to" here: a real recognition error, so only the content words count.
    text = "I would like to speak to a real person please"
    result = decode(whisper_asr, line_audio([("pause", 200), ("say", text), ("pause", 300)]))
    assert "real person please" in normalize(result.text)


def test_digits_come_out_as_digits(whisper_asr, line_audio):
    result = decode(whisper_asr, line_audio([("say", "my order number is four eight one two")]))
    assert "4812" in result.text.replace(" ", "")


def test_silence_and_line_noise_give_nothing(whisper_asr):
    rng = np.random.default_rng(3)
    assert decode(whisper_asr, np.zeros(16000, np.int16)).text == ""
    hiss = rng.normal(0, 30, 32000).astype(np.int16)
    assert decode(whisper_asr, hiss).text == ""
    assert decode(whisper_asr, hiss, phrases=("track my order", "agent")).text == ""


def test_peek_equals_finish(whisper_asr, line_audio):
    session = whisper_asr.session()
    session.feed(line_audio([("say", "opening hours")]))
    assert session.peek().text == session.finish().text


def test_a_burst_decoded_together_gets_each_callers_own_words(whisper_asr, line_audio):
    """transcribe_many (the recognizer queue's batch): the short utterances of one step in one pass, each with the
    words transcribe gives it alone; an empty one, a long one and another step's are decoded alone."""
    phrases = ("track my order", "main menu", "opening hours", "agent", "goodbye", "repeat that")
    said = ["track my order", "main menu", "opening hours", "goodbye", "no", "yes yes that's right"]
    audio = [line_audio([("pause", 200), ("say", text), ("pause", 300)]) for text in said]
    long_text = ". ".join(["I want to return a pair of shoes I bought last week"] * 4)
    items = [(a, phrases) for a in audio] + [(np.zeros(0, np.int16), phrases),
                                             (line_audio([("say", long_text)]), phrases),
                                             (audio[0], ("where is my parcel",))]
    assert len(items[-2][0]) / 16000 > 8   # faster-whisper's own decoder, alone
    keys = [whisper_asr.batch_key(*item) for item in items]
    assert len(set(keys[:6])) == 1 and keys[6] is None and keys[7] is None and keys[8] not in (keys[0], None)
    together = whisper_asr.transcribe_many(items)
    alone = [whisper_asr.transcribe(*item) for item in items]
    assert [t.text for t in together] == [t.text for t in alone]
    assert [normalize(together[n].text) for n in (0, 1, 3)] == ["track my order", "main menu", "goodbye"]
    assert all(t.timing["asr_batch"] == 6 for t in together[:6])
    assert all("asr_batch" not in t.timing for t in together[6:])


def test_long_utterance_uses_the_full_decoder(whisper_asr, line_audio):
    long_text = ". ".join(["I want to return a pair of shoes I bought last week"] * 4)
    audio = line_audio([("say", long_text)])
    audio = np.concatenate([audio, np.zeros(max(0, 16000 * 31 - len(audio)), np.int16)])
    result = decode(whisper_asr, audio)
    assert "return a pair of shoes" in normalize(result.text)


@pytest.mark.parametrize(("looped", "hit_cap", "expected"), [
    ("Repeat that. Repeat that. Repeat", False, "Repeat that."),
    ("Opening hours. Opening hours. Opening", False, "Opening hours."),
    ("agent agent agent agent", True, "agent"),
    ("1 2 3 4 5 6", False, "1 2 3 4 5 6"),
    ("1 1", False, "1 1"),                 # a caller saying "one one"
    ("no no", False, "no no"),
    ("4 4 4", False, "4 4 4"),             # digits only collapse at the cap
    ("No thanks, goodbye.", False, "No thanks, goodbye."),
])
def test_collapse_repeats(looped, hit_cap, expected):
    assert collapse_repeats(looped, hit_cap) == expected


@pytest.mark.parametrize(("text", "repeats"), [
    ("Yes? Yes? Yes", True), ("one one", True), ("No thanks no thanks", True), ("好的好的", True),
    ("Press 0 for mailbox options. Press 0 for mailbox options. Press", True),
    ("Press 4 for the previous message. Press 4 for the", True),
    ("goodbye", False), ("where is my order", False), ("my order number is 4 8 1 5 1 6", False),
    ("是的", False), ("四八六六五一", False), ("Dial 2 if you wish. Dial 3 to send", False),
])
def test_has_repeat(text, repeats):
    assert has_repeat(text) is repeats


@pytest.mark.parametrize("text", ["goodbye", "yes", "no", "repeat that", "where is my order"])
def test_short_answers_are_not_doubled(whisper_asr, line_audio, text):
    """A short window made the decoder say these twice or more ("Goodbye. Goodbye. Goodbye.")."""
    result = decode(whisper_asr, line_audio([("pause", 300), ("say", text), ("pause", 600)]))
    words = normalize(result.text).split()
    assert not has_repeat(result.text) and len(words) <= len(text.split()), result.text


def test_a_real_one_one_is_kept(whisper_asr, line_audio):
    result = decode(whisper_asr, line_audio([("pause", 300), ("say", "one one"), ("pause", 600)]))
    assert result.text.replace("-", " ").replace(",", " ").lower().split()[:2] in (["1", "1"], ["one", "one"])


def test_mandarin_text_is_simplified_without_spaces_or_punctuation():
    assert clean_zh("請問，我的訂單 4 8 1,516 到哪了？") == "请问我的订单481516到哪了"
    assert clean_zh("VIP 會員。") == "VIP会员"
    assert clean_zh("我的订单 到哪了？", simplified=False) == "我的訂單到哪了"    # zh-TW flows


def test_mandarin_prompt_puts_the_steps_phrases_last_and_skips_single_characters():
    prompt = zh_prompt(("零", "一", "零一幺二两三四五六七八九", "人工", "再见"), 160)
    assert prompt.endswith("零一幺二两三四五六七八九，") and "零，" not in prompt and "人工" in prompt
    assert len(zh_prompt(tuple(f"选项{i}" for i in range(100)), 60)) <= 60
