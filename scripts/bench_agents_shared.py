"""Shared agent state benchmark: how soon a waiting caller's agent phone rings, one node vs two
nodes sharing PostgreSQL (ivr/agents/shared.py).

    .venv/bin/python scripts/bench_agents_shared.py [--rounds 30] [--pg URL] [--json FILE]

Each round, with the agent away and a caller waiting, the agent is set available on a console and
the time until the dispatcher dials her phone is taken (the phone is the dispatcher's SIP
interface, `dial_agent`, recording the moment; the caller then hangs up and the agent goes away):
- memory: one node, no database (the in-memory directory: the floor);
- same node: caller and console on node A, shared through PostgreSQL (a claim: one transaction);
- other node: caller on node B, console on node A (A writes and NOTIFYs, B re-reads, claims).
Also the event loop's longest stall seen by a 5 ms ticker during the shared rounds (what a call
loop sharing it would feel). PostgreSQL: `--pg URL` or a temporary server like the tests' fixture
(fsync on).
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchlib import emit, machine_info, postgres_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.agents import AgentDirectory, QueueManager  # noqa: E402
from ivr.agents.dispatch import Dispatcher  # noqa: E402
from ivr.agents.shared import SharedState  # noqa: E402


class Line:
    def __init__(self, rang: dict, call_id: str) -> None:
        self.rang, self.call_id = rang, call_id

    async def dial_agent(self, address, headers):
        self.rang[self.call_id] = time.perf_counter()
        await asyncio.Event().wait()          # rings until the caller hangs up (cancelled)


def node(url: str | None, name: str):
    directory = AgentDirectory(wrap_up_s=0, max_misses=100)
    queues = QueueManager(directory)
    dispatcher = Dispatcher(directory, queues, lambda event: None, ring_timeout_s=60)
    shared = None
    if url:
        shared = SharedState(url, name, directory, queues, poll_s=5.0).start()
        dispatcher.share(shared)
    return directory, queues, dispatcher, shared


async def until(check, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark round stuck")
        await asyncio.sleep(0.002)


async def rounds(url: str | None, count: int, remote: bool) -> dict:
    a = node(url, "bench-a")
    b = node(url, "bench-b") if remote else a
    a[0].add("ann", "sip:ann@127.0.0.1:5070", status="away")
    a[0].add("bob", "sip:bob@127.0.0.1:5070", status="available")
    a[0].set_status("bob", "ringing", call_id="elsewhere")     # staffed, never free: callers can join
    a[0].answered("bob", "elsewhere")
    stalls: list[float] = []
    stop = asyncio.Event()

    async def ticker():
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            stalls.append((now - last - 0.005) * 1000)
            last = now

    tick = asyncio.create_task(ticker())
    rang: dict[str, float] = {}
    waits_ms = []
    try:
        await until(lambda: b[0].get("bob") is not None and b[0].get("bob").status == "on_call")
        for k in range(count):
            call_id = f"r{k}"
            await until(lambda: b[0].get("ann") is not None and b[0].get("ann").status == "away")
            ticket = b[2].join(call_id, {"queue": "q"}, Line(rang, call_id))
            await until(lambda c=call_id: a[1].position(c) == 1)
            await asyncio.sleep(0.05)
            t0 = time.perf_counter()
            a[0].set_status("ann", "available")
            await until(lambda c=call_id: c in rang)
            waits_ms.append((rang[call_id] - t0) * 1000)
            ticket.leave("caller_hangup")
            await until(lambda c=call_id: a[0].get("ann").status == "available" and a[1].position(c) is None)
            a[0].set_status("ann", "away")
    finally:
        stop.set()
        await tick
        for part in {id(a): a, id(b): b}.values():
            await part[2].close()
            if part[3] is not None:
                await part[3].stop()
    waits_ms.sort()
    return {"rounds": count, "p50_ms": round(statistics.median(waits_ms), 2),
            "p95_ms": round(waits_ms[int(0.95 * (len(waits_ms) - 1))], 2), "max_ms": round(waits_ms[-1], 2),
            "loop_stall_max_ms": round(max(stalls), 2) if stalls else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--pg", help="postgresql://... (default: a temporary server)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict = {"machine": machine_info(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    results["memory"] = asyncio.run(rounds(None, args.rounds, remote=False))
    with postgres_url(args.pg) as url, tempfile.TemporaryDirectory() as tmp:
        from ivr.store import open_store

        open_store(url, Path(tmp) / "spool").start().close()       # migrations
        results["same_node"] = asyncio.run(rounds(url, args.rounds, remote=False))
        results["other_node"] = asyncio.run(rounds(url, args.rounds, remote=True))
    emit(results, args.json)

if __name__ == "__main__":
    main()
