"""Speech endpointing on webrtcvad: a small state machine clocked by 20 ms frames.

The endpointer decides when a caller utterance starts and ends. It knows nothing about
ASR or flows; the call loop may end a turn early (`force_end`) when the words heard so far
already match an answer the step expects (grammar-aware endpointing).
"""

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import webrtcvad

from ivr.audio.frames import FRAME_MS, INTERNAL_RATE_HZ, ms_to_frames


@dataclass(frozen=True, slots=True)
class VadConfig:
    aggressiveness: int = 2          # webrtcvad mode 0 (lenient) .. 3 (strict)
    start_ms: int = 80               # voiced run that opens an utterance
    min_speech_ms: int = 200         # utterances with less voiced audio are noise, dropped
    endpoint_silence_ms: int = 600   # trailing silence that ends a turn
    early_silence_ms: int = 200      # silence after which a matching hypothesis may end it
    max_utterance_ms: int = 15_000   # a turn never runs longer than this
    preroll_ms: int = 300            # audio kept from before the start, so no onset is lost
    warmup_ms: int = 120             # webrtcvad calls the first ~100 ms of any stream speech
                                     # while its noise model adapts (measured): not a start

    def __post_init__(self) -> None:
        if self.aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"vad aggressiveness must be 0..3, not {self.aggressiveness}")
        if not 0 < self.early_silence_ms <= self.endpoint_silence_ms:
            raise ValueError("vad early_silence_ms must be > 0 and <= endpoint_silence_ms")


class EndReason(StrEnum):
    SILENCE = "silence"
    MAX_LENGTH = "max_length"
    EARLY_MATCH = "early_match"
    NOISE = "noise"          # too little voiced audio: not a turn


@dataclass(slots=True)
class VadStep:
    """What one frame changed. `audio` is what to feed the recognizer for this frame."""

    voiced: bool
    started: bool = False
    ended: EndReason | None = None
    audio: list[np.ndarray] | None = None


class Endpointer:
    def __init__(self, config: VadConfig | None = None, rate_hz: int = INTERNAL_RATE_HZ) -> None:
        self.config = config or VadConfig()
        self._vad = webrtcvad.Vad(self.config.aggressiveness)
        self._rate_hz = rate_hz
        self._start_frames = ms_to_frames(self.config.start_ms)
        self._min_speech_frames = ms_to_frames(self.config.min_speech_ms)
        self._end_frames = ms_to_frames(self.config.endpoint_silence_ms)
        self._max_frames = ms_to_frames(self.config.max_utterance_ms)
        self._warmup_frames = ms_to_frames(self.config.warmup_ms)
        self._preroll: deque[np.ndarray] = deque(maxlen=ms_to_frames(self.config.preroll_ms))
        self.frame_index = -1
        self.reset()

    def reset(self) -> None:
        """Forget any utterance in progress (e.g. a key was pressed: keys win over speech)."""
        self.in_speech = False
        self._voiced_run = 0
        self._silence_run = 0
        self._voiced_total = 0
        self._length = 0
        self.speech_start_frame = -1
        self.last_voiced_frame = -1
        self._preroll.clear()

    @property
    def trailing_silence_ms(self) -> int:
        return self._silence_run * FRAME_MS if self.in_speech else 0

    def process(self, frame: np.ndarray) -> VadStep:
        self.frame_index += 1
        voiced = self._vad.is_speech(frame.tobytes(), self._rate_hz)
        if self.frame_index < self._warmup_frames:
            voiced = False
        if not self.in_speech:
            return self._idle(frame, voiced)
        self._length += 1
        if voiced:
            self._silence_run = 0
            self._voiced_total += 1
            self.last_voiced_frame = self.frame_index
        else:
            self._silence_run += 1
        step = VadStep(voiced=voiced, audio=[frame])
        if self._silence_run >= self._end_frames:
            step.ended = self._finish(EndReason.SILENCE)
        elif self._length >= self._max_frames:
            step.ended = self._finish(EndReason.MAX_LENGTH)
        return step

    def force_end(self) -> EndReason:
        """End the utterance now (grammar-aware early endpoint)."""
        return self._finish(EndReason.EARLY_MATCH)

    def _idle(self, frame: np.ndarray, voiced: bool) -> VadStep:
        self._preroll.append(frame)
        self._voiced_run = self._voiced_run + 1 if voiced else 0
        if self._voiced_run < self._start_frames:
            return VadStep(voiced=voiced)
        # Open the utterance with the pre-roll, which includes the voiced run itself.
        audio = list(self._preroll)
        self._preroll.clear()
        self.in_speech = True
        self._length = len(audio)
        self._voiced_total = self._voiced_run
        self._silence_run = 0
        self.speech_start_frame = self.frame_index - self._voiced_run + 1
        self.last_voiced_frame = self.frame_index
        return VadStep(voiced=voiced, started=True, audio=audio)

    def _finish(self, reason: EndReason) -> EndReason:
        if reason is not EndReason.EARLY_MATCH and self._voiced_total < self._min_speech_frames:
            reason = EndReason.NOISE
        self.in_speech = False
        self._voiced_run = 0
        self._silence_run = 0
        return reason


def utterances(samples: np.ndarray, config: VadConfig | None = None):
    """Yield (start_ms, end_ms, audio) for each utterance in a whole recording."""
    from ivr.audio.frames import split_frames

    endpointer = Endpointer(config)
    audio: list[np.ndarray] = []
    for frame in split_frames(samples):
        step = endpointer.process(frame)
        if step.audio:
            audio.extend(step.audio)
        if step.ended:
            if step.ended is not EndReason.NOISE:
                yield (endpointer.speech_start_frame * FRAME_MS,
                       (endpointer.last_voiced_frame + 1) * FRAME_MS, np.concatenate(audio))
            audio = []
    if endpointer.in_speech and audio:
        yield (endpointer.speech_start_frame * FRAME_MS,
               (endpointer.last_voiced_frame + 1) * FRAME_MS, np.concatenate(audio))
