"""Replay transport: a recorded caller WAV in, the machine's side recorded out.

Frames are fed as fast as the call loop takes them. After the file ends, silence follows
for as long as the call still has something to do (a reply playing, an utterance ending);
then the caller "hangs up". Outbound frames line up one to one with inbound frames, so the
stereo recording shows exactly what the caller would have heard, and when.

The caller's audio can be a whole array or a stream of chunks (`wav_blocks`: the file read a
block at a time, so a 30-minute recording never sits in memory whole). Keeping both sides for
the stereo recording is optional (`keep_audio`); without it memory stays flat whatever the
length of the call.
"""

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from ivr.audio.frames import FRAME_SAMPLES, INTERNAL_RATE_HZ, ms_to_frames, silence, split_frames
from ivr.audio.resample import Resampler
from ivr.audio.wavio import probe
from ivr.errors import UserError

DEFAULT_MAX_TAIL_MS = 120_000
BLOCK_FRAMES = 32_768          # samples per channel read at a time (about 2 s at 16 kHz)


def wav_blocks(path: str | Path, channel: int | None = None, rate_hz: int = INTERNAL_RATE_HZ,
               block_frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """The WAV as mono int16 chunks at `rate_hz`, reading `block_frames` at a time (soundfile).

    Same conversion as `ivr.audio.wavio.read_audio` (channel pick or downmix, clip, resample),
    but streamed: the file is checked when the generator is made (a bad WAV fails before any
    model loads); it is read lazily, one block per step."""
    p = Path(path)
    info = probe(p)
    if channel is not None and not 0 <= channel < info.channels:
        raise UserError(f"cannot read {p}: channel {channel} out of range, the file has {info.channels} "
                        f"channel{'s' if info.channels != 1 else ''}", f"use a channel from 0 to {info.channels - 1}")
    if info.frames == 0:
        raise UserError(f"cannot read {p}: the file contains no audio", "record or convert it again, e.g. with sox")
    return _blocks(p, channel, info.rate_hz, rate_hz, block_frames)


def _blocks(path: Path, channel: int | None, from_hz: int, to_hz: int, block_frames: int) -> Iterator[np.ndarray]:
    resampler = Resampler(from_hz, to_hz)
    try:
        with sf.SoundFile(str(path)) as f:
            while True:
                data = f.read(block_frames, dtype="float32", always_2d=True)
                if not len(data):
                    break
                mono = data[:, channel] if channel is not None else data.mean(axis=1)
                out = resampler.process(np.clip(np.rint(mono * 32768.0), -32768, 32767).astype(np.int16))
                if len(out):
                    yield out
    except (sf.SoundFileError, RuntimeError, OSError) as exc:
        raise UserError(f"cannot read {path}: {exc}", "check the file; convert it with sox if it is damaged") from None
    tail = resampler.flush()
    if len(tail):
        yield tail


def _frames_of(chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Whole 20 ms frames from chunks of any length; the last partial frame padded with silence."""
    carry = np.zeros(0, np.int16)
    for chunk in chunks:
        buf = np.concatenate([carry, np.asarray(chunk, np.int16)]) if len(carry) else np.asarray(chunk, np.int16)
        whole = len(buf) // FRAME_SAMPLES * FRAME_SAMPLES
        for start in range(0, whole, FRAME_SAMPLES):
            yield buf[start : start + FRAME_SAMPLES]
        carry = buf[whole:].copy()
    if len(carry):
        yield from split_frames(carry)


class WavReplayTransport:
    def __init__(self, samples: np.ndarray | Iterable[np.ndarray], max_tail_ms: int = DEFAULT_MAX_TAIL_MS,
                 keep_audio: bool = True) -> None:
        """`samples`: mono int16 at 16 kHz, whole or as chunks. `keep_audio`: keep both sides for
        `stereo()` (needed for `ivr replay --out`)."""
        self.samples = samples
        self.keep_going: Callable[[], bool] = lambda: False
        self.max_tail_frames = ms_to_frames(max_tail_ms)
        self.keep_audio = keep_audio
        self.frames_in = 0
        self.frames_out = 0
        self.inbound_frames: list[np.ndarray] = []
        self.outbound_frames: list[np.ndarray] = []
        self.events: list[tuple[int, str, str]] = []   # (frame, kind, detail) for control calls

    def _take(self, frame: np.ndarray) -> np.ndarray:
        self.frames_in += 1
        if self.keep_audio:
            self.inbound_frames.append(frame)
        return frame

    async def inbound(self) -> AsyncIterator[np.ndarray]:
        frames = split_frames(self.samples) if isinstance(self.samples, np.ndarray) else _frames_of(self.samples)
        for frame in frames:
            yield self._take(frame)
        for _ in range(self.max_tail_frames):
            if not self.keep_going():
                return
            yield self._take(silence())

    async def send(self, frame: np.ndarray) -> None:
        self.frames_out += 1
        if self.keep_audio:
            self.outbound_frames.append(frame)

    async def clear(self) -> None:
        self.events.append((self.frames_in - 1, "clear", ""))

    async def transfer(self, target: str, reason: str, context: dict) -> None:
        self.events.append((self.frames_in - 1, "transfer", target))

    async def hangup(self, reason: str) -> None:
        self.events.append((self.frames_in - 1, "hangup", reason))

    def stereo(self) -> tuple[np.ndarray, np.ndarray]:
        """(caller, machine) as two equal-length int16 tracks."""
        if not self.keep_audio:
            raise RuntimeError("this replay did not keep its audio (keep_audio=False)")

        def join(frames: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(frames) if frames else np.zeros(FRAME_SAMPLES, np.int16)
        return join(self.inbound_frames), join(self.outbound_frames)
