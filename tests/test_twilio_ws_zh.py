"""The Mandarin retail hotline over the Twilio Media Streams bridge, by voice: a caller (espeak-ng
pinyin through the 8 kHz mu-law stream) picks the menu choice, says an order number in Mandarin
digits, confirms with a spoken yes, hears the order service's answer, and asks for an agent."""

import asyncio
from pathlib import Path

import pytest

from ivr.call import Call
from ivr.clients import run_ws_call
from ivr.demo_backend import start_backend
from ivr.flow.interpreter import Interpreter
from ivr.flow.loader import load_flow
from ivr.transports.ws_server import WsBridgeServer

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "s3cret-token-for-zh-tests"

pytestmark = pytest.mark.slow


class OneCall:
    """Admission for one call at a time."""

    def __init__(self) -> None:
        self.active = 0

    def admit(self, info) -> bool:
        self.active += 1
        return self.active == 1

    def release(self, info) -> None:
        self.active -= 1


def test_mandarin_hotline_by_voice_over_the_bridge(zh_line_audio, whisper_base, zh_prompt_cache, tmp_path):
    flow = load_flow(ROOT / "flows" / "retail" / "retail.yaml", language="zh-CN")
    caller = zh_line_audio([("pause", 9000), ("say", "查询订单"),
                            ("pause", 4000), ("say", "四八一五一六"),
                            ("pause", 4000), ("say", "对"),
                            ("pause", 12000), ("say", "人工客服"), ("pause", 300)])
    slots, traces = OneCall(), []
    zh_prompt_cache.warm(flow.prompts())   # as `ivr serve` does before it takes calls

    async def main():
        runner, orders_url = await start_backend(db_path=tmp_path / "orders.db")

        async def handler(transport, info) -> None:
            try:
                call = Call(info.call_id, Interpreter(flow, {"ORDERS_API": orders_url}, "zh-CN"), whisper_base,
                            zh_prompt_cache, transport, caller=info.caller, called=info.called)
                traces.append(await call.run())
            finally:
                slots.release(info)

        server = WsBridgeServer("127.0.0.1", 0, handler=handler, admission=slots, token=TOKEN)
        host, port = await server.start()
        try:
            return await run_ws_call(f"ws://{host}:{port}/media", caller, token=TOKEN,
                                     custom={"from": "+8613800000000"}, tail_ms=6000)
        finally:
            await server.stop()
            await runner.cleanup()

    result = asyncio.run(main())
    assert len(traces) == 1 and slots.active == 0
    trace = traces[0]
    heard = [(t.step, t.heard, (t.match or {}).get("choice")) for t in trace.turns if t.kind == "speech"]
    assert [c for _s, _h, c in heard] == ["track", "order_id", "yes", "agent"], (heard, trace.path)
    said = " ".join(s for t in trace.turns for s in t.said)
    assert "您的订单号是四 八 幺 五 幺 六，对吗？" in said and "UPS" in said, said
    assert trace.path[-1] == "to_agent" and trace.outcome.kind == "transfer"
    assert result.unanswered_turns == 0
