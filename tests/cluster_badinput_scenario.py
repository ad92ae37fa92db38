"""The bad-input scenario of tests/test_cluster_badinput.py (issue 13), run in a loopback-only namespace.

One cluster (ivr/cluster.py) of 3 nodes behind Kamailio, flow versions in its PostgreSQL
(`publish`: the nodes serve versions:acme-demo@live):
- node 3's `rtp_host` is an address the machine does not have: it answers OPTIONS 200 but every
  INVITE 500 (its RTP socket cannot open), until it takes itself out (sip selfcheck);
- node 2 is pinned to v1 (`versions:acme-demo@v1`), a node left behind in a rollout;
- v2 is published and `live` moved while calls are up: node 1 (and node 3) follow, node 2 does not;
- PostgreSQL is stopped for a few seconds while calls go on, then started again.
Prints `BADINPUT {json}` with what happened, for the test to judge.
"""

import asyncio
import json
import sys
import time
from pathlib import Path

from ivr import cluster
from tests.cluster_scenario import _call, _rows

ROOT = Path(__file__).resolve().parent.parent
MISSING_ADDRESS = "192.0.2.1"   # not on the namespace's only interface (lo): node 3 cannot open RTP


async def _until(check, timeout_s: float, every_s: float = 0.3):
    """Poll `check` (a blocking function) until it returns something truthy; bounded."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await asyncio.to_thread(check)
        if value or time.monotonic() >= deadline:
            return value
        await asyncio.sleep(every_s)


def _publish_v2(url: str, work: Path) -> int:
    from ivr.flow import versions
    from ivr.flow.versions_store import open_version_store

    work.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "flows" / "demo.yaml").read_text()
    (work / "demo.yaml").write_text(text.replace("Thanks for calling ACME.", "Welcome to ACME, version two."))
    store = open_version_store(work, url)
    try:
        manifest, _, _ = versions.publish(store, work / "demo.yaml", author="test", message="v2", alias="live")
    finally:
        store.close()
    return manifest.version


async def scenario(run_dir: Path) -> dict:
    spec = cluster.ClusterSpec(nodes=3, run_dir=run_dir, max_calls=8, ping_interval_s=1, shutdown_grace_s=10,
                               publish=True, node_options={
                                   2: {"flows": {"default": "versions:acme-demo@v1"}},
                                   3: {"listen": {"sip": {"rtp_host": MISSING_ADDRESS, "unhealthy_after": 2,
                                                          "unhealthy_s": 600}}}})
    state = await asyncio.to_thread(cluster.up, spec)
    url = state["pg"]["url"]
    node = {n["name"]: n for n in state["nodes"]}
    out: dict = {"nodes": {n["name"]: n["sip"] for n in state["nodes"]}, "flow": state["flow"]}
    try:
        # (c) node 3 answers OPTIONS but not INVITE: each call it gets moves on; then it takes itself out
        first = []
        for i in range(6):
            first.append(asyncio.create_task(_call(f"a{i}", 1.5)))
            await asyncio.sleep(0.3)
        out["half_calls"] = await asyncio.gather(*first)
        out["node3_health"] = await asyncio.to_thread(cluster.node_health, node["node3"]["http"])

        # (a) a rollout: v2 published and live moved while two long calls run on v1
        long_calls = [asyncio.create_task(_call(f"b{i}", 6)) for i in range(2)]
        await asyncio.sleep(2.0)
        out["v2"] = await asyncio.to_thread(_publish_v2, url, run_dir / "v2src")
        moved = await _until(lambda: all((cluster.node_health(node[n]["http"]) or {}).get("flows", {})
                                         .get("default", {}).get("version") == "v2" for n in ("node1", "node3")), 10)
        out["moved_everywhere"] = bool(moved)
        out["status"] = await asyncio.to_thread(cluster.status, run_dir)
        after = []
        for i in range(4):
            after.append(asyncio.create_task(_call(f"c{i}", 1.5)))
            await asyncio.sleep(0.4)
        out["after_move"] = await asyncio.gather(*after)
        out["long_calls"] = await asyncio.gather(*long_calls)

        # (b) PostgreSQL restarting under load: stopped with calls up, calls placed while it is away
        during = [asyncio.create_task(_call(f"d{i}", 4)) for i in range(2)]
        await asyncio.sleep(1.5)
        await asyncio.to_thread(cluster.postgres_ctl, state["pg"], "stop")
        away = []
        for i in range(3):
            away.append(asyncio.create_task(_call(f"e{i}", 1)))
            await asyncio.sleep(0.5)
        # the node's next flow poll (every second) finds the database away; waited for, not assumed done
        out["away_health"] = await _until(lambda: (lambda h: h if h and h["flows"]["default"]["refused"] else None)(
            cluster.node_health(node["node1"]["http"])), 10) or cluster.node_health(node["node1"]["http"])
        await asyncio.sleep(1.0)
        await asyncio.to_thread(cluster.postgres_ctl, state["pg"], "start")
        out["db_calls"] = await asyncio.gather(*during)
        out["away_calls"] = await asyncio.gather(*away)
        callers = {c["caller"] for phase in ("half_calls", "after_move", "long_calls", "db_calls", "away_calls")
                   for c in out[phase]}
        out["records"] = await _until(lambda: (lambda rows: rows if callers <= {r["caller"] for r in rows if
                                                                                r["ended_at"]} else None)(
            _rows(url)), 25, every_s=1.0) or _rows(url)
        out["back_health"] = await _until(lambda: (lambda h: h if h and not h["flows"]["default"]["refused"]
                                                   else None)(cluster.node_health(node["node1"]["http"])), 5)
    finally:
        await asyncio.to_thread(cluster.down, run_dir, 10)
    return out


if __name__ == "__main__":
    result = asyncio.run(scenario(Path(sys.argv[1])))
    print("BADINPUT " + json.dumps(result, default=str), flush=True)
