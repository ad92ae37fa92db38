"""The cluster scenario of tests/test_cluster.py, run inside a loopback-only network namespace.

PostgreSQL, Kamailio and 3 `ivr serve` nodes (ivr/cluster.py); calls with our SIP client
through the proxy; `kill -9` of node 1 mid-run; a drain of node 2 with calls in progress.
Prints `CLUSTER {json}` with what happened, for the test to judge.
"""

import asyncio
import json
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from ivr import cluster
from ivr.clients.sip import run_sip_call

PROXY = ("127.0.0.1", 5060)


async def _call(name: str, seconds: float) -> dict:
    audio = np.zeros(int(16000 * seconds), np.int16)
    started = time.monotonic()
    try:
        result = await run_sip_call(*PROXY, audio, from_user=name, dtmf=[(2200, "2")], tail_ms=200, timeout_s=8)
        outcome = result.close_reason or "completed"
    except Exception as exc:   # a refusal other than busy, or no answer: recorded, judged by the test
        outcome = f"error {type(exc).__name__}: {exc}"
    return {"caller": name, "outcome": outcome, "setup_s": round(time.monotonic() - started, 2)}


def _post(url: str) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=5) as resp:
        return json.loads(resp.read())


def _sipp(run_dir: Path, calls: int = 12) -> int | None:
    """SIPp (Debian's sip-tester), 6 calls/s held 1 s, dialog-correct behind the proxy
    (tests/data/sipp_uac_rr.xml): its exit status, 0 when every call succeeded; None without sipp."""
    import shutil
    import subprocess

    if not shutil.which("sipp"):
        return None
    scenario = Path(__file__).resolve().parent / "data" / "sipp_uac_rr.xml"
    proc = subprocess.run(["sipp", "-sf", str(scenario), "-m", str(calls), "-r", "6", "-l", str(calls), "-d", "1000",
                           "-i", "127.0.0.1", "-p", "5091", "-s", "ivr", "-timeout", "30", "-timeout_error",
                           "-nostdin", f"{PROXY[0]}:{PROXY[1]}"], capture_output=True, cwd=run_dir, timeout=60)
    return proc.returncode


def _flood(count: int = 300, source: str = "127.0.0.9") -> dict:
    """`count` OPTIONS from one source as fast as it goes (bounded: 300 datagrams, 3 s): how many
    the proxy answered before pike blocked the source."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        port = sock.getsockname()[1]
        for n in range(count):
            msg = (f"OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {source}:{port};branch=z9hG4bK-fl{n}\r\n"
                   f"From: <sip:flood@{source}>;tag=f{n}\r\nTo: <sip:127.0.0.1:5060>\r\nCall-ID: flood-{n}@{source}\r\n"
                   f"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
            sock.sendto(msg.encode(), PROXY)
        sock.settimeout(0.5)
        answered, deadline = 0, time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                sock.recvfrom(65535)
            except TimeoutError:
                break
            answered += 1
    return {"sent": count, "answered": answered}


def _rows(url: str) -> list[dict]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT c.caller, c.outcome, c.ended_at, c.flow, c.flow_version, c.data, "
                            "(SELECT count(*) FROM turns t WHERE t.call_id = c.call_id) AS turn_rows "
                            "FROM calls c").fetchall()
    for row in rows:
        params = json.loads(row.pop("data") or "{}").get("params", {})
        row["node"] = params.get("request_uri", "").rsplit("@", 1)[-1]
    return rows


class HalfNode(asyncio.DatagramProtocol):
    """A broken node: answers OPTIONS (503 until `healthy`, then 200) and never answers an INVITE."""

    def __init__(self) -> None:
        self.healthy, self.invites, self.transport = False, 0, None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        head, _, _ = data.decode(errors="replace").partition("\r\n\r\n")
        lines = head.split("\r\n")
        if lines[0].startswith("INVITE"):
            self.invites += 1
        if not lines[0].startswith("OPTIONS"):
            return
        keep = [line for line in lines[1:] if line.split(":", 1)[0].lower() in ("via", "from", "to", "call-id", "cseq")]
        status = "200 OK" if self.healthy else "503 Service Unavailable"
        self.transport.sendto(("SIP/2.0 " + status + "\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n")
                              .encode(), addr)


async def scenario(run_dir: Path) -> dict:
    half = HalfNode()
    listener, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: half,
                                                                            local_addr=("127.0.0.20", 5060))
    spec = cluster.ClusterSpec(nodes=3, run_dir=run_dir, max_calls=8, ping_interval_s=1, shutdown_grace_s=30,
                               extra_targets=("127.0.0.20:5060",))
    state = await asyncio.to_thread(cluster.up, spec)
    node1, node2 = state["nodes"][0], state["nodes"][1]
    out: dict = {}
    try:
        out["spread"] = await asyncio.gather(*(_call(f"a{i}", 1.5) for i in range(6)))
        out["sipp_rc"] = await asyncio.to_thread(_sipp, run_dir)
        # kill -9 of node 1 while 6 calls are up, then new calls every 0.3 s
        long_calls = [asyncio.create_task(_call(f"b{i}", 7)) for i in range(6)]
        await asyncio.sleep(4.5)   # each has had its first turn
        os.kill(node1["pid"], signal.SIGKILL)
        after = []
        for i in range(6):
            after.append(asyncio.create_task(_call(f"c{i}", 1)))
            await asyncio.sleep(0.3)
        out["killed_calls"] = await asyncio.gather(*long_calls)
        out["after_kill"] = await asyncio.gather(*after)
        # drain node 2 with calls in progress; new calls meanwhile
        draining = [asyncio.create_task(_call(f"d{i}", 4)) for i in range(4)]
        await asyncio.sleep(1.5)
        out["drain_answer"] = await asyncio.to_thread(_post, f"http://{node2['http']}/drain")
        during = []
        for i in range(4):
            during.append(asyncio.create_task(_call(f"e{i}", 1)))
            await asyncio.sleep(0.4)
        out["drained_calls"] = await asyncio.gather(*draining)
        out["during_drain"] = await asyncio.gather(*during)
        out["flood"] = await asyncio.to_thread(_flood)
        out["after_flood"] = await _call("f0", 1)   # another source is not blocked
        # a node that answers OPTIONS but never INVITE: calls sent to it move on after the timeout
        half.healthy = True
        await asyncio.sleep(1.5)   # a probe: it is back in rotation
        half_calls = []
        for i in range(4):
            half_calls.append(asyncio.create_task(_call(f"h{i}", 1)))
            await asyncio.sleep(0.3)
        out["half_node"] = {"calls": await asyncio.gather(*half_calls), "invites": half.invites}
        out["node2_exited"] = await asyncio.to_thread(cluster.stop_pid, node2["pid"], 0, 40)   # signal 0: wait
        await asyncio.sleep(1.0)   # the surviving node's last records
        out["records"] = _rows(state["pg"]["url"])
        out["nodes"] = {n["name"]: n["sip"] for n in state["nodes"]}
    finally:
        await asyncio.to_thread(cluster.down, run_dir, 10)
        listener.close()
    return out


if __name__ == "__main__":
    result = asyncio.run(scenario(Path(sys.argv[1])))
    print("CLUSTER " + json.dumps(result, default=str), flush=True)


def run_scenario(tmp_path_factory, module: str, tag: str, timeout_s: float) -> dict:
    """Run `tests.<module>.scenario` in a loopback-only network namespace and return what it printed
    after `tag`; skipped without Debian's kamailio or PostgreSQL (scripts/setup.sh installs both)."""
    import shutil

    import pytest

    from tests.pg_fixture import bin_dir
    from tests.sip_netns import run_in_netns

    if not shutil.which("kamailio"):
        pytest.skip("kamailio not installed (scripts/setup.sh installs Debian's kamailio)")
    if bin_dir() is None:
        pytest.skip("PostgreSQL server binaries not installed")
    run_dir = tmp_path_factory.mktemp(module)
    code = (f"import asyncio, json; from pathlib import Path; from tests.{module} import scenario; "
            f"print('{tag} ' + json.dumps(asyncio.run(scenario(Path('{run_dir}'))), default=str), flush=True)")
    return run_in_netns(code, tag, timeout_s=timeout_s)
