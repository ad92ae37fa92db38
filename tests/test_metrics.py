"""Prometheus /metrics: counts from the call-event hub, per-service registry, and access
rules (bearer token or loopback). The service test makes a real call through the WebSocket
bridge and reads /metrics over real HTTP on 127.0.0.1; the same call lands in the records
database the service opened."""


import asyncio
import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request

from ivr import callevents as ev
from ivr.web.metrics import CallMetrics, allowed


def sample(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {line_start!r} in:\n{text}")


def total(text: str, prefix: str, having: str = "") -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(prefix) and having in line)


def test_events_become_counters_and_histograms():
    metrics, other = CallMetrics(), CallMetrics()        # separate registries: no clash, no sharing
    metrics(ev.CallBegan(call_id="a", flow="retail", transport="ws"))
    text = metrics.render().decode()
    assert sample(text, 'ivr_calls_active{flow="retail"}') == 1
    for index, (kind, match) in enumerate([("speech", {"choice": "x"}), ("speech", None), ("no_input", None)]):
        metrics(ev.TurnEnded(call_id="a", index=index, kind=kind, step="menu", match=match, latency_ms=640.0,
                             timing={"asr_ms": 120.0, "tts_ms": 30.0, "http_ms": 80.0}))
    metrics(ev.PromptCut(call_id="a", by="speech"))
    metrics(ev.TransferRequested(call_id="a", target="+1555", reason="agent_requested"))
    metrics(ev.TransferFailed(call_id="a", target="+1555", why="refused"))
    metrics(ev.CallEnded(call_id="a", t_ms=42_000, kind="transfer_failed"))
    metrics(ev.CallBegan(call_id="b", flow="retail", transport="sip"))
    metrics(ev.CallEnded(call_id="b", t_ms=1000, kind="protocol_error", why="oversized frame"))
    text = metrics.render().decode()
    assert sample(text, 'ivr_calls_active{flow="retail"}') == 0
    assert sample(text, 'ivr_calls_total{flow="retail",outcome="transfer_failed"}') == 1
    assert sample(text, 'ivr_calls_started_total{flow="retail",transport="sip"}') == 1
    assert sample(text, 'ivr_turns_total{flow="retail",kind="speech"}') == 2
    assert sample(text, 'ivr_no_match_total{flow="retail",step="menu"}') == 1
    assert sample(text, 'ivr_no_input_total{flow="retail",step="menu"}') == 1
    assert sample(text, 'ivr_turn_latency_seconds_bucket{flow="retail",le="0.75"}') == 3
    assert sample(text, "ivr_asr_seconds_count") == 3 and sample(text, "ivr_http_seconds_sum") == pytest.approx(0.24)
    assert sample(text, 'ivr_transfers_total{flow="retail",reason="agent_requested"}') == 1
    assert sample(text, 'ivr_transfer_failures_total{flow="retail"}') == 1
    assert sample(text, 'ivr_errors_total{flow="retail",kind="protocol_error"}') == 1
    assert sample(text, 'ivr_prompts_cut_total{by="speech"}') == 1
    assert "ivr_calls_total{" not in other.render().decode()


def test_access_rules():
    def request(peer, auth=None):
        headers = {"Authorization": auth} if auth else {}
        req = make_mocked_request("GET", "/metrics", headers=headers)
        return req.clone(remote=peer)

    assert allowed(request("127.0.0.1"), None) == 200
    assert allowed(request("::1"), None) == 200
    assert allowed(request("192.0.2.7"), None) == 403
    assert allowed(request("192.0.2.7", "Bearer s3cret"), "s3cret") == 200
    assert allowed(request("127.0.0.1", "Bearer wrong"), "s3cret") == 401
    assert allowed(request("127.0.0.1"), "s3cret") == 401


ROOT = Path(__file__).resolve().parent.parent
HOURS = [("pause", 2500), ("say", "opening hours"), ("pause", 5000)]


def get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.mark.slow
def test_bridge_call_is_counted_on_metrics_and_stored_in_the_database(tmp_path, line_audio):
    from ivr.clients.twilio_ws import run_ws_call
    from ivr.service.config import Listener, ServeConfig
    from ivr.service.service import Service

    cfg = ServeConfig(listeners={name: Listener("127.0.0.1", 0) for name in ("ws", "http")},
                      default_flow=ROOT / "flows" / "demo.yaml", asr="whisper", max_calls=1,
                      records_dir=tmp_path / "records", reload=False, shutdown_grace_ms=2000,
                      metrics_token="s3cret-token")
    audio = line_audio(HOURS)

    async def go():
        service = Service(cfg, {})
        bound = await service.start()
        url = "http://{}:{}/metrics".format(*bound["http"])
        try:
            media = "ws://{}:{}/media".format(*bound["ws"])
            first = asyncio.create_task(run_ws_call(media, audio, custom={"from": "+15550100"}))
            await asyncio.sleep(1.0)
            await run_ws_call(media, line_audio([("pause", 1000)]), tail_ms=500)    # busy: max_calls is 1
            await first
            deadline = time.monotonic() + 15
            while True:                                # the call's end reaches the hub just after
                status, text = await asyncio.to_thread(get, url, "s3cret-token")
                if "ivr_calls_total{" in text or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            refused = [(await asyncio.to_thread(get, url, token))[0] for token in (None, "wrong", "s3cret-tokeN")]
        finally:
            await service.stop(grace_ms=1000)
        return status, text, refused

    status, text, refused = asyncio.run(go())
    assert status == 200 and refused == [401, 401, 401]
    assert total(text, "ivr_calls_started_total{", 'transport="ws"') == 1
    assert total(text, "ivr_calls_total{") == 1 and total(text, "ivr_calls_active{") == 0
    assert total(text, "ivr_turns_total{") >= 2
    assert sample(text, "ivr_asr_seconds_count") >= 1 and sample(text, "ivr_admission_refusals_total") == 1
    db = sqlite3.connect(tmp_path / "records" / "ivr.sqlite3")
    ((caller, outcome, turns, transport),) = db.execute("SELECT caller, outcome, turns, transport FROM calls")
    assert caller == "+15550100" and outcome and transport == "ws"
    assert db.execute("SELECT count(*) FROM turns").fetchone()[0] == turns >= 2
