"""The SQL of the shared agent state (ivr/agents/shared.py): PostgreSQL only, migration 7.

Each function takes an open psycopg cursor inside the caller's transaction. The state machine
itself is not repeated here: a change is re-applied with `AgentDirectory`'s own methods to the
row read `FOR UPDATE` (`apply_agent`), so one place says what an agent may do.
"""

import json
import logging

from ivr.agents.callbacks import Callback, from_row
from ivr.agents.directory import Agent, AgentDirectory
from ivr.agents.queues import WaitingCall
from ivr.errors import UserError

log = logging.getLogger("ivr.agents")

CHANNEL = "ivr_agents"          # NOTIFY channel; the payload is the node that changed something
CLAIM_LOCK = 4242007            # advisory lock: one claim at a time across the nodes
AGENT_COLUMNS = ("name", "address", "role", "status", "since_s", "idle_since_s", "call_id", "node", "misses",
                 "calls", "after_call", "wrap_until_s")
INFO_KEYS = ("caller", "caller_name", "language", "intent", "reason")   # what other nodes' consoles show

_UPSERT_AGENT = (f"INSERT INTO agent_state ({', '.join(AGENT_COLUMNS)}) "
                 f"VALUES ({', '.join('%s' for _ in AGENT_COLUMNS)}) ON CONFLICT (name) DO UPDATE SET "
                 + ", ".join(f"{c} = excluded.{c}" for c in AGENT_COLUMNS[1:]))


def agent_from_row(row: dict) -> Agent:
    return Agent(row["name"], row["address"], row.get("role") or "agent", row["status"], float(row["since_s"]),
                 float(row["idle_since_s"]), row.get("call_id"), int(row.get("misses") or 0),
                 int(row.get("calls") or 0), row.get("after_call"), float(row.get("wrap_until_s") or 0.0),
                 row.get("node") or "")


def write_agent(cur, agent: Agent) -> None:
    cur.execute(_UPSERT_AGENT, tuple(getattr(agent, c) for c in AGENT_COLUMNS))


def notify(cur, node: str) -> None:
    cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, node))


def apply_agent(cur, directory: AgentDirectory, node: str, name: str, method: str, args: tuple) -> Agent | None:
    """Re-apply one of this node's changes to the agent's locked row; returns the row as it is
    now (None: no such agent). A change the row no longer allows is dropped with a log line."""
    cur.execute("SELECT * FROM agent_state WHERE name = %s FOR UPDATE", (name,))
    row = cur.fetchone()
    if method == "remove":
        if row is not None and row["status"] not in ("ringing", "on_call"):
            cur.execute("DELETE FROM agent_state WHERE name = %s", (name,))
            return None
        return agent_from_row(row) if row else None
    if method == "upsert":
        address, role = args
        if row is None:
            now = directory.clock()
            agent = Agent(name, address, role, "offline", now, now)
        else:
            agent = agent_from_row(row)
            agent.address, agent.role = address, role
        write_agent(cur, agent)
        return agent
    if row is None:
        return None
    tmp = scratch(directory, node)
    tmp._agents[name] = agent = agent_from_row(row)
    try:
        if method == "expire":
            tmp._tick()
        elif method == "set_status":
            tmp.set_status(name, args[0], call_id=args[1])
        else:
            getattr(tmp, method)(name, *args)
    except UserError as exc:
        log.info("agent %s: %s%s not applied: the shared state moved on (%s)", name, method, args, exc.message)
        return agent
    agent = tmp._agents[name]
    write_agent(cur, agent)
    return agent


def scratch(directory: AgentDirectory, node: str) -> AgentDirectory:
    """A listener-less directory with the real one's settings, to run the state machine on rows."""
    tmp = AgentDirectory(wrap_up_s=directory.wrap_up_s, max_misses=directory.max_misses, clock=directory.clock)
    tmp.node = node
    return tmp


def claim(cur, directory: AgentDirectory, node: str, call_id: str, tried: frozenset, live_since: float):
    """Ring an agent for this node's waiting call `call_id`, atomically across nodes.

    Under one advisory lock (claims are rare: one per offer): the wrap-ups that are over end,
    then the call's rank among the waiting calls of live nodes is counted. With `ahead` older
    calls waiting (on any node) and `free` agents available, the call may take an agent only if
    free > ahead: the older callers elsewhere keep the agents they are owed. The agent is the one
    idle longest (not one who already missed this call, if another is free). Returns the agent
    now ringing, or None."""
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (CLAIM_LOCK,))
    now = directory.clock()
    cur.execute("SELECT name FROM agent_state WHERE status = 'wrap_up' AND wrap_until_s <= %s FOR UPDATE", (now,))
    for row in cur.fetchall():
        apply_agent(cur, directory, node, row["name"], "expire", ())
    cur.execute("SELECT joined_at, state FROM queue_calls WHERE call_id = %s AND node = %s", (call_id, node))
    mine = cur.fetchone()
    if mine is None or mine["state"] != "waiting":
        return None
    cur.execute("SELECT count(*) AS n FROM queue_calls q JOIN agent_nodes n ON n.node = q.node "
                "WHERE q.state = 'waiting' AND n.seen_at >= %s AND (q.joined_at < %s OR "
                "(q.joined_at = %s AND q.call_id < %s))", (live_since, mine["joined_at"], mine["joined_at"], call_id))
    ahead = cur.fetchone()["n"]
    cur.execute("SELECT * FROM agent_state WHERE status = 'available' ORDER BY idle_since_s, name FOR UPDATE")
    free = [agent_from_row(r) for r in cur.fetchall()]
    if len(free) <= ahead:
        return None
    agent = next((a for a in free if a.name not in tried), free[0])
    tmp = scratch(directory, node)
    tmp._agents[agent.name] = agent
    tmp.ring(agent.name, call_id)
    write_agent(cur, agent)
    cur.execute("UPDATE queue_calls SET state = 'ringing', agent = %s WHERE call_id = %s", (agent.name, call_id))
    notify(cur, node)
    return agent


def queue_write(cur, what: str, row: dict) -> None:
    if what == "leave":
        cur.execute("DELETE FROM queue_calls WHERE call_id = %s", (row["call_id"],))
    elif what == "join":   # also used to put a node's callers back after an outage (state as it is now)
        cur.execute("INSERT INTO queue_calls (call_id, queue, node, joined_at, state, agent, info) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (call_id) DO UPDATE SET state = excluded.state, "
                    "agent = excluded.agent, node = excluded.node",
                    (row["call_id"], row["queue"], row["node"], row["joined_at"], row["state"], row["agent"],
                     json.dumps(row["info"], ensure_ascii=False)))
    else:
        cur.execute("UPDATE queue_calls SET state = %s, agent = %s WHERE call_id = %s",
                    (row["state"], row["agent"], row["call_id"]))


def call_row(call: WaitingCall) -> dict:
    return {"call_id": call.call_id, "queue": call.queue, "node": call.node, "joined_at": call.joined_at,
            "state": call.state, "agent": call.agent, "info": {k: getattr(call, k) for k in INFO_KEYS}}


def call_from_row(row: dict) -> WaitingCall:
    info = json.loads(row.get("info") or "{}")
    return WaitingCall(row["call_id"], row["queue"], **{k: str(info.get(k) or "") for k in INFO_KEYS},
                       joined_at=float(row["joined_at"]), state=row["state"], agent=row.get("agent") or "",
                       node=row["node"])


CALLBACK_INSERT = ("INSERT INTO callbacks (callback_id, call_id, number, queue, created_at, status, caller, language, "
                   "reason, agent, updated_at, data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                   "ON CONFLICT (callback_id) DO NOTHING")


def callback_insert(cur, row: dict) -> None:
    cur.execute(CALLBACK_INSERT, (row["callback_id"], row["call_id"], row["number"], row["queue"], row["created_at"],
                                  row["status"], row["caller"], row["language"], row["reason"], row["agent"],
                                  row["updated_at"], json.dumps(row["data"], ensure_ascii=False, default=str)))


def callback_change(cur, callback_id: str, status: str, agent: str, now: float) -> Callback:
    """take (open -> taken), release (taken -> open, same agent), done/failed (taken, same agent):
    one conditional UPDATE, so two agents on two nodes cannot both take a task."""
    if status == "taken":
        cur.execute("UPDATE callbacks SET status = 'taken', agent = %s, updated_at = %s "
                    "WHERE callback_id = %s AND status = 'open' RETURNING *", (agent, now, callback_id))
    else:
        cur.execute("UPDATE callbacks SET status = %s, agent = %s, updated_at = %s WHERE callback_id = %s "
                    "AND status = 'taken' AND (agent = %s OR agent IS NULL OR agent = '') RETURNING *",
                    (status, "" if status == "open" else agent, now, callback_id, agent))
    row = cur.fetchone()
    if row is not None:
        notify(cur, "")
        return from_row(row)
    cur.execute("SELECT * FROM callbacks WHERE callback_id = %s", (callback_id,))
    row = cur.fetchone()
    if row is None:
        raise LookupError(callback_id)   # not written yet (the adding node's write on its way) or unknown
    task = from_row(row)
    if task.status == "taken" and task.agent and task.agent != agent and status != "taken":
        raise UserError(f"callback {callback_id} is {task.agent}'s")
    by = f" by {task.agent}" if task.agent else ""
    raise UserError(f"callback {callback_id} is {task.status}{by}")


def beat(cur, node: str, now: float) -> None:
    cur.execute("INSERT INTO agent_nodes (node, seen_at, started_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (node) DO UPDATE SET seen_at = excluded.seen_at", (node, now, now))


def _release_held(cur, directory: AgentDirectory, node: str, where: str, args: tuple) -> list[str]:
    """Agents held by calls that no longer exist: a ring -> available, a call -> wrap-up (or the
    status asked for during it)."""
    cur.execute(f"SELECT name, status FROM agent_state WHERE status IN ('ringing', 'on_call') AND {where} "
                "FOR UPDATE", args)
    names = []
    for row in cur.fetchall():
        method = "released" if row["status"] == "ringing" else "call_ended"
        apply_agent(cur, directory, node, row["name"], method, (None,))
        names.append(row["name"])
    return names


def adopt(cur, directory: AgentDirectory, node: str) -> None:
    """At this node's start: rows it left behind in an earlier life (a crash, a kill) go."""
    cur.execute("DELETE FROM queue_calls WHERE node = %s", (node,))
    callers = cur.rowcount
    agents = _release_held(cur, directory, node, "node = %s", (node,))
    if callers or agents:
        log.warning("shared agent state: node %s restarted: %d waiting caller(s) of its last run removed, "
                    "agent(s) released: %s", node, callers, ", ".join(agents) or "none")
        notify(cur, node)


def bye(cur, directory: AgentDirectory, node: str) -> None:
    """This node stops: its callers' rows and its heartbeat go, agents it still holds are released."""
    cur.execute("DELETE FROM queue_calls WHERE node = %s", (node,))
    _release_held(cur, directory, node, "node = %s", (node,))
    cur.execute("DELETE FROM agent_nodes WHERE node = %s", (node,))


def reconcile(cur, directory: AgentDirectory, node: str, local: list[dict]) -> bool:
    """This node's rows against its callers (`call_row`s): rows for calls it no longer has (they
    ended without a word: a bug, a lost write) go, and agents it holds ringing for such calls are
    released; callers it has without a row get theirs back (another node took this node for dead
    during a stall and reaped them: without a row a caller could never claim an agent). True when
    any did."""
    ids = [row["call_id"] for row in local]
    cur.execute("DELETE FROM queue_calls WHERE node = %s AND NOT (call_id = ANY(%s))", (node, ids))
    callers = cur.rowcount
    agents = _release_held(cur, directory, node, "status = 'ringing' AND node = %s AND NOT (call_id = ANY(%s))",
                           (node, ids))
    cur.execute("SELECT call_id FROM queue_calls WHERE call_id = ANY(%s)", (ids,))
    present = {row["call_id"] for row in cur.fetchall()}
    back = [row for row in local if row["call_id"] not in present]
    for row in back:
        queue_write(cur, "join", row)
    if callers or agents:
        log.warning("shared agent state: %d row(s) of calls this node no longer has removed, agent(s) released: %s",
                    callers, ", ".join(agents) or "none")
    if back:
        log.warning("shared agent state: %d caller(s) of this node had lost their row (taken for a dead node's?): "
                    "written again", len(back))
    return bool(callers or agents or back)


def release_rings(cur, directory: AgentDirectory, node: str, call_ids: list[str]) -> list[str]:
    """Agents ringing in the table for these calls of this node, whose claims were answered "none"
    here (the connection was lost as they committed): released, or they would ring for ever."""
    names = _release_held(cur, directory, node, "status = 'ringing' AND node = %s AND call_id = ANY(%s)",
                          (node, call_ids)) if call_ids else []
    if names:
        log.warning("shared agent state: ring(s) of %s committed as the connection was lost: released",
                    ", ".join(names))
        notify(cur, node)
    return names


def reclaim(cur, node: str, held: list[Agent]) -> list[str]:
    """Back after an outage of this node only: agents it still holds (ringing for or talking to its
    callers, as its mirror says) whose rows another node released meanwhile (it took this node for
    dead) are held again, so nobody rings an agent who is on a call here. A row another call holds
    now is left as it is (logged: the agent was given two calls)."""
    back = []
    for agent in held:
        cur.execute("SELECT * FROM agent_state WHERE name = %s FOR UPDATE", (agent.name,))
        row = cur.fetchone()
        if row is None:
            continue
        now = agent_from_row(row)
        if now.status in ("ringing", "on_call"):
            if now.call_id != agent.call_id:
                log.warning("agent %s: held for call %s here but for call %s on node %s after this node's outage",
                            agent.name, agent.call_id, now.call_id, now.node or "?")
            continue
        if now.status in ("away", "offline"):
            agent.after_call = now.status       # set meanwhile: applies when the call ends
        write_agent(cur, agent)
        back.append(agent.name)
    if back:
        log.warning("shared agent state: agent(s) %s released while node %s was away are held again (its calls "
                    "went on)", ", ".join(back), node)
        notify(cur, node)
    return back


def reap(cur, directory: AgentDirectory, node: str, cutoff: float) -> bool:
    """Nodes without a heartbeat since `cutoff` are dead: their callers' rows go, their agents
    are released. True when something was reaped. Under the claim's advisory lock: two nodes
    reaping at once (or a reap racing a claim) would otherwise lock the same rows in opposite
    orders and one of them would die in a deadlock, taken for an outage."""
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (CLAIM_LOCK,))
    live = "(SELECT node FROM agent_nodes WHERE seen_at >= %s)"
    cur.execute("SELECT node FROM agent_nodes WHERE seen_at < %s AND node <> %s", (cutoff, node))
    dead = [row["node"] for row in cur.fetchall()]
    cur.execute(f"DELETE FROM queue_calls WHERE node <> %s AND node NOT IN {live}", (node, cutoff))
    callers = cur.rowcount
    agents = _release_held(cur, directory, node, f"node IS NOT NULL AND node <> '' AND node <> %s "
                                                 f"AND node NOT IN {live}", (node, cutoff))
    cur.execute("DELETE FROM agent_nodes WHERE seen_at < %s AND node <> %s", (cutoff, node))
    if dead or callers or agents:
        log.warning("shared agent state: node(s) %s silent for more than %.1f s: %d waiting caller(s) removed, "
                    "agent(s) released: %s", ", ".join(dead) or "(gone)", directory.clock() - cutoff, callers,
                    ", ".join(agents) or "none")
    return bool(dead or callers or agents)


def read_all(cur, node: str, live_since: float) -> tuple[list[Agent], list[WaitingCall], list[Callback]]:
    cur.execute("SELECT * FROM agent_state")
    agents = [agent_from_row(row) for row in cur.fetchall()]
    cur.execute("SELECT q.* FROM queue_calls q JOIN agent_nodes n ON n.node = q.node "
                "WHERE q.node <> %s AND n.seen_at >= %s", (node, live_since))
    calls = [call_from_row(row) for row in cur.fetchall()]
    cur.execute("SELECT * FROM callbacks WHERE status IN ('open', 'taken') ORDER BY created_at")
    callbacks = [from_row(row) for row in cur.fetchall()]
    return agents, calls, callbacks
