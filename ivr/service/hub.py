"""The call-event hub: the call loops publish, everything else subscribes.

`publish(event)` is synchronous and cheap (a filter call and one `put_nowait` per
subscriber); it never blocks and never raises into the call loop. Each subscriber has its
own bounded queue and its own consumer: an asyncio task (async functions, and quick sync
functions such as metric counters) or a thread (`thread=True`: file and database writers),
so a slow or failing subscriber only loses its own events, which are counted and logged
(throttled), never delays the calls or the other subscribers.

The filter (`Hub(filter=...)` / `set_filter`) runs on every event before fan-out: the one
place redaction happens, so no subscriber ever sees an unredacted event. If the filter
raises, the event is dropped (counted), never passed on unfiltered.
"""

import asyncio
import contextlib
import inspect
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ivr.callevents import CallEvent
from ivr.throttle import ThrottledLog

log = logging.getLogger("ivr.hub")

DEFAULT_QUEUE = 10_000
_STOP = object()

Subscriber = Callable[[CallEvent], object]     # may be async
EventFilter = Callable[[CallEvent], CallEvent | None]   # None: drop the event


@dataclass(slots=True)
class Subscription:
    name: str
    fn: Subscriber
    threaded: bool
    queue: "asyncio.Queue | queue.Queue"
    delivered: int = 0
    dropped: int = 0        # queue full (the subscriber is too slow) or hub closing
    errors: int = 0         # the subscriber raised
    worker: object = field(default=None, repr=False)   # asyncio.Task | threading.Thread

    def stats(self) -> dict:
        return {"delivered": self.delivered, "dropped": self.dropped, "errors": self.errors,
                "queued": self.queue.qsize(), "threaded": self.threaded}


class Hub:
    def __init__(self, filter: EventFilter | None = None, queue_size: int = DEFAULT_QUEUE,
                 warn_interval_s: float = 10.0) -> None:
        self._filter = filter
        self.queue_size = queue_size
        self.subs: list[Subscription] = []
        self.published = 0
        self.filtered_out = 0      # the filter returned None
        self.filter_errors = 0     # the filter raised: event dropped
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warn = ThrottledLog(log, warn_interval_s)

    def set_filter(self, fn: EventFilter | None) -> None:
        """Install the entrance filter (redaction); None restores identity."""
        self._filter = fn

    # ---- subscribing -------------------------------------------------------------------

    def subscribe(self, fn: Subscriber, *, name: str | None = None, thread: bool = False,
                  queue_size: int | None = None) -> Subscription:
        """Deliver every later event to `fn`, in order. `thread=True` runs `fn` in its own thread
        (blocking I/O); otherwise in an asyncio task on the running loop (async `fn`, or a sync
        `fn` that returns at once)."""
        if self.closed:
            raise RuntimeError("the hub is closed")
        size = queue_size or self.queue_size
        name = name or getattr(fn, "__qualname__", None) or repr(fn)
        if thread:
            sub = Subscription(name, fn, True, queue.Queue(size))
            sub.worker = threading.Thread(target=self._run_thread, args=(sub,), name=f"hub:{name}", daemon=True)
            sub.worker.start()
        else:
            loop = asyncio.get_running_loop()
            self._loop = self._loop or loop
            sub = Subscription(name, fn, False, asyncio.Queue(size))
            sub.worker = loop.create_task(self._run_task(sub), name=f"hub:{name}")
        self.subs.append(sub)
        return sub

    # ---- publishing --------------------------------------------------------------------

    def publish(self, event: CallEvent) -> None:
        """Hand `event` to every subscriber's queue. Never blocks, never raises."""
        try:
            if self.closed:
                self._drop_all("hub closed")
                return
            self.published += 1
            if self._filter is not None:
                try:
                    event = self._filter(event)
                except Exception:
                    self.filter_errors += 1
                    self._warn.log("filter", "event filter failed on %s: event dropped", type(event).__name__)
                    return
                if event is None:
                    self.filtered_out += 1
                    return
            loop = self._loop
            if loop is not None and not _on_loop(loop):   # from a worker thread: hop onto the loop
                loop.call_soon_threadsafe(self._fan_out, event)
            else:
                self._fan_out(event)
        except Exception:   # a bug here must not end a call
            log.exception("hub publish failed")

    def _fan_out(self, event: CallEvent) -> None:
        for sub in self.subs:
            try:
                sub.queue.put_nowait(event)
            except (asyncio.QueueFull, queue.Full):
                sub.dropped += 1
                self._warn.log(f"full:{sub.name}", "subscriber %s is too slow: its queue (%d) is full, "
                               "event dropped (%d dropped so far)", sub.name, sub.queue.maxsize, sub.dropped)

    def _drop_all(self, why: str) -> None:
        for sub in self.subs:
            sub.dropped += 1
        self._warn.log("closed", "event published after the hub closed (%s): dropped", why)

    # ---- consumers ---------------------------------------------------------------------

    async def _run_task(self, sub: Subscription) -> None:
        while (event := await sub.queue.get()) is not _STOP:
            try:
                result = sub.fn(event)
                if inspect.isawaitable(result):
                    await result
                sub.delivered += 1
            except Exception:
                self._failed(sub, event)

    def _run_thread(self, sub: Subscription) -> None:
        while (event := sub.queue.get()) is not _STOP:
            try:
                sub.fn(event)
                sub.delivered += 1
            except Exception:
                self._failed(sub, event)

    def _failed(self, sub: Subscription, event: CallEvent) -> None:
        sub.errors += 1
        if self._warn.log(f"error:{sub.name}", "subscriber %s failed on %s of call %s (%d errors so far)",
                          sub.name, type(event).__name__, event.call_id, sub.errors):
            log.debug("subscriber %s traceback", sub.name, exc_info=True)

    # ---- closing -----------------------------------------------------------------------

    async def close(self, deadline_s: float = 5.0) -> dict:
        """Stop taking events; let each subscriber finish its queue until the deadline, then stop
        it (what is left is counted as dropped). Returns the stats."""
        if self.closed:
            return self.stats()
        self.closed = True
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        for sub in self.subs:
            await self._put_stop(sub, end)
        for sub in self.subs:
            left = max(0.0, end - loop.time())
            if sub.threaded:
                await asyncio.to_thread(sub.worker.join, left)
                if sub.worker.is_alive():
                    self._abandon(sub)
            else:
                done, _ = await asyncio.wait([sub.worker], timeout=left)
                if not done:
                    sub.worker.cancel()
                    self._abandon(sub)
        self._warn.flush()
        return self.stats()

    async def _put_stop(self, sub: Subscription, end: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sub.queue.put_nowait(_STOP)
                return
            except (asyncio.QueueFull, queue.Full):
                if loop.time() >= end:
                    self._abandon(sub)
                    return
                await asyncio.sleep(0.01)

    def _abandon(self, sub: Subscription) -> None:
        lost = sub.queue.qsize()
        sub.dropped += lost
        if sub.threaded:   # make the thread stop after the event in hand
            while True:
                try:
                    sub.queue.get_nowait()
                except queue.Empty:
                    break
            with contextlib.suppress(queue.Full):
                sub.queue.put_nowait(_STOP)
        log.warning("subscriber %s did not finish by the deadline: %d queued events lost", sub.name, lost)

    def stats(self) -> dict:
        return {"published": self.published, "filtered_out": self.filtered_out, "filter_errors": self.filter_errors,
                "subscribers": {s.name: s.stats() for s in self.subs}}


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
