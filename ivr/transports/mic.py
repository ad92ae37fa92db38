"""The local microphone and speaker as a call (sounddevice / PortAudio).

One duplex stream, mono int16 in 20 ms blocks. PortAudio calls back on its own thread: each
captured block is handed to the event loop (call_soon_threadsafe) and the callback plays the
next frame the call loop sent, or silence. Keys can be typed on stdin (a line like `1#`) when
`keys_from_stdin` is set. Transfer and hang-up end the session after queued audio has played.
"""

import asyncio
import contextlib
import logging
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator

import numpy as np

from ivr.audio.frames import FRAME_MS, FRAME_SAMPLES, INTERNAL_RATE_HZ
from ivr.audio.resample import Resampler
from ivr.errors import UserError
from ivr.transports.base import InboundItem

log = logging.getLogger("ivr.transports.mic")

DTMF_KEYS = frozenset("0123456789*#ABCD")
MAX_OUT_FRAMES = 250            # 5 s of audio queued for the speaker at most
DRAIN_TIMEOUT_S = 30.0
HINT = "try `ivr chat FLOW` to talk by text, or `ivr replay` with a WAV"


def _sounddevice():
    try:
        import sounddevice
    except (ImportError, OSError) as exc:    # OSError: the PortAudio library itself is missing
        raise UserError(f"no audio input device found (sounddevice: {exc})", HINT) from exc
    return sounddevice


class Duplex:
    """Between the PortAudio thread and the event loop: captured blocks and typed keys go to
    an asyncio queue; frames to play wait in a deque the audio callback takes from."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.items: asyncio.Queue[InboundItem | None] = asyncio.Queue()
        self.out: deque[np.ndarray] = deque(maxlen=MAX_OUT_FRAMES)
        self.status_flags = 0           # PortAudio over/underflows seen

    def _post(self, item: InboundItem | None) -> None:
        with contextlib.suppress(RuntimeError):     # the loop is closed: the session is over
            self._loop.call_soon_threadsafe(self.items.put_nowait, item)

    def callback(self, indata: np.ndarray, outdata: np.ndarray, frames: int, time_info, status) -> None:
        """Runs on the audio thread: must not block."""
        if status:
            self.status_flags += 1
        self._post(indata[:, 0].copy())
        frame = self.out.popleft() if self.out else None
        if frame is not None and len(frame) == frames:
            outdata[:, 0] = frame
        else:
            outdata.fill(0)

    def key(self, key: str) -> None:
        self._post(key)

    def end(self) -> None:
        self._post(None)


class MicTransport:
    def __init__(self, device: int | str | None = None, rate_hz: int = INTERNAL_RATE_HZ,
                 keys_from_stdin: bool = False) -> None:
        sd = _sounddevice()
        try:
            sd.check_input_settings(device, channels=1, dtype="int16", samplerate=rate_hz)
        except (sd.PortAudioError, ValueError) as exc:
            raise UserError(f"no audio input device found (sounddevice: {exc})", HINT) from exc
        self._sd = sd
        self.device, self.rate_hz = device, rate_hz
        self.block_samples = rate_hz * FRAME_MS // 1000
        self.keys_from_stdin = keys_from_stdin
        self.outcome: tuple[str, str] | None = None     # ("hangup", reason) or ("transfer", target)
        self._duplex: Duplex | None = None
        self._up = Resampler(rate_hz, INTERNAL_RATE_HZ, low_latency=True)
        self._down = Resampler(INTERNAL_RATE_HZ, rate_hz, low_latency=True)
        self._in_buf = np.zeros(0, np.int16)
        self._out_buf = np.zeros(0, np.int16)

    async def inbound(self) -> AsyncIterator[InboundItem]:
        self._duplex = duplex = Duplex(asyncio.get_running_loop())
        try:
            stream = self._sd.Stream(device=self.device, samplerate=self.rate_hz, blocksize=self.block_samples,
                                     dtype="int16", channels=1, callback=duplex.callback)
        except (self._sd.PortAudioError, ValueError) as exc:
            raise UserError(f"cannot open the audio device (sounddevice: {exc})", HINT) from exc
        if self.keys_from_stdin:
            threading.Thread(target=self._read_keys, args=(duplex,), daemon=True, name="mic-keys").start()
        with stream:
            log.info("listening on the microphone (%d Hz)", self.rate_hz)
            while (item := await duplex.items.get()) is not None:
                if isinstance(item, str):
                    yield item
                    continue
                self._in_buf = np.concatenate([self._in_buf, self._up.process(item)])
                while len(self._in_buf) >= FRAME_SAMPLES:
                    frame, self._in_buf = self._in_buf[:FRAME_SAMPLES].copy(), self._in_buf[FRAME_SAMPLES:]
                    yield frame
        if duplex.status_flags:
            log.info("audio device reported %d over/underflows", duplex.status_flags)

    @staticmethod
    def _read_keys(duplex: Duplex) -> None:
        for line in sys.stdin:
            for ch in line.strip().upper():
                if ch in DTMF_KEYS:
                    duplex.key(ch)

    async def send(self, frame: np.ndarray) -> None:
        if self._duplex is None:
            return
        self._out_buf = np.concatenate([self._out_buf, self._down.process(frame)])
        while len(self._out_buf) >= self.block_samples:
            block, self._out_buf = self._out_buf[: self.block_samples], self._out_buf[self.block_samples :]
            self._duplex.out.append(block)

    async def clear(self) -> None:
        if self._duplex is not None:
            self._duplex.out.clear()

    async def _finish(self) -> None:
        """Let queued audio play out, then end the session (the inbound iterator stops)."""
        if self._duplex is None:
            return
        # The audio thread plays one queued block per 20 ms.
        await asyncio.sleep(min(DRAIN_TIMEOUT_S, len(self._duplex.out) * FRAME_MS / 1000 + 0.1))
        self._duplex.end()

    async def hangup(self, reason: str) -> None:
        self.outcome = ("hangup", reason)
        log.info("the flow hung up (%s)", reason)
        await self._finish()

    async def transfer(self, target: str, reason: str, context: dict) -> None:
        self.outcome = ("transfer", target)
        log.info("the flow would transfer to %s (%s); a microphone session just ends", target, reason)
        await self._finish()
