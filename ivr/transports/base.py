"""What the call loop needs from a transport.

Inbound: an async iterator of 20 ms frames (mono int16, 16 kHz) and out-of-band DTMF keys
(a one-character str). The iterator ending means the caller hung up. Outbound: one frame
per inbound frame, plus control. Conversions to and from the wire format happen inside the
transport, never in the call loop.
"""

import inspect
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

InboundItem = np.ndarray | str


class TransferFailed(Exception):
    """The transfer target could not be reached; the call is still up and the caller must be
    told (the call loop apologises and hangs up). The message says how each attempt failed."""


class Transport(Protocol):
    def inbound(self) -> AsyncIterator[InboundItem]: ...

    async def send(self, frame: np.ndarray) -> None:
        """One outbound 20 ms frame (silence when nothing plays)."""

    async def clear(self) -> None:
        """Drop audio queued downstream: the caller barged in."""

    async def transfer(self, target: str, reason: str, context: dict) -> None: ...

    async def hangup(self, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class EndCause:
    """Why the far end of a call went away, as its transport saw it (`Transport.end_cause`,
    None while the call is up or when unknown). The call's record takes `kind` as its outcome."""

    kind: str        # caller_hangup | protocol_error | peer_lost
    reason: str      # short code: stop, closed, hangup, bye, cancel, oversized, peer_error, truncated, idle ...
    why: str = ""    # for people: "WebSocket message over 65536 bytes (closed with 1009)"


@dataclass(frozen=True, slots=True)
class CallInfo:
    """Who is calling whom, as a listener learned it; `called` selects the flow.

    `call_id` is made by the service for each call (`lifecycle.new_call_id`: unique, time
    ordered): admission, records and logs key on it, whatever the peer sends. The peer's own id
    (SIP Call-ID, Twilio callSid, AudioSocket UUID) is `transport_id`: what the telephony side
    knows, e.g. to ask for a bridge call's transfer target."""

    call_id: str
    kind: str                      # sip | ws | audiosocket | mic | replay
    caller: str = ""               # caller number / URI user part
    called: str = ""               # dialled number, SIP request-URI user, WS path or parameter
    params: dict = field(default_factory=dict, hash=False, compare=True)  # e.g. Twilio customParameters
    remote: str = ""               # peer address "host:port", for logs
    transport_id: str = ""         # the peer's id for the call (may repeat across calls)

    @property
    def peer_id(self) -> str:
        return self.transport_id or self.call_id


class CallHandler(Protocol):
    """What a listener hands each admitted call to: runs the call to its end."""

    async def __call__(self, transport: Transport, info: CallInfo) -> None: ...


class Admission(Protocol):
    """Concurrent-call limit, keyed by `CallInfo.call_id`. A listener asks `admit` before
    answering (through `lifecycle.Lifecycle`); when it returns True the listener must then call
    the CallHandler exactly once (which releases the slot at its end), or `release` if the
    call dies before that."""

    def admit(self, info: CallInfo) -> bool: ...

    def release(self, info: CallInfo) -> None: ...


# The bridges (Twilio, AudioSocket) cannot transfer a call themselves: they hand the flow's
# decision to this hook (the service keeps it for the telephony side to ask), then hang up.
TransferHook = Callable[[CallInfo, str, str, dict], object]   # may return an awaitable


async def notify_transfer(hook: TransferHook | None, info: CallInfo, target: str, reason: str, context: dict,
                          log: logging.Logger | logging.LoggerAdapter) -> None:
    if hook is None:
        return
    try:
        result = hook(info, target, reason, dict(context))
        if inspect.isawaitable(result):
            await result
    except Exception:   # the hook is someone else's code: the call must still end cleanly
        log.exception("transfer hook failed")
