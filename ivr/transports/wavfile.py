"""Replay transport: a recorded caller WAV in, the machine's side recorded out.

Frames are fed as fast as the call loop takes them. After the file ends, silence follows
for as long as the call still has something to do (a reply playing, an utterance ending);
then the caller "hangs up". Outbound frames line up one to one with inbound frames, so the
stereo recording shows exactly what the caller would have heard, and when.
"""

from collections.abc import AsyncIterator, Callable

import numpy as np

from ivr.audio.frames import FRAME_SAMPLES, ms_to_frames, silence, split_frames

DEFAULT_MAX_TAIL_MS = 120_000


class WavReplayTransport:
    def __init__(self, samples: np.ndarray, max_tail_ms: int = DEFAULT_MAX_TAIL_MS) -> None:
        self.samples = samples
        self.keep_going: Callable[[], bool] = lambda: False
        self.max_tail_frames = ms_to_frames(max_tail_ms)
        self.inbound_frames: list[np.ndarray] = []
        self.outbound_frames: list[np.ndarray] = []
        self.events: list[tuple[int, str, str]] = []   # (frame, kind, detail) for control calls

    async def inbound(self) -> AsyncIterator[np.ndarray]:
        for frame in split_frames(self.samples):
            self.inbound_frames.append(frame)
            yield frame
        for _ in range(self.max_tail_frames):
            if not self.keep_going():
                return
            frame = silence()
            self.inbound_frames.append(frame)
            yield frame

    async def send(self, frame: np.ndarray) -> None:
        self.outbound_frames.append(frame)

    async def clear(self) -> None:
        self.events.append((len(self.inbound_frames) - 1, "clear", ""))

    async def transfer(self, target: str, reason: str, context: dict) -> None:
        self.events.append((len(self.inbound_frames) - 1, "transfer", target))

    async def hangup(self, reason: str) -> None:
        self.events.append((len(self.inbound_frames) - 1, "hangup", reason))

    def stereo(self) -> tuple[np.ndarray, np.ndarray]:
        """(caller, machine) as two equal-length int16 tracks."""
        def join(frames: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(frames) if frames else np.zeros(FRAME_SAMPLES, np.int16)
        return join(self.inbound_frames), join(self.outbound_frames)
