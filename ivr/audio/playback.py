"""The outbound prompt queue: prompts in, one 20 ms frame out per inbound frame."""

from collections import deque
from dataclasses import dataclass

import numpy as np

from ivr.audio.frames import FRAME_SAMPLES, silence


@dataclass(slots=True)
class _Item:
    samples: np.ndarray
    barge_in: bool
    text: str
    pos: int = 0


class Playback:
    def __init__(self) -> None:
        self._items: deque[_Item] = deque()

    @property
    def busy(self) -> bool:
        return bool(self._items)

    @property
    def bargeable(self) -> bool:
        """The prompt playing now may be interrupted by the caller."""
        return bool(self._items) and self._items[0].barge_in

    @property
    def texts(self) -> list[str]:
        """The texts of what is queued, playing first."""
        return [i.text for i in self._items]

    def push(self, samples: np.ndarray, barge_in: bool, text: str) -> None:
        if len(samples):
            self._items.append(_Item(samples, barge_in, text))

    def clear(self) -> list[str]:
        """Stop everything queued (barge-in); returns the texts cut off."""
        texts = [i.text for i in self._items]
        self._items.clear()
        return texts

    def next_frame(self) -> np.ndarray | None:
        """The next frame of audio, or None when nothing is playing."""
        if not self._items:
            return None
        item = self._items[0]
        frame = item.samples[item.pos : item.pos + FRAME_SAMPLES]
        item.pos += FRAME_SAMPLES
        if item.pos >= len(item.samples):
            self._items.popleft()
        if len(frame) < FRAME_SAMPLES:
            frame = np.concatenate([frame, silence(FRAME_SAMPLES - len(frame))])
        return frame
