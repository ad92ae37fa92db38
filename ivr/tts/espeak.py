"""eSpeak NG: robotic but tiny, offline, and speaks Mandarin and ~100 languages.

Each synthesis runs the `espeak-ng` program in a child process (text on stdin, a WAV file out,
read back with `wavio.read_audio`), not libespeak-ng inside the service: that library is one
global synthesizer per process (every voice behind one lock), and a crash in it (seen once, a
segfault on a call's prompt thread) took the whole service down. The child costs ~5 ms a
prompt over rendering in-process, and four prompts at once come out sooner than through the one
locked engine (scripts/bench_tts.py, docs/BENCHMARKS.md); prompts are cached (`tts/cache.py`),
and a synthesizer that crashes or writes nothing is run again, then reported as a UserError.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from ivr.errors import UserError

INSTALL_HINT = "apt-get install espeak-ng"
PROGRAM = "espeak-ng"
TIMEOUT_S = 30.0      # a prompt is a few seconds of speech; espeak-ng renders it in milliseconds
ATTEMPTS = 3          # a child that crashed or wrote no audio is run again, then reported

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

_OTHER_LANGUAGE = re.compile(r"\(([^\s()]+)\s+\d+\)")


def _program() -> str:
    path = shutil.which(PROGRAM)
    if path is None:
        raise UserError(f"{PROGRAM} is not installed (the espeak TTS engine runs it)", INSTALL_HINT)
    return path


def installed_voices() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(id, languages) of every installed voice; ids look like "gmw/en-us", "sit/cmn" (lowercase),
    languages like ("cmn", "zh-cmn", "zh")."""
    return tuple((vid.lower(), langs) for vid, langs in _voice_table())


@functools.lru_cache(maxsize=1)
def _voice_table() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`espeak-ng --voices` as (voice file as espeak-ng spells it, languages) pairs."""
    try:
        out = subprocess.run([_program(), "--voices"], capture_output=True, text=True, check=True,
                             timeout=TIMEOUT_S).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise UserError(f"cannot list {PROGRAM}'s voices: {exc}", INSTALL_HINT) from exc
    voices = []
    for line in out.splitlines()[1:]:  # header: Pty Language Age/Gender VoiceName File Other Languages
        fields = line.split()
        if len(fields) < 5:
            continue
        language, file_id = fields[1].lower(), fields[4]
        others = _OTHER_LANGUAGE.findall(" ".join(fields[5:]))
        voices.append((file_id, (language, *(o.lower() for o in others))))
    if not voices:
        raise UserError(f"{PROGRAM} lists no voices", INSTALL_HINT)
    return tuple(voices)


def resolve_voice(voice: str, available) -> str:
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
        self.voice_id = resolve_voice(voice, installed_voices())
        self._voice_file = {vid.lower(): vid for vid, _ in _voice_table()}[self.voice_id]
        self.rate_wpm = int(rate_wpm)
        self.name = f"espeak:{self.voice_id.rsplit('/', 1)[-1]}"
        self.rate_hz = 0
        with tempfile.TemporaryDirectory(prefix="ivr-espeak-") as tmp:
            path = Path(tmp) / "probe.wav"
            self._render(path, "hello")
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
            self._render(path, text)
            return read_audio(path, rate_hz=self.rate_hz)
        finally:
            path.unlink(missing_ok=True)

    def _render(self, path: Path, text: str) -> None:
        """Runs espeak-ng on `text` (stdin, UTF-8) into the WAV `path`; retries a crash or an
        empty file, then raises UserError saying what the last attempt did."""
        cmd = [_program(), "-b", "1", "-v", self._voice_file, "-s", str(self.rate_wpm), "-w", str(path),
               "--stdin"]
        problem = ""
        for _attempt in range(ATTEMPTS):
            try:
                done = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True,
                                      timeout=TIMEOUT_S, check=False)
            except subprocess.TimeoutExpired:
                problem = f"did not finish in {TIMEOUT_S:.0f} s"
                continue
            except OSError as exc:
                raise UserError(f"cannot run {PROGRAM}: {exc}", INSTALL_HINT) from exc
            if done.returncode != 0:
                err = done.stderr.decode("utf-8", "replace").strip()
                problem = (f"was killed by signal {-done.returncode}" if done.returncode < 0
                           else f"exited with status {done.returncode}") + (f": {err}" if err else "")
                continue
            if _frames(path) > 0:
                return
            problem = "wrote no audio"
        raise UserError(f"espeak-ng {problem} for {text[:40]!r} (voice {self.voice_id})", INSTALL_HINT)

    def __repr__(self) -> str:
        return f"EspeakTts({self.name!r}, rate_wpm={self.rate_wpm}, rate_hz={self.rate_hz})"


def _frames(path: Path) -> int:
    try:
        with wave.open(str(path), "rb") as wav:
            return wav.getnframes()
    except (OSError, EOFError, wave.Error):
        return 0
