"""Call-event hub benchmark: what `publish` costs the call loop, and how many events per second
the hub delivers to its subscribers.

    .venv/bin/python scripts/bench_hub.py [--events 200000] [--json build/bench/hub.json]

Events are realistic `TurnEnded`s (heard text, three candidates, two replies, timings) and
`PromptPlayed`s, alternating. Set-ups, each run on one event loop like the service's:

- publish only: no subscriber (the call loop's side alone, filter included or not);
- counter: one quick sync subscriber on an asyncio task (like the metrics);
- records: the counter + an async subscriber + the JSON records writer in its thread
  (appending each event to a per-call JSONL, records folded at CallEnded), no filter;
- service: the same + the privacy entrance filter (`ivr.privacy.redact_event`), i.e. what
  `ivr serve` runs (runs on fewer events: it is the slowest).

Sustained rate = events published and delivered to every subscriber, divided by the wall time
until the last subscriber has them (publishing in bursts of 500, yielding to the loop between
bursts as calls do). Bounded in count and time.
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchlib import machine_info

from ivr.callevents import CallBegan, CallEnded, PromptPlayed, TurnEnded
from ivr.privacy import redact_event
from ivr.records import JsonRecords
from ivr.service.hub import Hub
from ivr.trace import write_json

BURST = 500
CALLS = 16     # concurrent calls
TURNS = 20     # turns per call


def _turn(call_id: str, i: int) -> TurnEnded:
    return TurnEnded(call_id=call_id, t_ms=3000 * i, at_s=time.time(), index=i, kind="speech", step="main",
                     heard="what are your opening hours", confidence=0.91,
                     candidates=({"choice": "hours", "score": 0.93}, {"choice": "track", "score": 0.41},
                                 {"choice": "agent", "score": 0.2}),
                     match={"choice": "hours", "score": 0.93, "via": "step"},
                     said=("Our opening hours are nine to five.", "Anything else?"), next_step="more",
                     endpoint="early_match", t_speech_start_ms=1000, t_speech_end_ms=2400, t_endpoint_ms=2600,
                     t_reply_ms=3100, latency_ms=480.0, timing={"asr_ms": 210.0, "flow_ms": 0.6, "tts_ms": 40.0})


def events(n: int) -> list:
    """Calls of TURNS turns (CallBegan, TURNS x (PromptPlayed, TurnEnded), CallEnded), CALLS at a
    time, their events interleaved as concurrent calls' are; about n events in all."""
    out: list = []
    per_call = 2 + 2 * TURNS
    for group in range(max(1, n // (per_call * CALLS))):
        calls = [f"{group * CALLS + c:032x}" for c in range(CALLS)]
        streams = []
        for call_id in calls:
            stream = [CallBegan(call_id=call_id, at_s=time.time(), transport="ws", flow="bench")]
            for i in range(TURNS):
                stream.append(PromptPlayed(call_id=call_id, t_ms=3000 * i, at_s=time.time(),
                                           text="Our opening hours are nine to five, Monday to Friday.",
                                           duration_ms=3100))
                stream.append(_turn(call_id, i))
            stream.append(CallEnded(call_id=call_id, t_ms=3000 * TURNS, at_s=time.time(), kind="hangup"))
            streams.append(stream)
        for step in range(per_call):
            out.extend(stream[step] for stream in streams)
    return out


async def publish_cost(items: list, with_filter: bool) -> float:
    """Mean µs per publish with no subscriber (what the call loop pays)."""
    hub = Hub(filter=redact_event if with_filter else None)
    t0 = time.perf_counter()
    for event in items:
        hub.publish(event)
    elapsed = time.perf_counter() - t0
    await hub.close(1.0)
    return elapsed / len(items) * 1e6


async def sustained(items: list, setup: str, directory: Path) -> dict:
    hub = Hub(filter=redact_event if setup == "service" else None, queue_size=len(items) + 100)
    counts: dict[str, int] = {}

    def counter(event):
        counts[type(event).__name__] = counts.get(type(event).__name__, 0) + 1

    async def console(event):
        return event

    hub.subscribe(counter, name="counter")
    records = None
    if setup in ("records", "service"):
        hub.subscribe(console, name="console")
        records = JsonRecords(directory)
        hub.subscribe(records, name="records", thread=True)
    publish_s = 0.0
    t0 = time.perf_counter()
    for start in range(0, len(items), BURST):
        p0 = time.perf_counter()
        for event in items[start:start + BURST]:
            hub.publish(event)
        publish_s += time.perf_counter() - p0
        await asyncio.sleep(0)
    stats = await hub.close(120.0)
    elapsed = time.perf_counter() - t0
    delivered = min(s["delivered"] for s in stats["subscribers"].values())
    dropped = sum(s["dropped"] for s in stats["subscribers"].values())
    if records is not None:
        records.close()
    return {"setup": setup, "events": len(items), "delivered_to_all": delivered, "dropped": dropped,
            "events_per_s": round(delivered / elapsed), "publish_us": round(publish_s / stats["published"] * 1e6, 2),
            "wall_s": round(elapsed, 2)}


async def main_async(n: int) -> dict:
    items = events(n)
    results: dict = {"machine": machine_info(), "events": n, "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                  time.gmtime())}
    results["publish_us_no_filter"] = round(statistics.median(
        [await publish_cost(items[:20000], False) for _ in range(3)]), 2)
    results["publish_us_redact_filter"] = round(statistics.median(
        [await publish_cost(items[:20000], True) for _ in range(3)]), 2)
    with tempfile.TemporaryDirectory() as tmp:
        results["sustained"] = [await sustained(items, "counter", Path(tmp)),
                                await sustained(items[:40_000], "records", Path(tmp) / "records"),
                                await sustained(items[:10_000], "service", Path(tmp) / "service")]
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not 1000 <= args.events <= 2_000_000:
        print("bench_hub: --events must be between 1000 and 2000000", file=sys.stderr)
        return 2
    results = asyncio.run(main_async(args.events))
    print(f"publish, no subscriber: {results['publish_us_no_filter']} µs/event "
          f"({results['publish_us_redact_filter']} µs with the privacy filter)")
    for r in results["sustained"]:
        print(f"{r['setup']:8s}: {r['events_per_s']:>9,} events/s delivered to every subscriber "
              f"(publish {r['publish_us']} µs/event, dropped {r['dropped']}, {r['wall_s']} s)")
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
