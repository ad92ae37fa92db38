"""The one internal audio format, and cutting audio into frames.

Inside the call loop all audio is mono signed 16-bit PCM at INTERNAL_RATE_HZ, in frames of
FRAME_MS. Transports and files convert to and from this format at the edges only.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

INTERNAL_RATE_HZ = 16_000
FRAME_MS = 20
FRAME_SAMPLES = INTERNAL_RATE_HZ * FRAME_MS // 1000  # 320 samples = 640 bytes


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """How a stream of samples is laid out on a wire or in a file."""

    rate_hz: int
    channels: int = 1
    encoding: str = "pcm16"  # pcm16 | mulaw | alaw

    def frame_bytes(self, frame_ms: int = FRAME_MS) -> int:
        width = 2 if self.encoding == "pcm16" else 1
        return self.rate_hz * frame_ms // 1000 * width * self.channels


def silence(n_samples: int = FRAME_SAMPLES) -> np.ndarray:
    return np.zeros(n_samples, dtype=np.int16)


def split_frames(samples: np.ndarray, frame_samples: int = FRAME_SAMPLES) -> Iterator[np.ndarray]:
    """Cut int16 samples into whole frames; the last partial frame is padded with silence."""
    for start in range(0, len(samples), frame_samples):
        frame = samples[start : start + frame_samples]
        if len(frame) < frame_samples:
            frame = np.concatenate([frame, silence(frame_samples - len(frame))])
        yield frame


def ms_to_frames(ms: int) -> int:
    """Whole frames covering `ms` milliseconds (at least one for any positive duration)."""
    return max(1, -(-ms // FRAME_MS)) if ms > 0 else 0


def frames_to_ms(n_frames: int) -> int:
    return n_frames * FRAME_MS
