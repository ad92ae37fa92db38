"""`ivr cluster up|status|down` (a local demo/test cluster: ivr/cluster.py) and `ivr drain`."""

import json
import urllib.request
from pathlib import Path

from ivr.errors import UserError


def cmd_cluster(args) -> int:
    from ivr import cluster

    if args.action == "up":
        spec = cluster.ClusterSpec(nodes=args.nodes, run_dir=Path(args.run_dir), flow=Path(args.flow),
                                   proxy=args.proxy, asr=args.asr, max_calls=args.max_calls, publish=args.publish)
        if not 1 <= spec.nodes <= 50:
            raise UserError("--nodes must be between 1 and 50")
        state = cluster.up(spec)
        print(f"cluster up: proxy sip:{state['proxy']}, database {state['pg']['url']}"
              + (f", nodes serve {state['flow']} (flow versions in the database)" if state.get("flow") else ""))
        for node in state["nodes"]:
            print(f"  {node['name']}: sip {node['sip']}, http {node['http']}, log {node['log']}")
    elif args.action == "status":
        print(json.dumps(cluster.status(Path(args.run_dir)), indent=2))
    else:
        result = cluster.down(Path(args.run_dir), grace_s=args.grace)
        killed = ", ".join(result["killed"])
        print("cluster down" + (f" (killed after the grace: {killed})" if killed else ""))
    return 0


def cmd_drain(args) -> int:
    """POST /drain on a node's HTTP listener (machine access: IVR_WEBHOOK_TOKEN, else a loopback peer)."""
    import os

    request = urllib.request.Request(f"http://{args.http}/drain", data=b"", method="POST")
    token = os.environ.get("IVR_WEBHOOK_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            print(response.read().decode())
    except OSError as exc:
        raise UserError(f"cannot drain {args.http}: {exc}",
                        "give the node's HTTP listener, e.g. 127.0.0.2:8081") from exc
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("cluster", help="a local cluster: PostgreSQL, Kamailio and N ivr serve nodes on loopback")
    p.add_argument("action", choices=["up", "status", "down"])
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--run-dir", default=".cluster", help="pids, configs and logs (default .cluster)")
    p.add_argument("--flow", default=str(Path(__file__).resolve().parent.parent / "flows" / "demo.yaml"))
    p.add_argument("--proxy", default="127.0.0.1:5060", help="Kamailio's address (the nodes are 127.0.0.2, ...)")
    p.add_argument("--asr", default="auto")
    p.add_argument("--max-calls", type=int, default=16)
    p.add_argument("--publish", action="store_true", help="up: publish --flow into the cluster's PostgreSQL as "
                   "NAME@live and have the nodes serve versions:NAME@live (move it with ivr flows alias --database)")
    p.add_argument("--grace", type=float, default=60, help="down: seconds the nodes get to finish their calls")
    p.set_defaults(func=cmd_cluster)
    p = sub.add_parser("drain", help="drain a node: no new calls, its calls finish, then it exits")
    p.add_argument("--http", required=True, help="the node's HTTP listener, host:port")
    p.set_defaults(func=cmd_drain)
