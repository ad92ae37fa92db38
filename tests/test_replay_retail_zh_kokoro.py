"""The Mandarin retail hotline by voice with a neural caller voice (Kokoro-82M speaking Mandarin,
tests/mandarin_kokoro.py): whole caller sentences espeak-ng cannot carry, through the 8 kHz line to
whisper base. Skipped, saying what to install, when the optional voice is absent."""

import pytest

from ivr.audio.resample import resample
from ivr.callgen import LINE_RATE_HZ, render
from tests import mandarin_kokoro
from tests.test_replay_retail_zh import replay, spoken

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kokoro_line_audio():
    if why := mandarin_kokoro.missing():
        pytest.skip(why)
    voice = mandarin_kokoro.KokoroMandarin()
    return lambda script: resample(render(script, voice), LINE_RATE_HZ, 16000)


def test_order_by_neural_voice_in_mandarin(kokoro_line_audio, whisper_base, zh_prompt_cache, tmp_path):
    caller = [("pause", 9000), ("say", "我的快递到哪了"),
              ("pause", 4000), ("say", "六三六二零八"),
              ("pause", 4000), ("say", "对"),
              ("pause", 12000), ("say", "没有了，谢谢"),
              ("pause", 4000)]
    trace = replay(kokoro_line_audio(caller), whisper_base, zh_prompt_cache, tmp_path)
    said = " ".join(s for t in trace.turns for s in t.said)
    assert trace.path == ["choose_language", "greet", "main", "track", "order/ask_number", "order/fetch",
                          "order/done", "shipped", "anything_else", "bye"], spoken(trace)
    assert "您的订单号是六 三 六 二 零 八，对吗？" in said
    assert "FedEx" in said                                       # the order service's answer
    assert trace.outcome.kind == "hangup"


def test_model_join_refuses_parts_that_do_not_match(tmp_path, monkeypatch):
    """A joined model whose sha256 differs from the one the runtime ships is never put in place."""
    if why := mandarin_kokoro.missing():
        pytest.skip(why)

    class WrongSha:
        def read_text(self):
            return "0" * 64

    real = mandarin_kokoro._data
    monkeypatch.setattr(mandarin_kokoro, "_data", lambda name: WrongSha() if name == "model.sha256" else real(name))
    with pytest.raises(RuntimeError, match="corrupt"):
        mandarin_kokoro.model_path(tmp_path)
    assert list((tmp_path / mandarin_kokoro.MODEL_NAME).iterdir()) == []
