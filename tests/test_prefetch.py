"""Prompt prefetch: while the caller hears "Is that right?", the call loop plays the "yes" ahead,
makes the HTTP GET it leads to and has the prompt cache synthesise the templated answer, so the
real "yes" finds that prompt already synthesised (a real piper cache, a real server on 127.0.0.1)."""

import asyncio

import numpy as np
from aiohttp import web

from ivr.audio.frames import silence
from ivr.call import Call, CallConfig
from ivr.flow.interpreter import Interpreter
from ivr.flow.loader import load_flow

FLOW = """
name: prefetch-test
language: en-US
start: ask
steps:
  ask:
    ask: "Please key in your four digit order number."
    collect: {slot: order_id, type: digits, length: 4}
    confirm: "That's {{ slots.order_id | digits }}. Is that right?"
    next: fetch
  fetch:
    http: {get: "BASE/orders/{{ slots.order_id }}", save: order, timeout: 2s}
    on_error: bye
    next: status
  status:
    say: "Order {{ slots.order_id | digits }} is {{ order.status }} and arrives on {{ order.day }}."
    next: bye
  bye:
    say: "Goodbye."
    hangup: true
"""


class KeyedCaller:
    """Silence with keys at given frames; before the confirming key it waits for the call's prefetch
    (bounded), so the test checks what the prefetch did, not how fast it ran."""

    def __init__(self, keys: dict[int, str], wait_before: int) -> None:
        self.keys, self.wait_before = keys, wait_before
        self.call: Call | None = None
        self.events: list[tuple[str, str]] = []

    async def inbound(self):
        for frame in range(2000):   # 40 s of audio at most
            if frame == self.wait_before and self.call.prefetching is not None:
                await asyncio.wait_for(asyncio.shield(self.call.prefetching), 120)
            if frame in self.keys:
                yield self.keys[frame]
            yield silence()
            await asyncio.sleep(0)
            if self.call.done:
                return

    async def send(self, frame: np.ndarray) -> None:
        pass

    async def clear(self) -> None:
        pass

    async def transfer(self, target, reason, context) -> None:
        self.events.append(("transfer", target))

    async def hangup(self, reason: str) -> None:
        self.events.append(("hangup", reason))


def test_confirmed_answer_prompt_is_synthesised_while_the_question_plays(tmp_path, prompt_cache, whisper_asr):
    gets: list[str] = []

    async def order(request):
        gets.append(request.match_info["id"])
        return web.json_response({"status": "packed", "day": "Thursday"})

    async def go():
        app = web.Application()
        app.router.add_get("/orders/{id}", order)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            base = f"http://127.0.0.1:{runner.addresses[0][1]}"
            (tmp_path / "flow.yaml").write_text(FLOW.replace("BASE", base))
            flow = load_flow(tmp_path / "flow.yaml")
            # keys 4 7 1 9 at 1 s, then "1" (yes) at 5 s, once the prefetch is over
            caller = KeyedCaller({50: "4", 60: "7", 70: "1", 80: "9", 250: "1"}, wait_before=250)
            call = Call("prefetch", Interpreter(flow), whisper_asr, prompt_cache, caller, CallConfig(live=True))
            caller.call = call
            before = prompt_cache.stats()
            try:
                trace = await asyncio.wait_for(call.run(), 180)
            finally:
                if call.http is not None:
                    await call.http.close()
            return trace, before, caller
        finally:
            await runner.cleanup()

    answer = "Order 4 7 1 9 is packed and arrives on Thursday."
    prompt_cache.clear_memory()
    trace, before, caller = asyncio.run(go())
    after = prompt_cache.stats()
    said = [s for t in trace.turns for s in t.said]
    assert answer in said and said[-1] == "Goodbye."
    assert caller.events[-1][0] == "hangup"
    # The answer was synthesised once, by the prefetch; the real turn read it from memory.
    assert after["prefetched"] - before["prefetched"] >= 1
    assert prompt_cache.has(answer)
    assert gets == ["4719", "4719"]   # the prefetch's GET, then the flow's own
