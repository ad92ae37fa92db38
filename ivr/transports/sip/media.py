"""One reader per RTP session, so the call loop, a transfer and a bridge can take turns.

`RtpSession.inbound()` is an async generator: cancelling a task that waits on it would end
it for good. The tap reads it in its own task into a queue; consumers wait on the queue,
which is safe to cancel. While `discarding` (a transfer is being attempted and nobody
listens), audio frames are thrown away so no backlog builds up; keys are kept.
"""

import asyncio
import contextlib

import numpy as np

from ivr.transports.sip.rtp import RtpSession

Item = np.ndarray | str


class MediaTap:
    def __init__(self, rtp: RtpSession) -> None:
        self.rtp = rtp
        self.discarding = False
        self.ended = False
        self._queue: asyncio.Queue[Item | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for item in self.rtp.inbound():
                if self.discarding and not isinstance(item, str):
                    continue
                self._queue.put_nowait(item)
        finally:
            self._queue.put_nowait(None)

    async def get(self) -> Item | None:
        """The next frame or key; None once the media has ended (and again on every call)."""
        item = await self._queue.get()
        if item is None:
            self.ended = True
            self._queue.put_nowait(None)
        return item

    def push_key(self, key: str) -> None:
        """A key that came by signalling (SIP INFO) rather than in the media."""
        self._queue.put_nowait(key)

    def drop_backlog(self) -> None:
        kept: list[Item | None] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None or isinstance(item, str):
                kept.append(item)
        for item in kept:
            self._queue.put_nowait(item)

    async def drain_outbound(self, limit_s: float = 5.0) -> None:
        """Wait until queued outbound audio has gone out (a last prompt before BYE or REFER)."""
        for _ in range(int(limit_s / 0.02)):
            if self.rtp.stats.get("queued_frames", 0) == 0:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.15)   # the frames in flight and in the peer's jitter buffer

    async def close(self) -> None:
        await self.rtp.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
