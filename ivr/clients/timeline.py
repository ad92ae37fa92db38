"""Shared by the call clients: the caller's clock, what the caller hears on it, and the reply
latency of each turn.

The timeline keeps audio at the 8 kHz line rate, exactly as received, and converts the whole
call to 16 kHz at the end (a streaming resampler would hold back its last ~66 ms and skew
every latency). It places each received chunk where a real caller would hear it: at its arrival time
on the caller's send clock, or right after the audio queued before it (Twilio and a phone's
jitter buffer both queue). A clear drops what has not been heard yet. Where nothing was
received the timeline is silence.

Latency of a turn = from the end of the caller's last voiced frame (the script says where, or an
energy detector finds it) to the onset of the next reply: the first voiced received frame at or
after that moment that follows a silent one (audio still running at the turn's end is the
previous prompt, not the reply).
"""

import asyncio
from dataclasses import dataclass, field

import numpy as np

from ivr.audio.frames import FRAME_MS, FRAME_SAMPLES, INTERNAL_RATE_HZ
from ivr.audio.resample import resample

LINE_RATE_HZ = 8000
VOICED_MEAN_ABS = 120       # mean |sample| of a voiced 20 ms frame; line hiss at -60 dBFS is ~26
MIN_GAP_MS = 500            # pauses shorter than this do not end an utterance
MIN_UTTERANCE_MS = 100


@dataclass(slots=True)
class CallResult:
    """What the simulated caller heard and saw. WS and AudioSocket clients share this shape."""

    received_16k: np.ndarray
    events: list[dict] = field(default_factory=list)        # non-audio messages received, in order
    marks: list[str] = field(default_factory=list)          # marks the server sent (WS)
    clears: int = 0                                         # clear messages received (WS)
    media_messages: int = 0                                 # audio messages received
    close_code: int | None = None                           # WebSocket close code (None: not closed by it)
    close_reason: str = ""                                  # WS close reason; "hangup"/"eof" for AudioSocket
    reply_latencies_ms: list[float] = field(default_factory=list)   # one per answered turn
    turn_ends_ms: list[int] = field(default_factory=list)
    unanswered_turns: int = 0
    sent_ms: int = 0                                        # caller audio sent, ms


class CallClock:
    """The caller's send clock: real time, or the count of frames sent when not real time."""

    def __init__(self, realtime: bool) -> None:
        self.realtime = realtime
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()
        self.frames_sent = 0

    def now_ms(self) -> float:
        if self.realtime:
            return (self._loop.time() - self._t0) * 1000
        return self.frames_sent * FRAME_MS

    async def wait_for_frame(self, index: int) -> None:
        """Sleep until frame `index` is due (an absolute schedule: no drift from slow sends)."""
        if self.realtime:
            await asyncio.sleep(max(0.0, self._t0 + index * FRAME_MS / 1000 - self._loop.time()))
        else:
            await asyncio.sleep(0)


class Timeline:
    def __init__(self, rate_hz: int = LINE_RATE_HZ) -> None:
        self.rate_hz = rate_hz
        self._buf = np.zeros(rate_hz * 10, np.int16)
        self._end = 0                        # sample index where queued audio ends

    def _index(self, ms: float) -> int:
        return round(ms * self.rate_hz / 1000)

    @property
    def queued_until_ms(self) -> float:
        return self._end * 1000 / self.rate_hz

    def add(self, samples: np.ndarray, at_ms: float) -> None:
        start = max(self._index(at_ms), self._end)
        end = start + len(samples)
        if end > len(self._buf):
            self._buf = np.concatenate([self._buf, np.zeros(max(end - len(self._buf), len(self._buf)), np.int16)])
        self._buf[start:end] = samples
        self._end = end

    def clear(self, at_ms: float) -> None:
        """Drop audio queued after `at_ms` (it will never be heard)."""
        cut = self._index(at_ms)
        if self._end > cut:
            self._buf[cut : self._end] = 0
            self._end = cut

    def audio(self, until_ms: float | None = None) -> np.ndarray:
        end = self._end if until_ms is None else max(self._end, self._index(until_ms))
        if end > len(self._buf):
            return np.concatenate([self._buf, np.zeros(end - len(self._buf), np.int16)])
        return self._buf[:end].copy()


def voiced_frames(samples: np.ndarray, threshold: float = VOICED_MEAN_ABS) -> np.ndarray:
    """One bool per whole 20 ms frame (16 kHz): louder than `threshold` mean |sample|."""
    n = len(samples) // FRAME_SAMPLES
    frames = np.abs(samples[: n * FRAME_SAMPLES].astype(np.int32)).reshape(n, FRAME_SAMPLES)
    return frames.mean(axis=1) > threshold


def detect_utterance_ends(samples_16k: np.ndarray, min_gap_ms: int = MIN_GAP_MS,
                          min_utterance_ms: int = MIN_UTTERANCE_MS) -> list[int]:
    """End (ms) of each utterance in caller audio: voiced runs joined across short pauses."""
    voiced = voiced_frames(samples_16k)
    ends: list[int] = []
    start = last = None
    for i, v in enumerate(voiced):
        if not v:
            continue
        if last is not None and (i - last - 1) * FRAME_MS >= min_gap_ms:
            if (last + 1 - start) * FRAME_MS >= min_utterance_ms:
                ends.append((last + 1) * FRAME_MS)
            start = i
        if start is None:
            start = i
        last = i
    if last is not None and (last + 1 - start) * FRAME_MS >= min_utterance_ms:
        ends.append((last + 1) * FRAME_MS)
    return ends


def reply_onsets_ms(heard_16k: np.ndarray, turn_ends_ms: list[int]) -> list[int | None]:
    """For each turn end: the onset (ms) of the reply, or None if none came before the next turn."""
    voiced = voiced_frames(heard_16k)
    onsets: list[int | None] = []
    ends = sorted(turn_ends_ms)
    for k, end_ms in enumerate(ends):
        limit = ends[k + 1] if k + 1 < len(ends) else None
        first = -(-end_ms // FRAME_MS)
        onset = None
        for f in range(first, len(voiced)):
            if limit is not None and f * FRAME_MS >= limit:
                break
            if voiced[f] and (f == 0 or not voiced[f - 1]):
                onset = f * FRAME_MS
                break
        onsets.append(onset)
    return onsets


def finish_result(result: CallResult, timeline: Timeline, caller_16k: np.ndarray, end_ms: float,
                  utterance_ends_ms: list[int] | None, dtmf: list[tuple[int, str]]) -> CallResult:
    """Fill in the heard audio, the turn ends (utterances + key presses) and the latencies."""
    result.received_16k = resample(timeline.audio(end_ms), timeline.rate_hz, INTERNAL_RATE_HZ)
    ends = list(utterance_ends_ms) if utterance_ends_ms is not None else detect_utterance_ends(caller_16k)
    result.turn_ends_ms = sorted(ends + [int(at) for at, _ in dtmf])
    onsets = reply_onsets_ms(result.received_16k, result.turn_ends_ms)
    result.reply_latencies_ms = [float(o - e) for o, e in zip(onsets, result.turn_ends_ms, strict=True)
                                 if o is not None]
    result.unanswered_turns = sum(o is None for o in onsets)
    return result


def caller_frames_8k(caller_16k: np.ndarray, tail_ms: int) -> np.ndarray:
    """Caller audio at the 8 kHz line rate, plus `tail_ms` of silence, as rows of 20 ms."""
    frame = LINE_RATE_HZ * FRAME_MS // 1000
    pcm = resample(np.asarray(caller_16k, np.int16), INTERNAL_RATE_HZ, LINE_RATE_HZ)
    pcm = np.concatenate([pcm, np.zeros(tail_ms * frame // FRAME_MS, np.int16)])
    pcm = np.pad(pcm, (0, -len(pcm) % frame))
    return pcm.reshape(-1, frame)
