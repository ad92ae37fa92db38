"""The console's stop returns even when a push is wanted at the moment it is stopped.

Python 3.11's `asyncio.wait_for` returns the result instead of raising when the cancel lands in
the same loop turn as the awaited event (gh-86296): the push loop then went round again and
`Console.stop()` waited for ever, so a drained node never exited after its calls ended.
"""

import asyncio
from types import SimpleNamespace

from ivr.service.hub import Hub
from ivr.web.console import Console


def test_stop_returns_when_the_cancel_meets_a_push():
    async def run() -> list[bool]:
        stopped = []
        for _ in range(20):
            console = Console(SimpleNamespace(hub=Hub(), agents=None, queues=None))
            await console.start()
            await asyncio.sleep(0)          # the push loop is waiting for something to push
            console._dirty.set()            # a push wanted (an event) ...
            stop = asyncio.ensure_future(console.stop())   # ... and the drain's stop, in the same loop turn
            done, _ = await asyncio.wait([stop], timeout=5.0)
            stopped.append(bool(done) and console._task.done())
            if not done:                    # hung: say so once, leave no task behind
                stop.cancel()
                console._task.cancel()
                break
        return stopped

    assert all(asyncio.run(run()))
