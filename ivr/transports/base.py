"""What the call loop needs from a transport.

Inbound: an async iterator of 20 ms frames (mono int16, 16 kHz) and out-of-band DTMF keys
(a one-character str). The iterator ending means the caller hung up. Outbound: one frame
per inbound frame, plus control. Conversions to and from the wire format happen inside the
transport, never in the call loop.
"""

from collections.abc import AsyncIterator
from typing import Protocol

import numpy as np

InboundItem = np.ndarray | str


class Transport(Protocol):
    def inbound(self) -> AsyncIterator[InboundItem]: ...

    async def send(self, frame: np.ndarray) -> None:
        """One outbound 20 ms frame (silence when nothing plays)."""

    async def clear(self) -> None:
        """Drop audio queued downstream: the caller barged in."""

    async def transfer(self, target: str, reason: str, context: dict) -> None: ...

    async def hangup(self, reason: str) -> None: ...
