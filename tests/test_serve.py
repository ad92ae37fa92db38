"""`ivr serve` as a whole: real listeners on loopback, real engines, real clients.

A WebSocket (Twilio Media Streams) call and an AudioSocket call drive the demo flow; the
admission limit answers a second caller with the busy prompt while the first call carries
on; a caller who vanishes mid-call still leaves a record; health and shutdown behave.
"""

import asyncio
import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from ivr.clients.audiosocket import run_audiosocket_call
from ivr.clients.twilio_ws import run_ws_call
from ivr.service.config import Listener, ServeConfig
from ivr.service.service import Service

ROOT = Path(__file__).resolve().parent.parent
HOURS = [("pause", 2500), ("say", "opening hours"), ("pause", 5000)]

pytestmark = pytest.mark.slow


def config(tmp_path, max_calls=1, listeners=("ws", "audiosocket", "http")) -> ServeConfig:
    return ServeConfig(listeners={name: Listener("127.0.0.1", 0) for name in listeners},
                       default_flow=ROOT / "flows" / "demo.yaml", asr="whisper", max_calls=max_calls,
                       records_dir=tmp_path / "records", reload=False, shutdown_grace_ms=2000)


def records(tmp_path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "records").rglob("*.json"))]


def health(service) -> tuple[int, dict]:
    host, port = service.listeners["http"].address
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_ws_and_audiosocket_calls_run_the_flow_and_leave_records(tmp_path, line_audio):
    audio = line_audio(HOURS)

    async def go():
        service = Service(config(tmp_path, max_calls=2), {})
        bound = await service.start()
        try:
            status, data = await asyncio.to_thread(health, service)
            assert status == 200 and data["ok"] and data["max_calls"] == 2
            ws_host, ws_port = bound["ws"]
            as_host, as_port = bound["audiosocket"]
            ws, sock = await asyncio.gather(
                run_ws_call(f"ws://{ws_host}:{ws_port}/media", audio, custom={"from": "+15550100"}),
                run_audiosocket_call(as_host, as_port, audio))
        finally:
            await service.stop(grace_ms=1000)
        return ws, sock, service

    ws, sock, service = asyncio.run(go())
    for result in (ws, sock):
        assert result.reply_latencies_ms and result.unanswered_turns == 0   # answered; speed: scripts/loadgen.py
        assert np.abs(result.received_16k).mean() > 50        # the caller heard prompts
    recs = records(tmp_path)
    assert len(recs) == 2 and {r["call"]["kind"] for r in recs} == {"ws", "audiosocket"}
    for rec in recs:
        assert rec["path"][:3] == ["greet", "main", "hours"], rec["path"]
    assert next(r for r in recs if r["call"]["kind"] == "ws")["call"]["caller"] == "+15550100"
    assert not service.admission.active


def test_admission_busy_second_caller_while_first_call_continues(tmp_path, line_audio):
    audio = line_audio(HOURS)

    async def go():
        service = Service(config(tmp_path, max_calls=1), {})
        bound = await service.start()
        host, port = bound["ws"]
        try:
            first = asyncio.create_task(run_ws_call(f"ws://{host}:{port}/media", audio))
            await asyncio.sleep(1.0)
            second = await run_ws_call(f"ws://{host}:{port}/media", line_audio([("pause", 3000)]), tail_ms=500)
            _, data = await asyncio.to_thread(health, service)
            first = await first
        finally:
            await service.stop(grace_ms=1000)
        return first, second, data

    first, second, data = asyncio.run(go())
    assert data["refused_busy"] == 1 and data["calls"] == 1
    assert np.abs(second.received_16k).mean() > 50      # heard "All our lines are busy"
    assert first.reply_latencies_ms[0] is not None       # the call in progress was untouched
    recs = records(tmp_path)
    assert len(recs) == 1 and recs[0]["path"][:3] == ["greet", "main", "hours"]


def test_caller_vanishing_mid_call_ends_it_cleanly_with_a_record(tmp_path, line_audio):
    audio = line_audio([("pause", 2500), ("say", "opening hours"), ("pause", 20000)])

    async def go():
        service = Service(config(tmp_path, listeners=("ws", "http")), {})
        bound = await service.start()
        host, port = bound["ws"]
        try:
            call = asyncio.create_task(run_ws_call(f"ws://{host}:{port}/media", audio))
            await asyncio.sleep(7)
            call.cancel()                                # the peer's connection just drops
            await asyncio.gather(call, return_exceptions=True)
            for _ in range(100):
                if not service.calls:
                    break
                await asyncio.sleep(0.1)
            calls_after = len(service.calls)
        finally:
            await service.stop(grace_ms=1000)
        return calls_after

    assert asyncio.run(go()) == 0
    [rec] = records(tmp_path)
    assert rec["outcome"]["kind"] == "caller_hangup" and "hours" in rec["path"]


def test_shutdown_ends_calls_at_the_deadline_and_health_says_so(tmp_path, line_audio):
    audio = line_audio([("pause", 30000)])

    async def go():
        service = Service(config(tmp_path, listeners=("ws", "http")), {})
        bound = await service.start()
        host, port = bound["ws"]
        call = asyncio.create_task(run_ws_call(f"ws://{host}:{port}/media", audio, tail_ms=100))
        await asyncio.sleep(2)
        stopping = asyncio.create_task(service.stop(grace_ms=1500))
        await asyncio.sleep(0.2)
        status, _ = await asyncio.to_thread(health, service)
        await stopping
        result = await asyncio.wait_for(call, 10)
        return status, result

    status, result = asyncio.run(go())
    assert status == 503                                 # not taking calls while stopping
    assert result.sent_ms < 15000                        # the call was ended, not left running
    [rec] = records(tmp_path)
    assert rec["outcome"]["kind"] in ("shutdown", "hangup", "caller_hangup")


def test_bridge_transfer_is_handed_to_the_telephony_side(tmp_path, line_audio):
    """Twilio and Asterisk ask the service afterwards where the call goes."""
    audio = line_audio([("pause", 6000)])

    async def go():
        service = Service(config(tmp_path, listeners=("ws", "http")), {})
        bound = await service.start()
        host, port = bound["ws"]
        try:
            result = await run_ws_call(f"ws://{host}:{port}/media", audio, dtmf=[(2500, "0")], call_sid="CAxfer1",
                                       tail_ms=500)
            hhost, hport = service.listeners["http"].address

            def ask():
                with urllib.request.urlopen(f"http://{hhost}:{hport}/calls/CAxfer1/transfer", timeout=5) as r:
                    text = r.read().decode()
                req = urllib.request.Request(f"http://{hhost}:{hport}/twilio/after-stream",
                                             data=b"CallSid=CAxfer1&From=%2B15550100", method="POST")
                with urllib.request.urlopen(req, timeout=5) as r:
                    twiml = r.read().decode()
                req = urllib.request.Request(f"http://{hhost}:{hport}/twilio/after-stream",
                                             data=b"CallSid=CAother", method="POST")
                with urllib.request.urlopen(req, timeout=5) as r:
                    other = r.read().decode()
                return text, twiml, other
            answers = await asyncio.to_thread(ask)
        finally:
            await service.stop(grace_ms=1000)
        return result, answers

    result, (text, twiml, other) = asyncio.run(go())
    assert "transfer" in (result.close_reason or "")
    assert text == "sip:agents@127.0.0.1:5080"
    assert "<Dial><Sip>sip:agents@127.0.0.1:5080</Sip></Dial>" in twiml
    assert "<Hangup/>" in other
