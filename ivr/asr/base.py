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
    # how much the engine doubts these words (whisper: a low mean token probability, as for speech in another language
    # written as English words): 0 not; ivr.events.DOUBTFUL an answer they name is offered ("did you mean"), not
    # taken, unless said whole word for word; VERY_DOUBTFUL offered even then (ivr.flow.listening)
    doubt: int = 0
    # where the recognizer's time went (ms: wait for a model copy, decode; the window): into the trace's timing
    timing: dict = field(default_factory=dict, compare=False, hash=False)


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


class BufferedSession:
    """A session that keeps the utterance's audio and decodes it whole when asked (whisper and the
    language-menu recognizer alike); subclasses say how in `peek`."""

    def __init__(self, model, phrases: tuple[str, ...]) -> None:
        self._model = model
        self._phrases = phrases
        self._chunks: list[np.ndarray] = []

    def feed(self, pcm: np.ndarray) -> str | None:
        self._chunks.append(pcm)
        return None

    def peek(self) -> Transcript:
        raise NotImplementedError

    def finish(self) -> Transcript:
        return self.peek()

    def fork(self):
        """A copy holding the audio so far: decoded in the background while this one keeps buffering."""
        other = type(self)(self._model, self._phrases)
        other._chunks = list(self._chunks)
        return other

    def _audio(self) -> np.ndarray:
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
