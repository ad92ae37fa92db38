"""`SipCallTransport`: what the call loop talks to for one SIP call (ivr.transports.base.Transport).

Frames and keys come from the call's RTP session (keys also from SIP INFO); the iterator ends
when the caller hangs up (BYE, CANCEL, RTP silence past the inactivity timeout) or when a
bridge to the agent line has taken the media over. `transfer` raises `TransferFailed` when
neither REFER nor the bridge reached the agent line, so the call loop can take its fallback.
"""

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import numpy as np

from ivr.transports.base import EndCause, InboundItem, TransferFailed  # noqa: F401 (SIP modules import it)

if TYPE_CHECKING:
    from ivr.transports.sip.session import SipCall



class SipCallTransport:
    def __init__(self, call: "SipCall") -> None:
        self.call = call

    @property
    def end_cause(self) -> EndCause | None:
        """Why the caller's side went (read by the call loop once inbound has ended)."""
        call = self.call
        if call.end_why == "caller hung up":
            return EndCause("caller_hangup", "bye", "BYE from the caller")
        if call.end_why.startswith("cancelled"):
            return EndCause("caller_hangup", "cancel", call.end_why)
        rtp_why = getattr(call.tap.rtp, "end_why", "") if call.tap is not None else ""
        if rtp_why.startswith("no RTP"):
            return EndCause("peer_lost", "rtp_timeout", rtp_why)
        if rtp_why and rtp_why != "closed":
            return EndCause("protocol_error", "media", f"RTP: {rtp_why}")
        return None

    async def inbound(self) -> AsyncIterator[InboundItem]:
        call = self.call
        while call.tap is not None and not call.detached:
            item = await call.tap.get()
            if item is None or call.detached:
                return
            yield item

    async def send(self, frame: np.ndarray) -> None:
        call = self.call
        if call.tap is not None and not call.detached and call.state == "confirmed":
            await call.tap.rtp.send(frame)

    async def clear(self) -> None:
        if self.call.tap is not None:
            await self.call.tap.rtp.clear()

    async def transfer(self, target: str, reason: str, context: dict) -> None:
        await self.call.transfer(target, reason, context)

    async def hangup(self, reason: str) -> None:
        await self.call.hangup(reason)

    # ---- a queue's agent (ivr/agents/dispatch.py): dial while the caller waits, then bridge ----

    async def dial_agent(self, target: str, headers: list[tuple[str, str]]):
        """Ring an agent's phone (raises TransferFailed; cancelling sends CANCEL): an `AgentLeg`."""
        from ivr.transports.sip.bridge import dial_agent

        return await dial_agent(self.call, target, headers)

    async def connect_agent(self, leg):
        """Bridge the caller to an answered agent leg; the bridge task (None if the caller left)."""
        from ivr.transports.sip.bridge import connect_leg

        return await connect_leg(self.call, leg)
