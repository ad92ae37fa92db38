"""The cluster (issue 13): proxy overhead per call setup, failover after a node dies, calls lost in a drain,
and calls at p95 reply latency <= 800 ms with 1, 2 and 3 nodes. docs/BENCHMARKS.md has the figures.

    python scripts/bench_cluster.py [--part overhead,failover,drain,capacity] [--nodes 3]

Runs itself inside a loopback-only network namespace (`unshare -n`, root): PostgreSQL, Kamailio
(deploy/kamailio, probing every 1 s, no-answer timeout 2 s) and the nodes via `ivr cluster` (ivr/cluster.py).
Every loop is bounded in count and time. Setup time = INVITE sent -> 200 OK received, by our SIP caller.
"""

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from ivr import cluster  # noqa: E402
from ivr.clients.sip import CODECS, _SipCaller, run_sip_call  # noqa: E402

PROXY = ("127.0.0.1", 5060)


async def setup_ms(dest: tuple[str, int], hold_s: float = 0.0) -> float | str:
    """One call: the INVITE -> 200 time (ms), then BYE after `hold_s`; a string says why it failed."""
    caller = _SipCaller(dest, "ivr", "bench", CODECS["PCMU"], None, 8.0, "127.0.0.1")
    try:
        await caller.open()
        started = time.perf_counter()
        if not await caller.invite():
            return caller.result.close_reason
        took = (time.perf_counter() - started) * 1000
        await asyncio.sleep(hold_s)
        await caller.hang_up()
        return took
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        await caller.close()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def overhead(state: dict, calls: int = 40) -> dict:
    """Setup time straight to node 1 and through the proxy (sequential calls, one at a time)."""
    node = state["nodes"][0]["sip"].split(":")
    direct, proxied = [], []
    for _ in range(calls):
        direct.append(await setup_ms((node[0], int(node[1]))))
        proxied.append(await setup_ms(PROXY))
    d = [v for v in direct if isinstance(v, float)]
    p = [v for v in proxied if isinstance(v, float)]
    return {"calls": calls, "direct_p50_ms": round(pct(d, 50), 2), "direct_p95_ms": round(pct(d, 95), 2),
            "proxy_p50_ms": round(pct(p, 50), 2), "proxy_p95_ms": round(pct(p, 95), 2),
            "overhead_p50_ms": round(pct(p, 50) - pct(d, 50), 2),
            "failed": len(direct) + len(proxied) - len(d) - len(p)}


async def failover(state: dict, every_ms: int = 100, after_s: float = 6.0) -> dict:
    """kill -9 node 1, then a new call every `every_ms` for `after_s`: how long calls kept reaching the
    dead node (slow setups: the proxy's no-answer timeout, then the next node), and how many failed."""
    victim = state["nodes"][0]
    tasks = []
    os.kill(victim["pid"], signal.SIGKILL)
    killed = time.monotonic()
    for _ in range(int(after_s * 1000 / every_ms)):
        at = time.monotonic() - killed
        tasks.append((at, asyncio.create_task(setup_ms(PROXY, hold_s=0.2))))
        await asyncio.sleep(every_ms / 1000)
    results = [(at, await task) for at, task in tasks]
    ok = [(at, v) for at, v in results if isinstance(v, float)]
    normal = statistics.median(v for _, v in ok)
    slow = [(at, v) for at, v in ok if v > normal + 1000]   # routed to the dead node first
    return {"calls": len(results), "failed": [v for _, v in results if not isinstance(v, float)],
            "normal_setup_ms": round(normal, 1), "moved_after_timeout": len(slow),
            "moved_setup_ms_max": round(max((v for _, v in slow), default=0), 1),
            "last_call_to_dead_node_s_after_kill": round(max((at for at, _ in slow), default=0), 2)}


async def drain(state: dict, every_ms: int = 200, run_s: float = 12.0, hold_s: float = 3.0) -> dict:
    """A new call (held `hold_s`) every `every_ms`; node 2 drained after 3 s: calls lost (goal 0)."""
    node = state["nodes"][1]
    tasks, drained_at = [], None
    start = time.monotonic()
    while time.monotonic() - start < run_s:
        if drained_at is None and time.monotonic() - start >= 3.0:
            answer = await asyncio.to_thread(_post_drain, node["http"])
            drained_at = time.monotonic() - start
        tasks.append(asyncio.create_task(setup_ms(PROXY, hold_s=hold_s)))
        await asyncio.sleep(every_ms / 1000)
    results = await asyncio.gather(*tasks)
    exited = await asyncio.to_thread(cluster.stop_pid, node["pid"], 0, 30)
    return {"calls": len(results), "lost": [v for v in results if not isinstance(v, float)],
            "calls_on_node_at_drain": answer["calls"], "node_exited_after_its_calls": exited,
            "setup_p95_ms": round(pct([v for v in results if isinstance(v, float)], 95), 1)}


def _post_drain(http: str) -> dict:
    req = urllib.request.Request(f"http://{http}/drain", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


async def capacity(nodes: int, levels: list[int], seconds: float = 6.0) -> list[dict]:
    """N callers at once, each pressing 2 after the greeting (a DTMF turn), then listening: the
    reply latency p95 per level, and each node's CPU over the level (from /proc)."""
    rows = []
    run = Path(tempfile.mkdtemp(prefix="ivr-bench-cluster-"))
    spec = cluster.ClusterSpec(nodes=nodes, run_dir=run, max_calls=64)
    state = await asyncio.to_thread(cluster.up, spec)
    try:
        for n in levels:
            cpu0 = [_cpu_s(node["pid"]) for node in state["nodes"]]
            t0 = time.monotonic()
            audio = np.zeros(int(16000 * seconds), np.int16)
            results = await asyncio.gather(*(run_sip_call(*PROXY, audio, dtmf=[(2200, "2")], tail_ms=200,
                                                          timeout_s=10) for _ in range(n)), return_exceptions=True)
            wall = time.monotonic() - t0
            cpu = [round((_cpu_s(node["pid"]) - c0) / wall * 100)
                   for node, c0 in zip(state["nodes"], cpu0, strict=True)]
            lat = [v for r in results if not isinstance(r, BaseException) for v in r.reply_latencies_ms]
            failed = sum(1 for r in results if isinstance(r, BaseException) or r.close_reason.startswith("busy"))
            rows.append({"nodes": nodes, "calls": n, "turns": len(lat), "p50_ms": round(pct(lat, 50)),
                         "p95_ms": round(pct(lat, 95)), "failed": failed, "node_cpu_pct": cpu})
            print(json.dumps(rows[-1]), flush=True)
            if not lat or pct(lat, 95) > 800 or failed:
                break
    finally:
        await asyncio.to_thread(cluster.down, run, 10)
    return rows


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main(parts: list[str], nodes: int, levels: list[int]) -> dict:
    out: dict = {}
    if "capacity" in parts:
        out["capacity"] = [row for k in range(1, nodes + 1) for row in await capacity(k, levels)]
    if {"overhead", "failover", "drain"} & set(parts):
        run = Path(tempfile.mkdtemp(prefix="ivr-bench-cluster-"))
        state = await asyncio.to_thread(cluster.up, cluster.ClusterSpec(nodes=nodes, run_dir=run, max_calls=32))
        try:
            if "overhead" in parts:
                out["overhead"] = await overhead(state)
                print(json.dumps(out["overhead"]), flush=True)
            if "drain" in parts:
                out["drain"] = await drain(state)
                print(json.dumps(out["drain"]), flush=True)
            if "failover" in parts:   # last: it kills node 1
                out["failover"] = await failover(state)
                print(json.dumps(out["failover"]), flush=True)
        finally:
            await asyncio.to_thread(cluster.down, run, 10)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", default="overhead,failover,drain,capacity")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--levels", default="2,4,6,8,10,12,16", help="concurrent calls tried per node count")
    args = parser.parse_args()
    if os.environ.get("IVR_BENCH_NETNS") != "1":   # loopback only: rerun inside a fresh network namespace
        script = f'ip link set lo up && IVR_BENCH_NETNS=1 exec {sys.executable} {" ".join(map(str, sys.argv))}'
        sys.exit(subprocess.run(["unshare", "-n", "sh", "-c", script], cwd=ROOT).returncode)
    result = asyncio.run(main(args.part.split(","), args.nodes, [int(v) for v in args.levels.split(",")]))
    print("RESULT " + json.dumps(result))
