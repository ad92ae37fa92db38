"""Prometheus /metrics: counts from the call-event hub, per-service registry, and access
rules (bearer token or loopback). The service test makes a real call through the WebSocket
bridge and reads /metrics over real HTTP on 127.0.0.1; the same call lands in the records
database the service opened."""


import pytest
from aiohttp.test_utils import make_mocked_request

from ivr import callevents as ev
from ivr.web.metrics import CallMetrics, allowed


def sample(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {line_start!r} in:\n{text}")


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
