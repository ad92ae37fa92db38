"""The records store as a hub subscriber: call events in, rows out.

    attach(hub, store)

`CallBegan` opens the call's row, each `TurnEnded` is a turn row, `CallEnded` completes
the call row (outcome, reason, why, duration) and, with the other events (prompts, cuts,
keys, transfers), is kept in the events table. The store only queues, so this runs on the
hub's asyncio consumer without ever waiting for the disk. Events arrive already redacted
(the hub's entrance filter).
"""

from ivr import callevents as ev
from ivr.store.store import RecordStore

COMMON = ("call_id", "t_ms", "at_s")


class StoreSubscriber:
    def __init__(self, store: RecordStore) -> None:
        self.store = store
        self._turns: dict[str, int] = {}

    def __call__(self, event: ev.CallEvent) -> None:
        if isinstance(event, ev.CallBegan):
            self._turns[event.call_id] = 0
            self.store.begin_call({
                "call_id": event.call_id, "transport": event.transport, "transport_id": event.transport_id,
                "caller": event.caller, "called": event.called, "remote": event.remote, "flow": event.flow,
                "flow_version": event.flow_version, "language": event.language, "started_at": event.at_s,
                "data": {"asr": event.asr, "tts": event.tts, "params": event.params,
                         "recording": event.recording or None}})
        elif isinstance(event, ev.TurnEnded):
            self._turns[event.call_id] = self._turns.get(event.call_id, 0) + 1
            self.store.add_turn(turn_row(event))
        else:
            self.store.add_event(event.call_id, type(event).__name__, event.t_ms, event.at_s, event_data(event))
            if isinstance(event, ev.CallEnded):
                self.store.end_call({
                    "call_id": event.call_id, "started_at": event.at_s - event.t_ms / 1000, "ended_at": event.at_s,
                    "outcome": event.kind, "reason": event.reason, "target": event.target, "end_step": event.step,
                    "why": event.why, "duration_ms": event.t_ms, "turns": self._turns.pop(event.call_id, 0)})


def turn_row(event: ev.TurnEnded) -> dict:
    match = event.match or {}
    return {"call_id": event.call_id, "idx": event.index, "kind": event.kind, "step": event.step,
            "heard": event.heard, "confidence": event.confidence, "choice": match.get("choice"),
            "score": match.get("score"), "via": match.get("via"), "said": list(event.said),
            "next_step": event.next_step, "endpoint": event.endpoint, "barge_in": event.barge_in,
            "t_ms": event.t_ms, "latency_ms": event.latency_ms, "at_s": event.at_s, "sentiment": event.sentiment,
            "data": {"candidates": list(event.candidates), "timing": event.timing, "sentiment": event.sentiment,
                     "t_speech_start_ms": event.t_speech_start_ms, "t_speech_end_ms": event.t_speech_end_ms,
                     "t_endpoint_ms": event.t_endpoint_ms, "t_reply_ms": event.t_reply_ms}}


def event_data(event: ev.CallEvent) -> dict:
    data = ev.to_dict(event)
    for key in (*COMMON, "type"):
        data.pop(key, None)
    return data


def attach(hub, store: RecordStore):
    """Subscribe `store` to every call event of `hub`; returns the subscription."""
    return hub.subscribe(StoreSubscriber(store), name="records-db")


def build_store(cfg) -> RecordStore | None:
    """The records store the service config asks for, opened and started (blocking: run it
    in a thread). None when `records.database` is "" (off)."""
    from ivr.store import TranscriptPolicy, open_store

    url = cfg.database_url()
    if not url:
        return None
    store = open_store(url, cfg.spool_path(), base=cfg.database_base,
                       retention_days=cfg.retention_days or None,
                       transcripts=TranscriptPolicy(cfg.transcripts, dict(cfg.transcripts_flows)))
    return store.start()


async def start_records(service) -> RecordStore | None:
    """Open the service's records database and subscribe it to the hub (from the event loop)."""
    import asyncio

    store = await asyncio.to_thread(build_store, service.cfg)
    if store is not None:
        attach(service.hub, store)
    return store


async def stop_records(store: RecordStore | None) -> None:
    """After the hub has closed: write what is queued, then disconnect."""
    import asyncio

    if store is not None:
        await asyncio.to_thread(store.close)
