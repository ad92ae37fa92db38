"""The retail hotline end to end on audio: caller ID lookup, a spoken order number, a
confirmation, an HTTP call to the real demo order service, and a templated answer."""

import asyncio
from datetime import datetime
from pathlib import Path

import pytest

from ivr.demo_backend import start_backend
from ivr.flow.loader import load_flow
from ivr.replay import replay_samples

ROOT = Path(__file__).resolve().parent.parent
CALLER = [
    ("pause", 5500), ("say", "Where is my order?"),
    ("pause", 4500), ("say", "four eight one five one six"),
    ("pause", 4500), ("say", "yes"),
    ("pause", 15000), ("say", "goodbye"),
    ("pause", 4000),
]

pytestmark = pytest.mark.slow


def replay_with_backend(samples, flow, asr, prompts, tmp_path, backend_up=True):
    async def go():
        runner, url = await start_backend(db_path=tmp_path / "orders.db")
        if not backend_up:
            await runner.cleanup()
        try:
            return await replay_samples(samples, flow, asr, prompts, call_id="retail", caller="+15550100",
                                        env={"ORDERS_API": url}, language="en-US",   # routed to English
                                        at_s=datetime.fromisoformat("2026-11-24T10:00:00-05:00").timestamp())
        finally:
            if backend_up:
                await runner.cleanup()
    return asyncio.run(go()).trace


def test_order_status_call_through_the_real_order_service(line_audio, whisper_asr, prompt_cache, tmp_path):
    flow = load_flow(ROOT / "flows" / "retail" / "retail.yaml")
    trace = replay_with_backend(line_audio(CALLER), flow, whisper_asr, prompt_cache, tmp_path)
    said = " ".join(s for t in trace.turns for s in t.said)
    assert "Thanks for calling ACME, Alice." in said                      # caller lookup by caller ID
    assert "That's 4 8 1 5 1 6. Is that right?" in said                   # slot + confirmation
    assert "shipped on" in said and "UPS" in said                          # the order service's answer
    assert trace.path[:8] == ["choose_language",   # passed: the call was routed to English
                              "greet", "main", "track", "order/ask_number", "order/fetch", "order/done", "shipped"]
    assert trace.outcome.kind == "hangup"
    fetched = [t for t in trace.turns if "http_ms" in t.timing]
    assert fetched and all(t.timing["http_ms"] < 2000 for t in fetched)


def test_order_service_down_sends_the_caller_to_an_agent(line_audio, whisper_asr, prompt_cache, tmp_path):
    flow = load_flow(ROOT / "flows" / "retail" / "retail.yaml")
    trace = replay_with_backend(line_audio(CALLER), flow, whisper_asr, prompt_cache, tmp_path, backend_up=False)
    said = " ".join(s for t in trace.turns for s in t.said)
    assert "Thanks for calling ACME." in said                              # no name: the lookup failed
    assert "isn't answering" in said
    assert trace.outcome.kind == "transfer" and trace.outcome.context["slots"]["order_id"] == "481516"


def test_a_pause_inside_an_order_number_does_not_end_the_turn(line_audio, whisper_asr, prompt_cache, tmp_path):
    """Digit words match the slot's phrase hints, but only a full number may end the turn early."""
    caller = [("pause", 5500), ("say", "Where is my order?"),
              ("pause", 4500), ("say", "four eight one"), ("pause", 400), ("say", "five one six"),
              ("pause", 6000)]
    flow = load_flow(ROOT / "flows" / "retail" / "retail.yaml")
    trace = replay_with_backend(line_audio(caller), flow, whisper_asr, prompt_cache, tmp_path)
    number = next(t for t in trace.turns if t.step == "order/ask_number" and t.kind == "speech")
    assert number.match and number.match["choice"] == "order_id"
    assert "That's 4 8 1 5 1 6. Is that right?" in number.said
