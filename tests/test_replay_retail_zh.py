"""The Mandarin retail hotline by voice, end to end: whisper base recognises a caller voiced
by espeak-ng (pinyin with tone numbers, through an 8 kHz mu-law line), the flow routes the
menu choice, takes a six-digit order number said in Mandarin digits, a spoken yes, and
hands over to an agent."""

import asyncio
from datetime import datetime
from pathlib import Path

import pytest

from ivr.demo_backend import start_backend
from ivr.flow.loader import load_flow
from ivr.replay import replay_samples

ROOT = Path(__file__).resolve().parent.parent
FLOW = ROOT / "flows" / "retail" / "retail.yaml"   # English and Mandarin; the call is in Mandarin
AT = datetime.fromisoformat("2026-11-24T10:00:00+08:00").timestamp()   # a Tuesday, open

pytestmark = pytest.mark.slow


def replay(samples, asr, prompts, tmp_path):
    async def go():
        runner, url = await start_backend(db_path=tmp_path / "orders.db")
        try:
            return await replay_samples(samples, load_flow(FLOW), asr, prompts, call_id="retail-zh",
                                        caller="+8613800000000", env={"ORDERS_API": url}, at_s=AT,
                                        language="zh-CN")
        finally:
            await runner.cleanup()
    return asyncio.run(go()).trace


def spoken(trace):
    """What the recognizer heard per turn, for a failing assertion's message."""
    return [(t.step, t.heard, (t.match or {}).get("choice"), t.t_speech_start_ms) for t in trace.turns]


def order_by_voice(line_audio, asr, prompts, tmp_path, *, ask: str, number: str, yes: str, done: str,
                   confirmation: str, carrier: str):
    """A caller who asks for their order (`ask`), says its number, confirms it and is done: the whole
    tracking path, the number read back (`confirmation`), the order service's `carrier`, a hang-up."""
    caller = [("pause", 9000), ("say", ask),
              ("pause", 4000), ("say", number),
              ("pause", 4000), ("say", yes),
              ("pause", 12000), ("say", done),
              ("pause", 4000)]
    trace = replay(line_audio(caller), asr, prompts, tmp_path)
    said = " ".join(s for t in trace.turns for s in t.said)
    assert trace.path == ["choose_language", "greet", "main", "track", "order/ask_number", "order/fetch",
                          "order/done", "shipped", "anything_else", "bye"], spoken(trace)
    assert confirmation in said                                  # slot + confirmation
    assert carrier in said                                       # the order service's answer
    assert trace.outcome.kind == "hangup"
    return trace


def test_order_by_voice_in_mandarin(zh_line_audio, whisper_base, zh_prompt_cache, tmp_path):
    trace = order_by_voice(zh_line_audio, whisper_base, zh_prompt_cache, tmp_path, ask="查询订单",
                           number="四八一五一六", yes="对", done="不用了谢谢",
                           confirmation="您的订单号是四 八 幺 五 幺 六，对吗？", carrier="UPS")
    number = next(t for t in trace.turns if t.step == "order/ask_number")
    assert number.match["choice"] == "order_id"


def test_agent_by_voice_in_mandarin(zh_line_audio, whisper_base, zh_prompt_cache, tmp_path):
    caller = [("pause", 9000), ("say", "人工客服"), ("pause", 6000)]
    trace = replay(zh_line_audio(caller), whisper_base, zh_prompt_cache, tmp_path)
    assert trace.path == ["choose_language", "greet", "main", "to_agent"], spoken(trace)
    assert trace.outcome.kind == "transfer"
