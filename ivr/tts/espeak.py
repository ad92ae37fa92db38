"""eSpeak NG through pyttsx3: robotic but tiny, offline, and speaks Mandarin and ~100 languages.

pyttsx3 drives libespeak-ng, which is one global synthesizer per process, and
`pyttsx3.init("espeak")` hands every caller the same engine object. So every `EspeakTts`
instance shares that engine: a process-wide lock serializes synthesis, and each instance sets
its own voice and speaking rate on the engine before every call. Audio goes to a temporary WAV
(`save_to_file` + `runAndWait`) and is read back with `wavio.read_audio`.
"""

from __future__ import annotations

import os
import tempfile
import threading
import wave
from pathlib import Path

import numpy as np

from ivr.errors import UserError

INSTALL_HINT = "apt-get install espeak-ng"

# Friendly language names -> espeak-ng language/voice names.
_ALIASES = {
    "zh": "cmn",
    "zh-cn": "cmn",
    "zh-hans": "cmn",
    "zh-hans-cn": "cmn",
    "zh-tw": "cmn",
    "zh-hant": "cmn",
    "cmn": "cmn",
    "cmn-cn": "cmn",
    "mandarin": "cmn",
    "chinese": "cmn",
    "en": "en-us",
    "en-us": "en-us",
    "english": "en-us",
    "en-gb": "en-gb",
    "en-uk": "en-gb",
}

# libespeak-ng is process-global and pyttsx3's run loop is not re-entrant.
_LOCK = threading.Lock()
EMPTY_RETRIES = 3


def _init_engine():
    """The shared pyttsx3 espeak engine, or UserError if espeak-ng is not installed."""
    try:
        import pyttsx3

        engine = pyttsx3.init("espeak")
    except (ImportError, OSError, RuntimeError, AttributeError) as exc:
        raise UserError(f"cannot start espeak-ng through pyttsx3: {exc}", INSTALL_HINT) from exc
    _quiet_driver()
    return engine


def _quiet_driver() -> None:
    """pyttsx3's espeak driver prints "Audio saved to ..." on every save; mute just that module."""
    try:
        from pyttsx3.drivers import espeak as driver
    except ImportError:
        return
    driver.print = lambda *args, **kwargs: None  # shadows the builtin in that module only


def _voice_ids(engine) -> list[tuple[str, list[str]]]:
    """(id, languages) of every installed voice; ids look like "gmw/en-us", "sit/cmn"."""
    voices = []
    for v in engine.getProperty("voices"):
        langs = [str(lang).lower() for lang in (getattr(v, "languages", None) or [])]
        voices.append((str(v.id).lower(), langs))
    return voices


def resolve_voice(voice: str, available: list[tuple[str, list[str]]]) -> str:
    """Map "en-US", "zh-CN", "mandarin", "cmn", "sit/cmn"... to an installed voice id."""
    wanted = voice.strip().lower().replace("_", "-")
    wanted = _ALIASES.get(wanted, wanted)
    for vid, _ in available:
        if vid == wanted:
            return vid
    for vid, _ in available:
        if vid.rsplit("/", 1)[-1] == wanted:
            return vid
    for vid, langs in available:
        if wanted in langs:
            return vid
    base = wanted.split("-", 1)[0]  # "fr-ca" -> any "fr" voice
    for vid, langs in available:
        if vid.rsplit("/", 1)[-1] == base or base in langs:
            return vid
    examples = ", ".join(sorted({vid.rsplit("/", 1)[-1] for vid, _ in available})[:20])
    raise UserError(
        f"espeak has no voice for {voice!r}",
        f"use a language like en-us, cmn (Mandarin), de, fr; installed include: {examples}, ...",
    )


class EspeakTts:
    """An espeak-ng voice, e.g. EspeakTts("en-us") or EspeakTts("zh-CN") (Mandarin)."""

    def __init__(self, voice: str = "en-us", rate_wpm: int = 160) -> None:
        self._engine = _init_engine()  # keep a reference: pyttsx3 caches engines weakly
        with _LOCK:
            self.voice_id = resolve_voice(voice, _voice_ids(self._engine))
        self.rate_wpm = int(rate_wpm)
        self.name = f"espeak:{self.voice_id.rsplit('/', 1)[-1]}"
        self.rate_hz = 0
        with tempfile.TemporaryDirectory(prefix="ivr-espeak-") as tmp:
            path = Path(tmp) / "probe.wav"
            with _LOCK:
                self._synthesize_to(path, "hello")
            with wave.open(str(path), "rb") as wav:
                self.rate_hz = wav.getframerate()
        if self.rate_hz <= 0:
            raise UserError("espeak-ng produced no audio", INSTALL_HINT)

    def synthesize(self, text: str) -> np.ndarray:
        """Mono int16 at `rate_hz` (22050 Hz with espeak-ng); empty for text with nothing to say."""
        if not text or not text.strip():
            return np.zeros(0, dtype=np.int16)
        from ivr.audio.wavio import read_audio

        fd, name = tempfile.mkstemp(prefix="ivr-espeak-", suffix=".wav")
        os.close(fd)
        path = Path(name)
        try:
            # pyttsx3's espeak driver now and then writes a WAV with no frames for real text
            # (a race in its callback buffering, seen under load): try again, never go silent.
            for _attempt in range(EMPTY_RETRIES + 1):
                with _LOCK:
                    self._synthesize_to(path, text)
                with wave.open(str(path), "rb") as wav:
                    if wav.getnframes() > 0:
                        return read_audio(path, rate_hz=self.rate_hz)
            raise UserError(f"espeak-ng produced no audio for {text[:40]!r}", INSTALL_HINT)
        finally:
            path.unlink(missing_ok=True)

    def _synthesize_to(self, path: Path, text: str) -> None:
        """Caller holds _LOCK. Sets this instance's voice and rate, then renders `text`."""
        engine = self._engine
        try:
            engine.setProperty("voice", self.voice_id)
            engine.setProperty("rate", self.rate_wpm)
            engine.save_to_file(text, str(path))
            engine.runAndWait()
        except (RuntimeError, ValueError, OSError) as exc:
            raise UserError(f"espeak-ng failed to synthesize: {exc}", INSTALL_HINT) from exc
        if not path.is_file() or path.stat().st_size == 0:
            raise UserError(f"espeak-ng wrote no audio for {text[:40]!r}", INSTALL_HINT)

    def __repr__(self) -> str:
        return f"EspeakTts({self.name!r}, rate_wpm={self.rate_wpm}, rate_hz={self.rate_hz})"
