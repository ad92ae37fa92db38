"""`ivr serve` keys calls by ids it makes itself: peers that reuse one id (four Twilio streams
with one callSid, four AudioSocket connections with one fixed UUID) cannot get past the call
limit or share a record. Records say why a protocol fault ended a call; busy refusals are
logged once per interval with a count. Real listeners on loopback, real engines."""

import asyncio
import json
import logging
import uuid
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from ivr.clients.audiosocket import run_audiosocket_call
from ivr.clients.twilio_ws import run_ws_call
from ivr.service.config import Listener, ServeConfig
from ivr.service.service import Service
from ivr.transports import audiosocket as as_wire
from ivr.transports import twilio_ws as ws_wire

ROOT = Path(__file__).resolve().parent.parent
SHARED_UUID = uuid.UUID("0b5e55ed-0000-4000-8000-00000000f00d")

pytestmark = pytest.mark.slow


def config(tmp_path, max_calls=2) -> ServeConfig:
    return ServeConfig(listeners={name: Listener("127.0.0.1", 0) for name in ("ws", "audiosocket", "http")},
                       default_flow=ROOT / "flows" / "demo.yaml", asr="whisper", max_calls=max_calls,
                       records_dir=tmp_path / "records", reload=False, shutdown_grace_ms=2000)


def records(tmp_path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "records").rglob("*.json"))]


def _four_calls_one_peer_id(tmp_path, line_audio, kind: str):
    audio = line_audio([("pause", 4000)])

    async def go():
        service = Service(config(tmp_path, max_calls=2), {})
        bound = await service.start()
        try:
            if kind == "ws":
                host, port = bound["ws"]
                calls = [run_ws_call(f"ws://{host}:{port}/media", audio, call_sid="CAsame", tail_ms=300)
                         for _ in range(4)]
            else:
                host, port = bound["audiosocket"]
                calls = [run_audiosocket_call(host, port, audio, call_uuid=SHARED_UUID) for _ in range(4)]
            results = await asyncio.gather(*calls)
            health = service.health()
        finally:
            await service.stop(grace_ms=1000)
        return results, health, service

    return asyncio.run(go())


@pytest.mark.parametrize(("kind", "peer_id"), [("ws", "CAsame"), ("audiosocket", str(SHARED_UUID))])
def test_the_call_limit_holds_and_every_call_has_its_own_record_whatever_ids_peers_send(
        tmp_path, line_audio, caplog, kind, peer_id):
    with caplog.at_level(logging.INFO, logger="ivr"):
        results, health, service = _four_calls_one_peer_id(tmp_path, line_audio, kind)
    assert health["refused_busy"] == 2 and health["finished"] == 2
    assert not service.admission.active
    recs = records(tmp_path)
    assert len(recs) == 2
    assert len({r["call_id"] for r in recs}) == 2 and all(len(r["call_id"]) == 32 for r in recs)
    assert [r["call"]["transport_id"] for r in recs] == [peer_id, peer_id]
    assert {r["call"]["kind"] for r in recs} == {kind}
    assert all(r["outcome"]["kind"] == "caller_hangup" and r["outcome"]["why"] for r in recs)
    assert all(len(r["call"]["flow_version"]) == 12 for r in recs)
    assert all(np.abs(r.received_16k).mean() > 50 for r in results)   # two heard the flow, two the busy prompt
    # Two refusals within the interval: one line at once, the other counted and reported at stop.
    busy_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("busy")]
    assert len(busy_lines) == 2 and "refused" in busy_lines[0] and "1 more" in busy_lines[1]


def test_records_say_which_protocol_fault_ended_the_call(tmp_path):
    """An oversized WebSocket message (closed with 1009) and an AudioSocket error message."""
    silence_mulaw = b"\xff" * 160

    async def ws_oversized(host, port):
        async with aiohttp.ClientSession() as session, session.ws_connect(f"ws://{host}:{port}/media") as ws:
            await ws.send_str(ws_wire.start_message("MZbig", "CAbig", {}))
            for _ in range(25):
                await ws.send_str(ws_wire.media_message("MZbig", silence_mulaw))
                await asyncio.sleep(0.02)
            await ws.send_str("x" * 70_000)
            async for _ in ws:
                pass
            return ws.close_code

    async def audiosocket_error(host, port):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(as_wire.uuid_message(SHARED_UUID))
        for _ in range(25):
            writer.write(as_wire.audio_message(np.zeros(160, np.int16)))
            await writer.drain()
            await asyncio.sleep(0.02)
        writer.write(as_wire.error_message(0x01))
        await writer.drain()
        await asyncio.wait_for(reader.read(), 10)
        writer.close()

    async def go():
        service = Service(config(tmp_path), {})
        bound = await service.start()
        try:
            code, _ = await asyncio.gather(ws_oversized(*bound["ws"]), audiosocket_error(*bound["audiosocket"]))
            for _ in range(100):
                if not service.calls:
                    break
                await asyncio.sleep(0.05)
        finally:
            await service.stop(grace_ms=1000)
        return code

    assert asyncio.run(go()) == 1009
    by_kind = {r["call"]["kind"]: r["outcome"] for r in records(tmp_path)}
    assert by_kind["ws"]["kind"] == "protocol_error" and by_kind["ws"]["reason"] == "oversized"
    assert "1009" in by_kind["ws"]["why"]
    assert by_kind["audiosocket"]["kind"] == "protocol_error" and by_kind["audiosocket"]["reason"] == "peer_error"
    assert by_kind["audiosocket"]["why"].startswith("AudioSocket peer error")


def test_a_sip_call_record_says_the_caller_sent_bye_and_keeps_the_sip_call_id(tmp_path):
    from ivr.clients.sip import run_sip_call

    audio = np.zeros(16 * 3000, np.int16)

    async def go():
        cfg = config(tmp_path, max_calls=1)
        cfg.listeners = {"sip": Listener("127.0.0.1", 0, {"rate_limit_per_s": 0})}
        service = Service(cfg, {})
        bound = await service.start()
        host, port = bound["sip"]
        try:
            first = asyncio.create_task(run_sip_call(host, port, audio, tail_ms=300))
            await asyncio.sleep(1.0)
            second = await run_sip_call(host, port, audio, tail_ms=100)
            return await first, second
        finally:
            await service.stop(grace_ms=1000)

    first, second = asyncio.run(go())
    assert first.close_reason == "" and second.close_reason.startswith("busy 486")
    [rec] = records(tmp_path)
    assert rec["call"]["kind"] == "sip" and "@" in rec["call"]["transport_id"] and len(rec["call_id"]) == 32
    assert rec["outcome"]["kind"] == "caller_hangup" and rec["outcome"]["reason"] == "bye"
    assert rec["outcome"]["why"] == "BYE from the caller"
