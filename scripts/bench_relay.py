"""The console relay between nodes (ivr/service/relay.py): payload sizes, cost per event, delay.

    .venv/bin/python scripts/bench_relay.py [--calls 200] [--rate 200] [--json build/bench/relay.json]

A throwaway PostgreSQL (tests/pg_fixture.py, fsync off: NOTIFY writes no table) on 127.0.0.1 and
two relays in one process, as two nodes: node A's hub (the redaction filter) gets whole calls'
events (CallBegan, 6 turns, QueueJoined, AgentRinging with the transcript, AgentAnswered,
CallEnded; texts of typical length), paced at --rate events/s; node B's relay hands them to a
sink that notes each event's delay from its publish (`at_s`, same machine's clock).

- sizes: bytes of each event as the records keep it (to_dict JSON) and as the relay sends it;
  how many turns an AgentRinging transcript can carry before it is trimmed;
- cost: the publisher thread's time per event (encode + one NOTIFY round trip), events sent
  one by one outside the hub;
- delay: hub publish on A -> B's console sink (p50/p95/max), and what was lost.

Bounded in count and time. On a shared 2-core machine figures are noisy (docs/BENCHMARKS.md).
"""

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import machine_info  # noqa: E402

from ivr import callevents as ev  # noqa: E402
from ivr.privacy import redact_event  # noqa: E402
from ivr.service import relay_wire as wire  # noqa: E402
from ivr.service.hub import Hub  # noqa: E402
from ivr.service.relay import Relay  # noqa: E402

MAX_WALL_S = 240
HEARD = "I ordered a blue jacket two weeks ago and it still has not arrived, can you tell me where it is"
SAID = ("I can help with that. Your order 481516 left our warehouse on Monday and is with the courier; "
        "it should arrive by Thursday.")


def turn(call_id: str, index: int, now: float) -> ev.TurnEnded:
    return ev.TurnEnded(call_id=call_id, at_s=now, t_ms=index * 8000, index=index, kind="speech", step="main",
                        heard=HEARD, confidence=0.91, said=(SAID,), next_step="main", endpoint="silence",
                        candidates=({"choice": "track", "score": 0.71, "signal": "semantic"},
                                    {"choice": "late_delivery", "score": 0.62, "signal": "faq", "group": "faq"},
                                    {"choice": "returns", "score": 0.31, "signal": "semantic"}),
                        match={"choice": "track", "score": 0.71, "via": "semantic"}, latency_ms=420.0,
                        t_speech_start_ms=1000, t_speech_end_ms=4000, t_endpoint_ms=4200, t_reply_ms=4620,
                        timing={"endpoint_silence_ms": 200, "asr_ms": 180.0, "flow_ms": 3.1, "tts_ms": 40.2},
                        sentiment=-0.4)


def ringing(call_id: str, now: float, turns: int) -> ev.AgentRinging:
    transcript = tuple({"heard": HEARD, "said": SAID, "sentiment": -0.4, "step": "main"} for _ in range(turns))
    return ev.AgentRinging(call_id=call_id, at_s=now, agent="alice", address="sip:alice@127.0.0.1:5071",
                           queue="support", caller="+15550101", caller_name="Ann Lee", language="en",
                           intent="track", reason="order late", waited_ms=12000,
                           slots={"order_id": "481516", "pin": "****"}, transcript=transcript,
                           path=("greet", "main", "order_id", "confirm", "answer", "main", "agent"),
                           faq=({"choice": "late_delivery", "score": 0.62},),
                           context={"flow": "retail_en", "caller": {"number": "+15550101", "name": "Ann Lee"}})


def call_events(call_id: str) -> list[ev.CallEvent]:
    now = time.time()
    events = [ev.CallBegan(call_id=call_id, at_s=now, transport="sip", transport_id="a84b4c76e66710@127.0.0.1",
                           caller="+15550101", called="4000", remote="127.0.0.1:5071", flow="retail_en",
                           flow_version="3f2a9c1d0b7e", language="en", asr="whisper-base.en", tts="piper-amy",
                           params={"to": "4000"})]
    events += [turn(call_id, i, now) for i in range(6)]
    events += [ev.QueueJoined(call_id=call_id, at_s=now, queue="support", caller="+15550101", caller_name="Ann Lee",
                              intent="track", reason="order late", position=2, wait_s=40.0),
               ringing(call_id, now, 6),
               ev.AgentAnswered(call_id=call_id, at_s=now, agent="alice", queue="support", waited_ms=12000,
                                ring_ms=3000),
               ev.CallEnded(call_id=call_id, at_s=now, t_ms=90000, kind="transfer", reason="order late",
                            path=("greet", "main", "agent"), stats={"frames": 4500, "audio_ms": 90000})]
    return events


def sizes() -> dict:
    out = {}
    for event in call_events("0190f3a2-7c1e-7d40-9a55-3c2b1e0f9a11"):
        full = len(json.dumps(ev.to_dict(event), separators=(",", ":")).encode())
        sent, trimmed = wire.encode_event("node1", "0" * 16, event)
        out.setdefault(type(event).__name__, {"full_bytes": full, "relayed_bytes": len(sent.encode()),
                                              "trimmed": trimmed})
    fits = 0
    for turns in range(1, 400):
        _, trimmed = wire.encode_event("node1", "0" * 16, ringing("c", time.time(), turns))
        if trimmed:
            break
        fits = turns
    out["AgentRinging_turns_untrimmed"] = fits
    return out


class Sink:
    def __init__(self) -> None:
        self.delays_ms: list[float] = []

    async def on_remote(self, node: str, event) -> None:
        self.delays_ms.append((time.time() - event.at_s) * 1000)

    def remote_live(self, node: str, live, final: bool = False) -> None:
        pass


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2) if ordered else 0.0


async def until(ok, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while not ok() and time.monotonic() < end:   # noqa: ASYNC110 (polling another thread's counters)
        await asyncio.sleep(0.05)


async def run(url: str, calls: int, rate: float) -> dict:
    sink = Sink()
    hub_a = Hub(filter=redact_event)
    a = Relay(url, "node-a").start(hub_a)
    b = Relay(url, "node-b").start(None)
    b.add_sink(sink)
    await until(lambda: a.stats()["listening"] and b.stats()["listening"], 30)
    # cost on the publisher thread, one event at a time (outside the hub)
    sample = call_events("cost")
    a.publish(sample[0])   # connects
    t0 = time.perf_counter()
    count = 0
    for _ in range(50):
        for event in sample:
            a.publish(event)   # blocks this loop while it runs: nothing else is timed meanwhile
            count += 1
    cost_us = (time.perf_counter() - t0) / count * 1e6
    await asyncio.sleep(1.0)
    sink.delays_ms.clear()
    # delay at a steady rate through the hub
    wall_end = time.monotonic() + MAX_WALL_S
    published = 0
    start = time.monotonic()
    for k in range(calls):
        for event in call_events(f"call-{k}"):
            hub_a.publish(_restamp(event))
            published += 1
            lag = published / rate - (time.monotonic() - start)
            if lag > 0:
                await asyncio.sleep(lag)
        if time.monotonic() > wall_end:
            break
    await until(lambda: len(sink.delays_ms) >= published, 10)
    await hub_a.close(deadline_s=5.0)
    stats_a, stats_b = a.stats(), b.stats()
    await a.stop()
    await b.stop()
    d = sink.delays_ms
    return {"publisher_us_per_event": round(cost_us, 1), "published": published, "delivered": len(d),
            "rate_per_s": rate, "delay_p50_ms": pct(d, 0.5), "delay_p95_ms": pct(d, 0.95),
            "delay_max_ms": round(max(d), 2) if d else None, "relay_a": stats_a, "relay_b": stats_b}


def _restamp(event: ev.CallEvent) -> ev.CallEvent:
    import dataclasses

    return dataclasses.replace(event, at_s=time.time())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rate", type=float, default=200.0, help="events per second published on node A")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from tests.pg_fixture import PostgresServer, bin_dir

    found = bin_dir()
    if found is None:
        sys.exit("PostgreSQL server binaries not installed (scripts/setup.sh)")
    server = PostgresServer(found)
    server.init()
    try:
        result = {"machine": machine_info(), "sizes": sizes(),
                  **asyncio.run(run(server.new_database(), min(args.calls, 2000), args.rate))}
    finally:
        server.cleanup()
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
