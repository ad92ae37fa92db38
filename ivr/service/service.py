"""`ivr serve`: listeners in, one task per call, shared engines, admission, records, shutdown.

One ASR model per language and one prompt cache per voice, loaded before any listener
opens, shared by every call. Each call gets the flow version current when it starts (hot
reload swaps flows for new calls only) and its own `Call` loop, keyed by the id the listener's
lifecycle made for it. Every call's events go to one hub (`self.hub`); records (JSON files,
the database), metrics and the rest subscribe there, and get a call's end however it ends.
"""

import asyncio
import dataclasses
import logging
import time

import numpy as np

from ivr import sentiment
from ivr.agents import AgentDirectory, QueueManager
from ivr.agents.dispatch import Dispatcher
from ivr.call import Call, CallConfig
from ivr.callevents import CallBegan, CallEnded, flow_version
from ivr.errors import UserError
from ivr.flow.http import HttpClient
from ivr.flow.interpreter import Interpreter
from ivr.flow.model import Flow
from ivr.flow.store import FlowStore
from ivr.privacy import redact_event
from ivr.recordings import Recorder, RecordingPolicy
from ivr.records import JsonRecords
from ivr.service.config import ServeConfig
from ivr.service.hub import Hub
from ivr.service.transfers import TransferBook
from ivr.store.store import TranscriptPolicy
from ivr.transports.base import CallInfo, Transport

log = logging.getLogger("ivr.serve")


class Admission:
    """At most `max_calls` at once; beyond that, new callers get a busy answer. Keyed by the
    service-made call id (`CallInfo.call_id`); the listeners' lifecycle logs refusals (throttled)."""

    def __init__(self, max_calls: int) -> None:
        self.max_calls = max_calls
        self.active: set[str] = set()
        self.refused = 0
        self.open = True

    def admit(self, info: CallInfo) -> bool:
        if not self.open or len(self.active) >= self.max_calls or info.call_id in self.active:
            self.refused += 1
            return False
        self.active.add(info.call_id)
        return True

    def release(self, info: CallInfo) -> None:
        self.active.discard(info.call_id)


class Service:
    def __init__(self, cfg: ServeConfig, env: dict[str, str] | None = None) -> None:
        self.cfg = cfg
        self.env = dict(env or {})
        self.admission = Admission(cfg.max_calls)
        self.flows = FlowStore(on_reload=self._prepare, versions_dir=cfg.versions_dir,
                               versions_database=cfg.versions_database)
        self.asr: dict[str, object] = {}
        self.prompts: dict[str, object] = {}
        self.http = HttpClient()
        self.calls: dict[str, asyncio.Task] = {}
        self.transfers = TransferBook()   # the peer's call id -> the bridge transfer the flow asked for
        self.hub = Hub(filter=redact_event)   # the one entrance: card numbers never reach a subscriber
        texts = TranscriptPolicy(cfg.transcripts, dict(cfg.transcripts_flows))   # the database's rule, for both
        self.json_records = JsonRecords(cfg.records_dir, texts) if cfg.records_dir is not None else None
        policy = RecordingPolicy(cfg.recordings, dict(cfg.recordings_flows))   # consent: off by default
        self.recorder = (Recorder(cfg.records_dir, policy, retention_days=cfg.retention_days)
                         if cfg.records_dir is not None and policy.any else None)   # stereo WAVs, ivr/recordings.py
        self._versions: dict[str, tuple[Flow, str]] = {}   # flow path -> (flow, its version)
        self.store = None      # the records database (ivr.store), a hub subscriber
        self.metrics = None    # Prometheus metrics (ivr.web.metrics), a hub subscriber
        self.relay = None      # several nodes on PostgreSQL: every console sees every call (ivr/service/relay.py)
        self._current: dict[str, Call] = {}
        self.finished = 0
        self.listeners: dict[str, object] = {}
        self.ready = False
        self.busy_audio: np.ndarray | None = None
        self._watch: asyncio.Task | None = None
        # Queues and agents (ivr/agents): the console reads and changes these; calls wait through a port.
        agents = cfg.agents
        self.agents = AgentDirectory(wrap_up_s=agents.wrap_up_s, max_misses=agents.max_misses)
        self.queues = QueueManager(self.agents, default_handle_s=agents.default_handle_s,
                                   recent_calls=agents.recent_calls)
        self.dispatcher = Dispatcher(self.agents, self.queues, self.hub.publish, ring_timeout_s=agents.ring_timeout_s)
        self.shared_agents = None   # several nodes on PostgreSQL: agents and queues shared (ivr/agents/shared.py)
        self.draining = False
        self.stop_requested = asyncio.Event()   # SIGTERM, SIGINT or POST /drain: `ivr serve` drains, then exits

    # ---- start-up ------------------------------------------------------------------

    def load(self) -> None:
        """Flows, models and prompts: everything slow, before any listener opens."""
        paths = self.cfg.flow_paths()
        if not paths:
            raise UserError("no flow to serve", "give --flow FLOW.yaml or flows.default in the config")
        keys = {"default": self.cfg.default_flow} if self.cfg.default_flow else {}
        keys.update(self.cfg.routes)
        for key, path in keys.items():
            self.flows.add(key, path)
        for flow in self.flows.flows():   # a versions: alias's canary too
            self._prepare(flow)
        first = self.flows.get(self.flows.names()[0])
        self.busy_audio = self._cache_for(first).get(self.cfg.busy_prompt)

    def _prepare(self, flow: Flow) -> None:
        from ivr.asr.loader import load_asr

        self._versions[flow.path] = (flow, flow_version(flow.sources or (flow.path,)))
        for variant in _variants(flow):   # one recognizer and one voice per language the flow speaks
            lang = variant.language
            if lang not in self.asr:
                self.asr[lang] = load_asr(self.cfg.asr, lang, self.cfg.models_dir,
                                          str(self.cfg.model) if self.cfg.model else None)
            self._cache_for(variant).warm([*variant.prompts(), *Interpreter(variant).fixed_defaults()])
            sentiment.preload(lang)   # SnowNLP loads in ~3 s: before the first call, not during it

    def _cache_for(self, flow: Flow):
        from ivr.tts.cache import PromptCache, default_cache_dir
        from ivr.tts.registry import load_tts

        voice = self.cfg.voice or flow.voice or ""
        key = f"{voice}|{flow.language}"
        if key not in self.prompts:
            self.prompts[key] = PromptCache(load_tts(voice or None, flow.language), default_cache_dir())
        return self.prompts[key]

    def _version(self, flow: Flow) -> str:
        """The version a call's records name: "v3" for a published flow, else a hash of its files."""
        label = self.flows.version_of(flow)
        if label:
            return label
        known = self._versions.get(flow.path)
        if known is not None and known[0] is flow:
            return known[1]
        version = flow_version(flow.sources or (flow.path,))
        self._versions[flow.path] = (flow, version)
        return version

    async def start(self) -> dict[str, tuple[str, int]]:
        await asyncio.to_thread(self.load)
        # Subscribers first, listeners last: no call's events can go unseen.
        if self.json_records is not None:
            await asyncio.to_thread(self.json_records.recover)
            self.hub.subscribe(self.json_records, name="records-json", thread=True)
        from ivr.store.subscriber import start_records
        from ivr.web.metrics import for_service

        self.metrics = for_service(self)
        self.store = await start_records(self)
        from ivr.service.relay import start_relay

        self.relay = await start_relay(self)   # before the listeners: the console takes the other nodes' calls
        if self.recorder is not None:
            self.recorder.start()
        await self._start_agents()
        from ivr.service.listeners import start_listeners

        bound = await start_listeners(self)
        if self.cfg.reload:
            self._watch = asyncio.create_task(self.flows.watch())
        self.ready = True
        return bound

    async def _start_agents(self) -> None:
        """Agents from the users file; handle times and open callbacks from the records database."""
        from ivr.web.users import UserStore

        try:
            self.agents.sync_users(await asyncio.to_thread(UserStore(self.cfg.auth.users_file).users))
        except Exception as exc:   # a bad users file: no agents until it is fixed (the console says why)
            log.warning("agents: users file %s unusable (%s)", self.cfg.auth.users_file, exc)
        self.queues.store = self.queues.callbacks.store = self.store
        await asyncio.to_thread(self.queues.load)
        from ivr.agents.shared import start_shared

        self.shared_agents = await start_shared(self)

    # ---- calls ---------------------------------------------------------------------

    def flow_for(self, info: CallInfo) -> Flow | None:
        for key in (info.called, str(info.params.get("to", "")), str(info.params.get("flow", ""))):
            if key and key in self.cfg.routes:
                return self.flows.pick(key, info.call_id, info.caller)
        return self.flows.pick("default", info.call_id, info.caller) if "default" in self.flows.names() else None

    async def handle(self, transport: Transport, info: CallInfo) -> None:
        """The CallHandler every listener calls for an admitted call."""
        self.calls[info.call_id] = asyncio.current_task()
        call: Call | None = None
        tap = None
        try:
            flow = self.flow_for(info)
            if flow is None:
                log.error("call %s: no flow for '%s' and no default flow", info.call_id, info.called)
                self._unrouted(info)
                await transport.hangup("no flow")
                return
            prompts = self._cache_for(flow)
            interp = Interpreter(flow, self.env, _call_language(flow, info))
            tap = self.recorder.open(info.call_id, flow.name) if self.recorder is not None else None
            call = Call(info.call_id, interp, self.asr[flow.language], prompts, transport,
                        CallConfig(max_call_ms=self.cfg.max_call_ms, live=True), caller=info.caller,
                        called=info.called, tts_name=prompts.engine.name, http=self.http, started_at_s=time.time(),
                        params=info.params, emit=self.hub.publish, transport_kind=info.kind,
                        transport_id=info.peer_id, remote=info.remote, version=self._version(flow),
                        queue_port=self.dispatcher.port(transport), tap=tap)
            if tap is not None:   # the record names the recording
                call.began = dataclasses.replace(call.began, recording=str(tap.path))
            if flow.languages:   # a flow with several languages: each Play and Listen in its own
                call.voices = {v.lang: self._cache_for(v) for v in _variants(flow)}
                call.recognizers = {v.lang: self.asr[v.language] for v in _variants(flow)}
            self._current[info.call_id] = call
            await call.run()
        except asyncio.CancelledError:
            if call is not None:
                call.finish("shutdown", "service stopped")
            raise
        except Exception:
            log.exception("call %s failed", info.call_id)
            if call is not None:
                call.finish("error", "internal error")
        finally:
            if tap is not None:
                tap.close()
            self.admission.release(info)
            self.calls.pop(info.call_id, None)
            self._current.pop(info.call_id, None)
            self.finished += 1

    def _unrouted(self, info: CallInfo) -> None:
        """A call no flow answers still leaves a record saying so."""
        now = time.time()
        self.hub.publish(CallBegan(call_id=info.call_id, at_s=now, transport=info.kind, transport_id=info.peer_id,
                                   caller=info.caller, called=info.called, remote=info.remote,
                                   params=dict(info.params)))
        self.hub.publish(CallEnded(call_id=info.call_id, at_s=now, kind="error", reason="no flow",
                                   why=f"no flow for '{info.called}' and no default flow"))

    def note_transfer(self, info: CallInfo, target: str, reason: str, context: dict) -> None:
        """A bridge (Twilio, AudioSocket) hands the transfer back to the telephony side, which
        asks the HTTP listener for it by the id it knows, the peer's (callSid, AudioSocket UUID;
        kept for the last 1000 transfers; with PostgreSQL, shared with every node: transfers.py)."""
        self.transfers.note(info.peer_id, {"target": target, "reason": reason, "context": context,
                                           "call_id": info.call_id}, self.store)
        log.info("call %s: transfer to %s recorded for the bridge (peer id %s)", info.call_id, target, info.peer_id)

    # ---- health and shutdown -------------------------------------------------------

    def health(self) -> dict:
        sip = self.listeners.get("sip")
        answering = sip.health.status() if hasattr(sip, "health") else None   # INVITEs it cannot answer: selfcheck.py
        return {"ok": self.ready and not self.draining and (answering is None or answering["healthy"]),
                "calls": len(self.calls), "max_calls": self.cfg.max_calls, "sip": answering,
                "capacity": 0 if self.draining else max(0, self.cfg.max_calls - len(self.admission.active)),
                "draining": self.draining,
                "finished": self.finished, "refused_busy": self.admission.refused,
                "events": self.hub.published,
                "relay": self.relay.stats() if self.relay is not None else None,
                "listeners": {k: list(v.address) for k, v in self.listeners.items() if hasattr(v, "address")},
                "flows": self.flows.status()}

    def drain(self) -> None:
        """Take no new calls (SIP: 503 to INVITE and OPTIONS, so a proxy sends them to another
        node; the bridges answer busy); calls in progress go on. `stop()` then waits for them."""
        if not self.draining:
            log.info("draining: no new calls; %d call(s) in progress go on", len(self.calls))
        self.draining = True
        self.admission.open = False
        sip = self.listeners.get("sip")
        if sip is not None:
            sip.draining = True
        self.stop_requested.set()

    async def stop(self, grace_ms: int | None = None) -> None:
        """Stop taking calls, let calls in progress finish until the deadline, then end them."""
        self.drain()
        self.ready = False
        grace_s = (self.cfg.shutdown_grace_ms if grace_ms is None else grace_ms) / 1000
        if self._watch:
            self._watch.cancel()
        pending = list(self.calls.values())
        if pending:
            log.info("waiting up to %.0f s for %d call(s) to finish", grace_s, len(pending))
            _, still = await asyncio.wait(pending, timeout=grace_s)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=5)
        from ivr.service.listeners import stop_listeners

        await self.dispatcher.close()
        if self.shared_agents is not None:
            await self.shared_agents.stop()
        await stop_listeners(self)
        await self.http.close()
        stats = await self.hub.close(deadline_s=5.0)
        from ivr.service.relay import stop_relay

        await stop_relay(self.relay)
        if self.json_records is not None:
            self.json_records.close()
        from ivr.store.subscriber import stop_records

        await stop_records(self.store)
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.close)
        lost = {name: sub["dropped"] for name, sub in stats["subscribers"].items() if sub["dropped"]}
        if lost:
            log.warning("call events lost by subscribers: %s", lost)


def _variants(flow: Flow) -> list[Flow]:
    """The flow in each language it speaks (ivr.flow.languages); itself for a single-language flow."""
    return list(flow.variants.values()) or [flow]


def _call_language(flow: Flow, info: CallInfo) -> str | None:
    """A bridge's `language` parameter (e.g. a Twilio <Parameter name="language" value="zh-CN"/>)
    starts the call in that language, passing the flow's language menu; None: the flow asks."""
    language = str(info.params.get("language") or "").strip()
    return language if language and flow.languages and flow.speaks(language) else None
