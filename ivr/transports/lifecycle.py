"""The one lifecycle every listener (SIP, WebSocket bridge, AudioSocket) runs a call through:
make the call's id, admit it or refuse it as busy, run the handler, close the transport,
release the slot if the handler never ran.

The id is made here, per call (`new_call_id`: time ordered, unique), and admission, records
and logs key on it; the peer's own id (callSid, AudioSocket UUID, SIP Call-ID) is kept as
`CallInfo.transport_id`. So a limit of N calls holds and every call gets its own record,
whatever ids the peers send (four streams with one callSid are four calls).

Refusals are logged once per interval with a count (a flood of callers must not flood the log).
"""

import asyncio
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from ivr.throttle import ThrottledLog
from ivr.transports.base import Admission, CallHandler, CallInfo, Transport

BUSY_LOG_INTERVAL_S = 10.0


def new_call_id() -> str:
    """32 hex digits: milliseconds since the epoch (12) then 80 random bits, so ids sort by
    start time and never repeat (the layout of a UUIDv7, without the version bits)."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


class Lifecycle:
    def __init__(self, kind: str, admission: Admission, handler: CallHandler, counters: Counter,
                 log: logging.Logger, busy_log_interval_s: float = BUSY_LOG_INTERVAL_S) -> None:
        self.kind, self.admission, self.handler = kind, admission, handler
        self.counters, self.log = counters, log
        self.busy_log = ThrottledLog(log, busy_log_interval_s)

    def info(self, transport_id: str, **fields) -> CallInfo:
        """The call's `CallInfo`, with a new service-made id."""
        return CallInfo(new_call_id(), self.kind, transport_id=transport_id, **fields)

    def admit(self, info: CallInfo) -> bool:
        if self.admission.admit(info):
            self.counters["calls"] += 1
            self.log.info("call %s from %s admitted (peer id %s)", info.call_id, info.remote or self.kind,
                          info.transport_id[:80])
            return True
        self.counters["busy"] += 1
        self.busy_log.log("busy", "busy: refused %s call from %s (peer id %s); %d refused on this listener",
                          self.kind, info.remote or "?", info.transport_id[:80], self.counters["busy"])
        return False

    async def serve(self, transport: Transport, info: CallInfo, *, busy: Callable[[], Awaitable[None]],
                    close: Callable[[], Awaitable[None]], pump: Callable[[], Awaitable[None]] | None = None) -> bool:
        """Admit and run the call, or play `busy` and refuse it. True if it was admitted."""
        if not self.admit(info):
            try:
                await busy()
            except Exception:
                self.log.exception("busy answer to %s failed", info.remote)
            return False
        await self.run(transport, info, close=close, pump=pump)
        return True

    async def run(self, transport: Transport, info: CallInfo, *, close: Callable[[], Awaitable[None]],
                  pump: Callable[[], Awaitable[None]] | None = None) -> None:
        """Run the handler on an admitted call (it releases the slot at its end; see `Admission`),
        with the transport's reader `pump` alongside if it has one; then close the transport and
        add its counters to the listener's."""
        call_log = logging.LoggerAdapter(self.log, {"call_id": info.call_id})
        reader = asyncio.create_task(pump(), name=f"pump:{info.call_id}") if pump is not None else None
        try:
            await self.handler(transport, info)
        except Exception:
            call_log.exception("call handler failed")
        finally:
            try:
                await close()
            except Exception:
                call_log.exception("closing the call failed")
            if reader is not None:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            counters = getattr(transport, "counters", None)
            if counters:
                self.counters.update({k: v for k, v in counters.items() if k != "clears"})

    def release_unrun(self, info: CallInfo) -> None:
        """The call died after admission but before its handler ran: give the slot back."""
        self.admission.release(info)
