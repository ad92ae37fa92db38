"""The Mandarin retail hotline by voice with a neural caller voice (Kokoro-82M speaking Mandarin,
tests/mandarin_kokoro.py): whole caller sentences espeak-ng cannot carry, through the 8 kHz line to
whisper base. Skipped, saying what to install, when the optional voice is absent."""

import pytest

from ivr.audio.resample import resample
from ivr.callgen import LINE_RATE_HZ, render
from tests import mandarin_kokoro
from tests.test_replay_retail_zh import order_by_voice

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kokoro_line_audio():
    if why := mandarin_kokoro.missing():
        pytest.skip(why)
    voice = mandarin_kokoro.KokoroMandarin()
    return lambda script: resample(render(script, voice), LINE_RATE_HZ, 16000)


def test_order_by_neural_voice_in_mandarin(kokoro_line_audio, whisper_base, zh_prompt_cache, tmp_path):
    order_by_voice(kokoro_line_audio, whisper_base, zh_prompt_cache, tmp_path, ask="我的快递到哪了",
                   number="六三六二零八", yes="对", done="没有了，谢谢",
                   confirmation="您的订单号是六 三 六 二 零 八，对吗？", carrier="FedEx")


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
