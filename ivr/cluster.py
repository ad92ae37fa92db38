"""A local cluster for demos and tests: PostgreSQL, Kamailio and N `ivr serve` nodes on loopback.

    ivr cluster up --nodes 3 [--run-dir .cluster] [--flow flows/demo.yaml]
    ivr cluster status | down

Kamailio (deploy/kamailio/kamailio.cfg) listens on the proxy address (127.0.0.1:5060) and
dispatches to node k on 127.0.0.(k+1) (SIP :5060, HTTP :8081), each with its own records spool,
all writing to one PostgreSQL on 127.0.0.1 (a throwaway initdb under /tmp, as the `postgres`
user when run as root; `down` removes it). Pids, configs and logs go under the run dir;
`cluster.json` there says what runs, so `down` stops exactly that: the nodes drain (SIGTERM:
their calls finish, up to the grace), then Kamailio, then PostgreSQL. Loopback only: every
127.x address is on `lo` on Linux.
"""

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ivr.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
KAMAILIO_CFG = ROOT / "deploy" / "kamailio" / "kamailio.cfg"


@dataclass
class ClusterSpec:
    nodes: int = 3
    run_dir: Path = Path(".cluster")
    flow: Path = ROOT / "flows" / "demo.yaml"
    proxy: str = "127.0.0.1:5060"
    sip_port: int = 5060
    http_port: int = 8081
    asr: str = "auto"
    max_calls: int = 16
    shutdown_grace_s: int = 60
    ping_interval_s: int = 1
    extra_targets: tuple[str, ...] = ()   # more "host:port" lines in the dispatcher list (tests: a broken node)
    publish: bool = False                 # publish `flow` into PostgreSQL as NAME@live; nodes serve versions:NAME@live
    node_options: dict = field(default_factory=dict)   # node index -> config merged into its own (e.g. a pinned flow)


def node_host(index: int) -> str:
    """Node 1 on 127.0.0.2, node 2 on 127.0.0.3, ..."""
    return f"127.0.0.{index + 1}"


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    if shutil.which("initdb"):
        return Path(shutil.which("initdb")).parent
    raise UserError("PostgreSQL server binaries not found", "install Debian's postgresql (scripts/setup.sh)")


def _as_postgres(path: Path) -> list[str]:
    if os.geteuid() != 0:
        return []
    pw = pwd.getpwnam("postgres")
    for sub in [path, *path.rglob("*")]:
        os.chown(sub, pw.pw_uid, pw.pw_gid)
    return ["runuser", "-u", "postgres", "--"]


def _run(cmd: list[str], what: str, timeout_s: float = 60) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode:
        raise UserError(f"{what} failed: {(proc.stderr or proc.stdout).strip()[-800:]}")


def start_postgres(run: Path) -> dict:
    """initdb + pg_ctl start in a folder of its own under /tmp (as root, the `postgres` user owns it:
    PostgreSQL refuses to run as root and may not be able to enter the run dir)."""
    import tempfile

    pg_dir = Path(tempfile.mkdtemp(prefix="ivr-cluster-pg-"))
    bin_dir, port = _pg_bin(), _free_port()
    data, log = pg_dir / "data", pg_dir / "server.log"
    as_pg = _as_postgres(pg_dir)
    if not data.exists():
        _run([*as_pg, str(bin_dir / "initdb"), "-D", str(data), "-U", "ivr", "--auth=trust", "-E", "UTF8",
              "--no-sync", "--no-instructions"], "initdb")
    options = f"-h 127.0.0.1 -p {port} -k {pg_dir} -c max_connections=60"
    _run([*as_pg, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"],
         "pg_ctl start")
    import psycopg

    with psycopg.connect(f"postgresql://ivr@127.0.0.1:{port}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'ivr'").fetchone():
            conn.execute("CREATE DATABASE ivr")
    return {"bin": str(bin_dir), "dir": str(pg_dir), "data": str(data), "port": port,
            "url": f"postgresql://ivr@127.0.0.1:{port}/ivr", "as": as_pg}


def stop_postgres(pg: dict) -> None:
    with contextlib.suppress(UserError, subprocess.TimeoutExpired):
        _run([*pg["as"], str(Path(pg["bin"]) / "pg_ctl"), "-D", pg["data"], "-m", "fast", "-w", "stop"],
             "pg_ctl stop")
    shutil.rmtree(pg.get("dir", ""), ignore_errors=True)   # demo data only


def publish_flow(spec: ClusterSpec, db_url: str) -> str:
    """Publish the cluster's flow into the shared PostgreSQL store, alias live: the route the nodes serve."""
    from ivr.flow import versions
    from ivr.flow.versions_store import default_author, open_version_store

    store = open_version_store(Path("flows.d"), db_url)
    try:
        manifest, _, _ = versions.publish(store, Path(spec.flow), author=default_author(), message="ivr cluster up",
                                          alias="live")
    finally:
        store.close()
    return f"versions:{manifest.name}@live"


def postgres_ctl(pg: dict, action: str) -> None:
    """Stop (fast: connections cut, as a crash or restart) or start the cluster's PostgreSQL, keeping its data."""
    options = f"-h 127.0.0.1 -p {pg['port']} -k {pg['dir']} -c max_connections=60"
    args = ["-m", "fast", "-w", "stop"] if action == "stop" else ["-l", str(Path(pg["dir"]) / "server.log"), "-o",
                                                                  options, "-w", "start"]
    _run([*pg["as"], str(Path(pg["bin"]) / "pg_ctl"), "-D", pg["data"], *args], f"pg_ctl {action}")


def _merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        base[key] = _merge(dict(base.get(key) or {}), value) if isinstance(value, dict) else value
    return base


def node_config(spec: ClusterSpec, index: int, db_url: str, run: Path, flow: str | None = None) -> Path:
    host = node_host(index)
    proxy_host = spec.proxy.rsplit(":", 1)[0]
    node_dir = run / f"node{index}"
    node_dir.mkdir(parents=True, exist_ok=True)
    cfg = {
        "listen": {"sip": {"host": host, "port": spec.sip_port, "trusted": [proxy_host], "busy_code": 503,
                           "allow": ["127.0.0.0/8"]},
                   "http": {"host": host, "port": spec.http_port}},
        "flows": {"default": flow or str(Path(spec.flow).resolve()), **({"versions_database": db_url} if flow else {})},
        "engines": {"asr": spec.asr},
        "limits": {"max_calls": spec.max_calls, "shutdown_grace": f"{spec.shutdown_grace_s}s"},
        "records": {"dir": str(node_dir / "records"), "database": db_url, "spool_dir": str(node_dir / "spool")},
        "web": {"users": str(run / "users.json")},
        "node": f"node{index}",   # the consoles show each call's node (ivr/service/relay.py)
    }
    _merge(cfg, spec.node_options.get(index, {}))
    path = node_dir / "ivr.json"   # JSON is YAML: the serve config loader reads it
    path.write_text(json.dumps(cfg, indent=2))
    return path


def dispatcher_list(spec: ClusterSpec, run: Path) -> Path:
    lines = ["# written by ivr cluster up: one line per node (see deploy/kamailio/dispatcher.list)"]
    lines += [f"1 sip:{node_host(k)}:{spec.sip_port} 0 0 duid=node{k};weight=50" for k in range(1, spec.nodes + 1)]
    lines += [f"1 sip:{target} 0 0 duid=extra{k};weight=50" for k, target in enumerate(spec.extra_targets, 1)]
    path = run / "dispatcher.list"
    path.write_text("\n".join(lines) + "\n")
    return path


def _spawn(cmd: list[str], log: Path, env: dict | None = None) -> int:
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env, cwd=ROOT)
    return proc.pid


def start_kamailio(spec: ClusterSpec, run: Path) -> int:
    if not shutil.which("kamailio"):
        raise UserError("kamailio not installed", "apt-get install kamailio (scripts/setup.sh installs it)")
    ds_list = dispatcher_list(spec, run)
    kam_dir = run / "kamailio"
    kam_dir.mkdir(exist_ok=True)
    return _spawn(["kamailio", "-f", str(KAMAILIO_CFG), "-DD", "-E", "-Y", str(kam_dir),
                   "-A", f"LISTEN=udp:{spec.proxy}", "-A", f'DS_LIST="{ds_list}"',
                   "-A", f"DS_PING_INTERVAL={spec.ping_interval_s}"], run / "kamailio.log")


def start_node(spec: ClusterSpec, index: int, db_url: str, run: Path, flow: str | None = None) -> dict:
    config = node_config(spec, index, db_url, run, flow)
    log = run / f"node{index}.log"
    env = dict(os.environ)
    env.pop("IVR_DATABASE", None)
    pid = _spawn([sys.executable, "-m", "ivr", "serve", "--config", str(config)], log, env)
    return {"name": f"node{index}", "pid": pid, "sip": f"{node_host(index)}:{spec.sip_port}",
            "http": f"{node_host(index)}:{spec.http_port}", "log": str(log)}


def wait_ready(log: Path, pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if "ivr: ready" in text:
            return
        if not alive(pid):
            raise UserError(f"{log.stem} exited while starting: {text.strip()[-1500:]}")
        time.sleep(0.2)
    raise UserError(f"{log.stem} not ready after {timeout_s:.0f} s", f"see {log}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError, ValueError):   # a zombie child is gone for our purposes
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


def up(spec: ClusterSpec, ready_timeout_s: float = 180) -> dict:
    run = Path(spec.run_dir).resolve()
    if (run / "cluster.json").exists():
        raise UserError(f"a cluster is already up in {run}", "ivr cluster down first (or another --run-dir)")
    run.mkdir(parents=True, exist_ok=True)
    state: dict = {"run_dir": str(run), "proxy": spec.proxy, "nodes": []}
    try:
        state["pg"] = start_postgres(run)
        _save(run, state)
        state["flow"] = publish_flow(spec, state["pg"]["url"]) if spec.publish else None
        for k in range(1, spec.nodes + 1):
            state["nodes"].append(start_node(spec, k, state["pg"]["url"], run, state["flow"]))
            _save(run, state)
        for node in state["nodes"]:
            wait_ready(Path(node["log"]), node["pid"], ready_timeout_s)
        state["kamailio"] = start_kamailio(spec, run)
        _save(run, state)
        time.sleep(spec.ping_interval_s + 0.5)   # the first OPTIONS round: nodes in rotation
        if not alive(state["kamailio"]):
            raise UserError("kamailio exited: " + (run / "kamailio.log").read_text(errors="replace")[-1500:])
    except BaseException:
        if (run / "cluster.json").exists():
            down(run, grace_s=5)
        raise
    return state


def _save(run: Path, state: dict) -> None:
    (run / "cluster.json").write_text(json.dumps(state, indent=2))


def load_state(run_dir: Path) -> dict:
    path = Path(run_dir).resolve() / "cluster.json"
    if not path.exists():
        raise UserError(f"no cluster in {path.parent}", "ivr cluster up --run-dir DIR first")
    return json.loads(path.read_text())


def stop_pid(pid: int, sig: int, wait_s: float) -> bool:
    """Signal `pid`; True when it has exited within `wait_s` (SIGKILL then, if not)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return False


def down(run_dir: Path, grace_s: float = 60) -> dict:
    """Drain the nodes (SIGTERM), then stop Kamailio and PostgreSQL. Says what had to be killed."""
    run = Path(run_dir).resolve()
    state = load_state(run)
    for node in state.get("nodes", []):
        with contextlib.suppress(ProcessLookupError):
            os.kill(node["pid"], signal.SIGTERM)   # all drain at once
    killed = [n["name"] for n in state.get("nodes", []) if not stop_pid(n["pid"], signal.SIGTERM, grace_s + 10)]
    if state.get("kamailio"):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(state["kamailio"], signal.SIGTERM)
        if not stop_pid(state["kamailio"], signal.SIGTERM, 5):
            killed.append("kamailio")
    if state.get("pg"):
        stop_postgres(state["pg"])
    (run / "cluster.json").unlink(missing_ok=True)
    return {"killed": killed}


def node_health(http: str, timeout_s: float = 2.0) -> dict | None:
    """A node's GET /health (it answers 503 with the same body while draining); None if it does not answer."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{http}/health", timeout=timeout_s) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with contextlib.suppress(ValueError):
            return json.loads(exc.read())
    except (OSError, ValueError):
        pass
    return None


def status(run_dir: Path) -> dict:
    """What runs, and per node its calls and the flow version each route serves (from /health): nodes
    serving different versions of a route (a rollout under way, a pinned or refusing node) are named."""
    state = load_state(run_dir)
    nodes, served = [], {}
    for node in state.get("nodes", []):
        health = node_health(node["http"]) if alive(node["pid"]) else None
        flows = {key: {"flow": f.get("flow"), "version": f.get("version"), "refused": f.get("refused") or []}
                 for key, f in ((health or {}).get("flows") or {}).items()}
        nodes.append({**node, "alive": alive(node["pid"]), "answers": health is not None,
                      "calls": (health or {}).get("calls"), "draining": (health or {}).get("draining"),
                      "sip": (health or {}).get("sip"), "flows": flows})
        for key, f in flows.items():
            served.setdefault(f"{key}: {f['flow']}", {})[node["name"]] = f["version"]
    mixed = {route: by_node for route, by_node in served.items() if len(set(by_node.values())) > 1}
    return {"proxy": state["proxy"], "kamailio": bool(state.get("kamailio")) and alive(state["kamailio"]),
            "database": state.get("pg", {}).get("url"), "flow": state.get("flow"), "nodes": nodes,
            "versions": served, "mixed_versions": mixed}
