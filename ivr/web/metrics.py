"""Prometheus metrics from the call-event hub, served at GET /metrics on the HTTP listener.

Names follow Prometheus practice (and Asterisk's res_prometheus, which exposes channel and
call counts the same way): `ivr_` prefix, `_total` counters, `_seconds` histograms, labels
of small, bounded sets (flow name, outcome kind, step, transfer reason capped in number).

`CallMetrics` is a hub subscriber: it only counts, so it runs on the hub's asyncio
consumer. Each service has its own `CollectorRegistry` (never the process-global one), so
several services in one process (tests) keep separate counts. Values that live elsewhere
(admission refusals, records-store and hub health) are read when scraped.

Access: with `IVR_METRICS_TOKEN` set, `Authorization: Bearer <token>` is required (compared
in constant time; 401 otherwise); without it, only loopback peers are answered (403).
"""

import hmac
import ipaddress
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from ivr import callevents as ev

LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
ENGINE_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_REASONS = 50           # distinct transfer reasons kept as labels; beyond: "other"
ERROR_OUTCOMES = {"error", "protocol_error", "peer_lost"}


class CallMetrics:
    def __init__(self, registry: CollectorRegistry | None = None,
                 gauges: Callable[[], dict] | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.active = Gauge("ivr_calls_active", "Calls in progress", ["flow"], registry=r)
        self.started = Counter("ivr_calls_started", "Calls answered", ["flow", "transport"], registry=r)
        self.ended = Counter("ivr_calls", "Calls ended, by how they ended", ["flow", "outcome"], registry=r)
        self.duration = Histogram("ivr_call_duration_seconds", "Call length (audio time)", ["flow"], registry=r,
                                  buckets=(10, 30, 60, 120, 300, 600, 1800, 3600))
        self.turns = Counter("ivr_turns", "Turns, by caller input kind", ["flow", "kind"], registry=r)
        self.latency = Histogram("ivr_turn_latency_seconds", "Caller's last voiced frame to the first reply frame",
                                 ["flow"], registry=r, buckets=LATENCY_BUCKETS_S)
        self.engine = {name: Histogram(f"ivr_{name}_seconds", f"{label} time per turn", registry=r,
                                       buckets=ENGINE_BUCKETS_S)
                       for name, label in (("asr", "Recognition"), ("tts", "Synthesis"), ("http", "HTTP step"),
                                           ("flow", "Flow interpreter"))}
        self.no_match = Counter("ivr_no_match", "Caller input not understood", ["flow", "step"], registry=r)
        self.no_input = Counter("ivr_no_input", "Listening timed out with no input", ["flow", "step"], registry=r)
        self.barge_ins = Counter("ivr_prompts_cut", "Prompts cut by the caller", ["by"], registry=r)
        self.transfers = Counter("ivr_transfers", "Transfers requested", ["flow", "reason"], registry=r)
        self.transfer_failures = Counter("ivr_transfer_failures", "Transfers that failed", ["flow"], registry=r)
        self.errors = Counter("ivr_errors", "Calls ended by an error or a protocol fault", ["flow", "kind"],
                              registry=r)
        self._flows: dict[str, str] = {}
        self._reasons: set[str] = set()
        if gauges is not None:
            r.register(_Polled(gauges))

    def __call__(self, event: ev.CallEvent) -> None:
        flow = self._flows.get(event.call_id, "")
        if isinstance(event, ev.CallBegan):
            flow = self._flows[event.call_id] = event.flow
            self.active.labels(flow).inc()
            self.started.labels(flow, event.transport).inc()
        elif isinstance(event, ev.TurnEnded):
            self._turn(flow, event)
        elif isinstance(event, ev.PromptCut):
            self.barge_ins.labels(event.by).inc()
        elif isinstance(event, ev.TransferRequested):
            self.transfers.labels(flow, self._reason(event.reason)).inc()
        elif isinstance(event, ev.TransferFailed):
            self.transfer_failures.labels(flow).inc()
        elif isinstance(event, ev.CallEnded):
            if event.call_id in self._flows:
                self.active.labels(self._flows.pop(event.call_id)).dec()
            self.ended.labels(flow, event.kind).inc()
            self.duration.labels(flow).observe(event.t_ms / 1000)
            if event.kind in ERROR_OUTCOMES:
                self.errors.labels(flow, event.kind).inc()

    def _turn(self, flow: str, event: ev.TurnEnded) -> None:
        self.turns.labels(flow, event.kind).inc()
        step = event.step or ""
        if event.kind == "no_input":
            self.no_input.labels(flow, step).inc()
        elif event.kind in ("speech", "dtmf") and not event.match:
            self.no_match.labels(flow, step).inc()
        if event.latency_ms is not None:
            self.latency.labels(flow).observe(event.latency_ms / 1000)
        for name, histogram in self.engine.items():
            value = event.timing.get(f"{name}_ms")
            if isinstance(value, int | float):
                histogram.observe(value / 1000)

    def _reason(self, reason: str) -> str:
        reason = (reason or "").strip()[:40]
        if reason in self._reasons or len(self._reasons) < MAX_REASONS:
            self._reasons.add(reason)
            return reason
        return "other"

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Polled:
    """Values owned elsewhere, read at scrape time: {"name": (kind, help, value)}."""

    def __init__(self, read: Callable[[], dict]) -> None:
        self.read = read

    def collect(self):
        for name, (kind, text, value) in self.read().items():
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(name, text, value=float(value))


def allowed(request: web.Request, token: str | None) -> int:
    """200 if the request may read metrics, else the status to answer (401/403)."""
    if token:
        given = request.headers.get("Authorization", "")
        return 200 if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()) else 401
    try:
        return 200 if ipaddress.ip_address((request.remote or "").split("%")[0]).is_loopback else 403
    except ValueError:
        return 403


async def handle(request: web.Request, metrics: CallMetrics | None, token: str | None) -> web.Response:
    """GET /metrics."""
    if metrics is None:
        return web.Response(status=404, text="metrics are off\n")
    status = allowed(request, token)
    if status == 401:
        return web.Response(status=401, text="a valid 'Authorization: Bearer <IVR_METRICS_TOKEN>' is required\n",
                            headers={"WWW-Authenticate": 'Bearer realm="ivr"'})
    if status == 403:
        return web.Response(status=403, text="metrics answer loopback peers only; set IVR_METRICS_TOKEN to allow "
                                             "others with a bearer token\n")
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def service_values(service) -> dict:
    """What the service itself counts (admission, records store, hub), for `_Polled`."""
    values = {"ivr_calls_max": ("gauge", "Most calls at once (admission limit)", service.cfg.max_calls),
              "ivr_admission_refusals_total": ("counter", "Calls refused as busy (max_calls reached or stopping)",
                                               service.admission.refused)}
    store = getattr(service, "store", None)
    if store is not None:
        status = store.status()
        values.update({
            "ivr_records_down": ("gauge", "1 while the records database is unavailable", int(status["down"])),
            "ivr_records_spooled": ("gauge", "Records waiting in the spool for the database", status["spooled"]),
            "ivr_records_written_total": ("counter", "Records written to the database", status["written"]),
            "ivr_records_rejected_total": ("counter", "Records the database refused (set aside)",
                                           status["rejected"])})
    hub = getattr(service, "hub", None)
    if hub is not None:
        subs = list(hub.subs)
        values.update({
            "ivr_hub_events_total": ("counter", "Call events published", hub.published),
            "ivr_hub_events_dropped_total": ("counter", "Call events a subscriber lost (queue full or closing)",
                                             sum(s.dropped for s in subs)),
            "ivr_hub_subscriber_errors_total": ("counter", "Subscriber failures", sum(s.errors for s in subs))})
    relay = getattr(service, "relay", None)
    if relay is not None:   # several nodes: the console relay (ivr/service/relay.py)
        counts = relay.stats()
        values.update({
            "ivr_relay_sent_total": ("counter", "Call events sent to the other nodes' consoles", counts["sent"]),
            "ivr_relay_received_total": ("counter", "Other nodes' call events shown here", counts["received"]),
            "ivr_relay_not_sent_total": ("counter", "Call events not relayed (database away, too big)",
                                         counts["not_sent_db_down"] + counts["too_big"]),
            "ivr_relay_down": ("gauge", "1 while the relay cannot reach PostgreSQL", int(counts["down"]))})
    return values


def for_service(service) -> CallMetrics:
    """The service's metrics, subscribed to its hub (call from the running event loop)."""
    metrics = CallMetrics(gauges=lambda: service_values(service))
    service.hub.subscribe(metrics, name="metrics")
    return metrics
