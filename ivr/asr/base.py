"""The ASR interface: a shared model, and a per-utterance session.

A model is loaded once per process and shared by every call; a session decodes one
utterance. Session methods block (they run the decoder) and are called from worker
threads, never on the event loop.
"""

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start_s: float
    end_s: float
    confidence: float = 1.0


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    confidence: float = 0.0
    alternatives: tuple[str, ...] = ()
    words: tuple[Word, ...] = field(default=())


class AsrSession(Protocol):
    def feed(self, pcm: np.ndarray) -> str | None:
        """Take 16 kHz int16 audio; return the current partial text if the engine streams."""
        ...

    def peek(self) -> Transcript:
        """Best hypothesis for the audio so far, without ending the utterance."""
        ...

    def finish(self) -> Transcript:
        """End the utterance and return the final result."""
        ...


class AsrModel(Protocol):
    name: str           # e.g. "whisper:tiny.en", "vosk:vosk-model-small-ko"
    language: str       # BCP-47-ish, e.g. "en", "ko"
    streams_partials: bool

    def session(self, phrases: tuple[str, ...] = ()) -> AsrSession:
        """Start an utterance; `phrases` are what the current step expects (hints/grammar)."""
        ...
