"""Agents, queues and callbacks shared by several nodes through a real PostgreSQL (issue 13).

Each `Node` is what `ivr serve` runs for the queues (directory, queue manager, dispatcher and
the shared state, each with its own connections), several of them in one event loop. Agents'
phones are a line that records each ring (`dial_agent`, the dispatcher's SIP interface) and
leaves it ringing until the test answers or fails it.
"""

import asyncio
import time

import pytest

from ivr.agents import AgentDirectory, QueueManager
from ivr.agents.dispatch import Dispatcher
from ivr.agents.shared import SharedState
from ivr.errors import UserError
from ivr.store import open_store
from ivr.transports.base import TransferFailed
from tests.pg_fixture import pg_server


@pytest.fixture(scope="module")
def pg():
    yield from pg_server()


class Phones:
    """Every agent's phone: `dial_agent` rings until the test answers (a leg) or rejects it."""

    def __init__(self) -> None:
        self.rings: list[tuple[str, str]] = []        # (agent address, call id), in order
        self.open: dict[tuple[str, str], asyncio.Future] = {}

    def line(self, call_id: str) -> "Line":
        return Line(self, call_id)

    def ringing(self) -> list[tuple[str, str]]:
        return [key for key, fut in self.open.items() if not fut.done()]

    def reject(self, address: str, call_id: str) -> None:
        self.open[(address, call_id)].set_exception(TransferFailed("agent phone answered 486 Busy Here"))


class Line:
    def __init__(self, phones: Phones, call_id: str) -> None:
        self.phones, self.call_id = phones, call_id

    async def dial_agent(self, address: str, headers) -> object:
        key = (address, self.call_id)
        self.phones.rings.append(key)
        self.phones.open[key] = fut = asyncio.get_running_loop().create_future()
        return await fut


class Node:
    def __init__(self, url: str, name: str, phones: Phones, *, node_timeout_s: float = 4.0) -> None:
        # 4 s (a beat each second): a worker stalled ~3 s on a busy 2-core machine is not taken for dead
        self.name, self.phones = name, phones
        self.events: list = []
        self.directory = AgentDirectory(wrap_up_s=0, max_misses=3)
        self.queues = QueueManager(self.directory, default_handle_s=60)
        self.dispatcher = Dispatcher(self.directory, self.queues, self.events.append, ring_timeout_s=30)
        self.shared = SharedState(url, name, self.directory, self.queues, node_timeout_s=node_timeout_s, poll_s=0.5,
                                  retry_s=0.2, connect_timeout_s=2)

    def start(self) -> "Node":
        self.shared.start()
        self.dispatcher.share(self.shared)
        return self

    def join(self, call_id: str, queue: str = "support"):
        return self.dispatcher.join(call_id, {"queue": queue, "caller": f"+1555{call_id}"}, self.phones.line(call_id))

    async def stop(self) -> None:
        await self.dispatcher.close()
        await self.shared.stop()

    def crash(self) -> None:
        """Like kill -9 for the shared state: the threads stop, nothing is cleaned up, no heartbeat."""
        from ivr.agents import shared

        self.shared._ops.put(shared._STOP)
        self.shared._stopping.set()
        for thread in self.shared._threads:     # a beat in flight lands now, not after a test's first look
            thread.join(10)


def migrated(pg, tmp_path) -> str:
    url = pg.new_database()
    open_store(url, tmp_path / "spool").start().close()      # the records store migrates (7: shared state)
    return url


async def until(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out: {what}")


def status(node: Node, name: str) -> str | None:
    agent = node.directory.get(name)
    return agent.status if agent else None


async def busy_agent(node: Node, name: str, other_call: str) -> None:
    """`name` available on `node`'s console, then on a call elsewhere (so callers wait)."""
    node.directory.add(name, f"sip:{name}@127.0.0.1:5070", status="available")
    node.directory.set_status(name, "ringing", call_id=other_call)
    node.directory.answered(name, other_call)
    await until(lambda: node.shared._pending.get(name) is None, 15, f"{name}'s status written")


def test_the_older_caller_on_another_node_gets_the_agent_and_positions_are_global(pg, tmp_path):
    url = migrated(pg, tmp_path)
    phones = Phones()

    async def go():
        a, b = Node(url, "node-a", phones).start(), Node(url, "node-b", phones).start()
        try:
            await busy_agent(a, "ann", "elsewhere")
            await until(lambda: status(b, "ann") == "on_call", 15, "node b sees ann on a call")
            assert b.join("c1") is not None                   # the oldest caller waits on node b
            await asyncio.sleep(0.01)
            assert a.join("c2") is not None
            await asyncio.sleep(0.01)
            assert b.join("c3") is not None
            await until(lambda: a.queues.position("c3") == 3 and b.queues.position("c2") == 2, 15, "global positions")
            assert [a.queues.position(c) for c in ("c1", "c2", "c3")] == [1, 2, 3]
            snap = a.queues.snapshot()["queues"]["support"]
            assert [(w["call_id"], w["node"], w["position"]) for w in snap] == [
                ("c1", "node-b", 1), ("c2", "node-a", 2), ("c3", "node-b", 3)]
            assert snap[1]["estimated_wait_s"] == 2 * 60                  # (p - f) * H / n across the nodes

            a.directory.call_ended("ann", "elsewhere")        # ann free on node a: node a must not take her
            await until(lambda: phones.rings, 15, "ann's phone never rang")
            await asyncio.sleep(0.5)                          # time enough for a wrong second ring
            assert phones.rings == [("sip:ann@127.0.0.1:5070", "c1")]
            await until(lambda: status(a, "ann") == "ringing", 15, "node a sees ann ringing")
            assert a.directory.snapshot()[0]["node"] == "node-b" and a.directory.get("ann").call_id == "c1"

            a.directory.add("bob", "sip:bob@127.0.0.1:5070", status="available")   # bob logs in on node a
            await until(lambda: len(phones.rings) == 2, 15, "bob's phone never rang")
            assert phones.rings[1] == ("sip:bob@127.0.0.1:5070", "c2")   # the next oldest, on node a
            a.directory.add("cat", "sip:cat@127.0.0.1:5070")          # cat's console is on node a
            await until(lambda: status(b, "cat") == "offline", 15, "node b sees cat")
            a.directory.set_status("cat", "available")                # available on a: b's caller gets her
            await until(lambda: len(phones.rings) == 3, 15, "cat's phone never rang")
            assert phones.rings[2] == ("sip:cat@127.0.0.1:5070", "c3")
            phones.reject("sip:ann@127.0.0.1:5070", "c1")    # ann rejects c1: c1 waits again, first in line
            await until(lambda: len(phones.rings) == 4, 15, "c1 offered again")
            assert phones.rings[3] == ("sip:ann@127.0.0.1:5070", "c1")   # nobody else free: ann again
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(asyncio.wait_for(go(), 60))


def test_two_nodes_never_ring_one_agent(pg, tmp_path):
    """Six callers on two nodes, three agents freed at once: three rings, three agents, the three
    oldest callers; then every ring ends in a miss and the next round rings again without overlap."""
    url = migrated(pg, tmp_path)
    phones = Phones()

    async def go():
        a, b = Node(url, "node-a", phones).start(), Node(url, "node-b", phones).start()
        nodes = [a, b]
        try:
            for name in ("ann", "ben", "cat"):
                await busy_agent(a, name, f"x-{name}")
            await until(lambda: status(b, "cat") == "on_call", 15, "node b sees the agents")
            tickets = {}
            for k in range(6):
                tickets[f"c{k}"] = nodes[k % 2].join(f"c{k}")
                await asyncio.sleep(0.01)
            await until(lambda: all(n.queues.position("c5") == 6 for n in nodes), 15, "six callers")
            for name in ("ann", "ben", "cat"):
                a.directory.call_ended(name, f"x-{name}")
            await until(lambda: len(phones.rings) == 3, 15, "three rings")
            await asyncio.sleep(0.5)
            assert len(phones.rings) == 3
            assert sorted(phones.rings) == sorted(phones.ringing())
            assert len({agent for agent, _ in phones.rings}) == 3
            assert sorted(call for _, call in phones.rings) == ["c0", "c1", "c2"]
            tickets["c3"].leave("caller_hangup")                 # c3 (node b) hangs up: c5 moves up on node a
            await until(lambda: a.queues.position("c5") == 5, 15, "node a still counts c3")
            assert "c3" not in {c for (c,) in await asyncio.to_thread(rows, url, "SELECT call_id FROM queue_calls")}
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(asyncio.wait_for(go(), 60))


def rows(url: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]


def test_a_dead_node_leaves_no_stuck_rows(pg, tmp_path):
    """Node x dies (no heartbeat) while its caller is offered to ann: after the timeout its row is
    gone, ann is released, and the caller on node a gets her."""
    url = migrated(pg, tmp_path)
    phones = Phones()

    async def go():
        a, dead = Node(url, "node-a", phones, node_timeout_s=2.0).start(), Node(url, "node-x", phones).start()
        try:
            await busy_agent(a, "ann", "elsewhere")
            await until(lambda: status(dead, "ann") == "on_call", 15, "node x sees ann")
            assert dead.join("old") is not None                         # the oldest caller, on the node that dies
            await asyncio.sleep(0.01)
            assert a.join("new") is not None
            await until(lambda: a.queues.position("new") == 2, 15, "node a sees the caller on node x")
            a.directory.call_ended("ann", "elsewhere")
            await until(lambda: phones.rings, 15, "ann never rang for the oldest caller")
            assert phones.rings == [("sip:ann@127.0.0.1:5070", "old")]
            dead.crash()                                                 # ann's phone still ringing for it
            await until(lambda: len(phones.rings) == 2, 20, "the caller on node a never got ann")
            assert phones.rings[1] == ("sip:ann@127.0.0.1:5070", "new")
            assert a.queues.position("new") == 1
            table = await asyncio.to_thread(rows, url, "SELECT call_id, node, state FROM queue_calls")
            assert table == [("new", "node-a", "ringing")]
            assert await asyncio.to_thread(rows, url, "SELECT node FROM agent_nodes") == [("node-a",)]
        finally:
            await dead.dispatcher.close()
            await a.stop()
        assert await asyncio.to_thread(rows, url, "SELECT * FROM queue_calls") == []   # a clean stop: no rows

    asyncio.run(asyncio.wait_for(go(), 60))


def test_postgresql_restarted_while_callers_wait_they_are_served_after(pg, tmp_path):
    """The database goes away with two callers waiting; meanwhile ann's call ends on node a, bob
    logs in on node b and a third caller joins: nobody is rung while it is away (no claim without
    the database), and once it is back both oldest callers get an agent each, the third waits."""
    url = migrated(pg, tmp_path)
    phones = Phones()

    async def go():
        a, b = Node(url, "node-a", phones).start(), Node(url, "node-b", phones).start()
        try:
            await busy_agent(a, "ann", "elsewhere")
            await until(lambda: status(b, "ann") == "on_call", 15, "node b sees ann")
            assert b.join("c1") is not None
            await asyncio.sleep(0.01)
            assert a.join("c2") is not None
            await until(lambda: b.queues.position("c2") == 2, 15, "node b sees c2")
            await asyncio.to_thread(pg.stop)
            try:
                await until(lambda: a.shared.down and b.shared.down, 20, "the nodes never noticed the outage")
                a.directory.call_ended("ann", "elsewhere")           # kept until the database is back
                b.directory.add("bob", "sip:bob@127.0.0.1:5070", status="available")
                assert b.join("c3") is not None
                await asyncio.sleep(0.5)
                assert phones.rings == []                            # nobody rung without the database
            finally:
                await asyncio.to_thread(pg.start)
            await until(lambda: len(phones.rings) == 2, 20, "the callers were not served after the restart")
            await asyncio.sleep(0.3)
            assert len(phones.rings) == 2
            assert sorted(call for _, call in phones.rings) == ["c1", "c2"]
            assert {agent for agent, _ in phones.rings} == {"sip:ann@127.0.0.1:5070", "sip:bob@127.0.0.1:5070"}
            await until(lambda: a.queues.position("c3") == 3, 15, "c3 written after the restart")
            table = await asyncio.to_thread(rows, url, "SELECT call_id, node, state FROM queue_calls ORDER BY call_id")
            assert table == [("c1", "node-b", "ringing"), ("c2", "node-a", "ringing"), ("c3", "node-b", "waiting")]
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(asyncio.wait_for(go(), 90))


def test_callbacks_are_seen_and_taken_once_across_nodes(pg, tmp_path):
    url = migrated(pg, tmp_path)
    phones = Phones()

    async def go():
        a, b = Node(url, "node-a", phones).start(), Node(url, "node-b", phones).start()
        try:
            task = a.queues.request_callback("c9", "+15550009", "support", reason="billing")
            await until(lambda: b.queues.snapshot()["callbacks"], 15, "node b never saw the callback")
            assert b.queues.snapshot()["callbacks"][0]["number"] == "+15550009"
            got = await asyncio.gather(a.queues.take_callback_async(task.callback_id, "ann"),
                                       b.queues.take_callback_async(task.callback_id, "bob"), return_exceptions=True)
            winners = [r for r in got if not isinstance(r, Exception)]
            losers = [r for r in got if isinstance(r, UserError)]
            assert len(winners) == 1 and len(losers) == 1 and "is taken by" in losers[0].message
            who = winners[0].agent
            other = b if who == "ann" else a                  # the taker finishes it on the other node
            with pytest.raises(UserError, match=f"is {who}'s"):
                await other.queues.finish_callback_async(task.callback_id, "ben", "done")
            done = await other.queues.finish_callback_async(task.callback_id, who, "done")
            assert done.status == "done"
            await until(lambda: not a.queues.snapshot()["callbacks"] and not b.queues.snapshot()["callbacks"], 5,
                        "a finished callback still shown")
            table = await asyncio.to_thread(rows, url, "SELECT status, agent FROM callbacks")
            assert table == [("done", who)]
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(asyncio.wait_for(go(), 60))


def test_services_share_agents_from_the_users_file(pg, tmp_path):
    """The wiring in `ivr serve`: with a PostgreSQL records database each Service starts the shared
    state under its `node:` name; an agent set available on one node's console is seen on the other
    with the node holding nothing; a clean stop leaves no heartbeat."""
    from ivr.service.config import ServeConfig
    from ivr.service.service import Service
    from ivr.web.users import UserStore

    url = migrated(pg, tmp_path)
    users = UserStore(tmp_path / "users.json", cost=(2, 1, 1))
    users.set_user("ann", "agent", "password-1", must_exist=False, sip="sip:ann@127.0.0.1:5070")

    def service(node: str) -> Service:
        cfg = ServeConfig()
        cfg.node, cfg.auth.users_file = node, tmp_path / "users.json"
        svc = Service(cfg)
        svc.store = open_store(url, tmp_path / f"spool-{node}").start()
        return svc

    async def go():
        a, b = service("node1"), service("node2")
        try:
            await a._start_agents()
            await b._start_agents()
            assert (a.shared_agents.node, b.shared_agents.node) == ("node1", "node2")
            await until(lambda: b.agents.get("ann") is not None, 15, "node2 has ann")
            a.agents.set_status("ann", "available")
            await until(lambda: b.agents.get("ann").status == "available", 15, "node2 sees ann available")
            assert b.agents.snapshot()[0]["node"] == ""
            assert sorted(await asyncio.to_thread(rows, url, "SELECT node FROM agent_nodes")) == [("node1",),
                                                                                                 ("node2",)]
        finally:
            for svc in (a, b):
                await svc.dispatcher.close()
                if svc.shared_agents is not None:
                    await svc.shared_agents.stop()
                svc.store.close()
        assert await asyncio.to_thread(rows, url, "SELECT node FROM agent_nodes") == []

    asyncio.run(asyncio.wait_for(go(), 60))


def test_a_second_node_under_a_running_nodes_name_is_refused(pg, tmp_path):
    url = migrated(pg, tmp_path)
    phones = Phones()

    async def go():
        a = Node(url, "node-a", phones).start()
        try:
            await until(lambda: rows(url, "SELECT node FROM agent_nodes"), 15, "node a's heartbeat")
            twin = Node(url, "node-a", phones)
            with pytest.raises(UserError, match="another node named 'node-a' is running"):
                await asyncio.to_thread(twin.shared.check_name)
            await asyncio.to_thread(Node(url, "node-b", phones).shared.check_name)   # a new name: fine
            crashed = Node(url, "node-c", phones).start()
            await until(lambda: ("node-c",) in rows(url, "SELECT node FROM agent_nodes"), 15, "node c's heartbeat")
            crashed.crash()                    # restarted at once under its name: its old heartbeat stands still
            await asyncio.to_thread(Node(url, "node-c", phones).shared.check_name)
        finally:
            await a.stop()
        await asyncio.to_thread(Node(url, "node-a", phones).shared.check_name)   # a stopped node's name: free

    asyncio.run(asyncio.wait_for(go(), 60))


CHILD = """
import asyncio, sys
from ivr.agents import AgentDirectory, QueueManager
from ivr.agents.dispatch import Dispatcher
from ivr.agents.shared import SharedState

class Line:
    async def dial_agent(self, address, headers):
        await asyncio.Event().wait()

async def main(url, node, call_id):
    directory = AgentDirectory(wrap_up_s=0)
    queues = QueueManager(directory)
    dispatcher = Dispatcher(directory, queues, lambda event: None)
    dispatcher.share(SharedState(url, node, directory, queues, node_timeout_s=2.5, poll_s=0.5).start())
    while directory.staffed() == 0:
        await asyncio.sleep(0.05)
    dispatcher.join(call_id, {"queue": "support"}, Line())
    print("ready", flush=True)
    await asyncio.sleep(120)

asyncio.run(main(*sys.argv[1:]))
"""


def test_a_node_killed_with_sigkill_does_not_block_the_queue(pg, tmp_path):
    """A real process (node x) with the oldest caller is killed -9: once its heartbeat is older
    than node_timeout, its row goes and the caller waiting on node a gets the agent."""
    import signal
    import sys
    from pathlib import Path

    url = migrated(pg, tmp_path)
    phones = Phones()
    root = Path(__file__).resolve().parent.parent

    async def go():
        a = Node(url, "node-a", phones, node_timeout_s=2.5).start()
        child = None
        try:
            await busy_agent(a, "ann", "elsewhere")
            child = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, url, "node-x", "old", cwd=root,
                                                         stdout=asyncio.subprocess.PIPE)
            line = await asyncio.wait_for(child.stdout.readline(), 30)
            assert line.strip() == b"ready"
            await until(lambda: a.queues.position("old") == 1, 10, "node a sees node x's caller")
            assert a.join("new") is not None                   # younger than node x's caller
            await until(lambda: a.queues.position("new") == 2, 15, "two callers")
            child.send_signal(signal.SIGKILL)                # kill -9: no goodbye, its rows stay
            await child.wait()
            a.directory.call_ended("ann", "elsewhere")
            await until(lambda: phones.rings, 20, "the caller on node a never got ann")
            assert phones.rings == [("sip:ann@127.0.0.1:5070", "new")]
            # A claim passes over a dead node's callers at once; the reap deletes their rows on its own
            # beat, so the row may still be there when the phone rings: it must go soon after.
            for _ in range(200):
                table = await asyncio.to_thread(rows, url, "SELECT call_id, node FROM queue_calls")
                if table == [("new", "node-a")]:
                    break
                await asyncio.sleep(0.05)
            assert table == [("new", "node-a")]
        finally:
            if child is not None and child.returncode is None:
                child.kill()
                await child.wait()
            await a.stop()

    asyncio.run(asyncio.wait_for(go(), 90))


def test_rows_of_calls_a_node_no_longer_has_are_removed(pg, tmp_path):
    """A call that ended without leaving the queue (a bug, a lost write) does not hold its place or
    its agent: the node's next poll removes the row and releases the ring."""
    url = migrated(pg, tmp_path)
    phones = Phones()

    async def go():
        a = Node(url, "node-a", phones).start()
        try:
            a.directory.add("ann", "sip:ann@127.0.0.1:5070", status="available")
            a.join("lost")
            await until(lambda: phones.rings, 15, "ann never rang")
            with a.queues._lock:
                a.queues._waiting.pop("lost")                   # gone without a word
            await until(lambda: not rows(url, "SELECT * FROM queue_calls"), 15, "the row stayed")
            await until(lambda: rows(url, "SELECT status FROM agent_state") == [("available",)], 15, "ann held")
        finally:
            await a.stop()

    asyncio.run(asyncio.wait_for(go(), 60))


def test_a_caller_whose_row_was_reaped_while_the_node_lived_gets_it_back(pg, tmp_path):
    """Another node took this one for dead during a stall (its heartbeat late) and removed its
    callers' rows: the node's next poll writes them again, so they can still claim an agent."""
    url = migrated(pg, tmp_path)
    phones = Phones()

    async def go():
        a = Node(url, "node-a", phones).start()
        try:
            await busy_agent(a, "ann", "elsewhere")
            assert a.join("c1") is not None
            await until(lambda: rows(url, "SELECT call_id FROM queue_calls") == [("c1",)], 15, "c1 written")
            await asyncio.to_thread(rows, url, "DELETE FROM queue_calls RETURNING call_id")   # a wrong reap
            await until(lambda: rows(url, "SELECT call_id, node, state FROM queue_calls") == [
                ("c1", "node-a", "waiting")], 15, "c1's row never came back")
            a.directory.call_ended("ann", "elsewhere")
            await until(lambda: phones.rings, 15, "c1 never got ann")
            assert phones.rings == [("sip:ann@127.0.0.1:5070", "c1")]
        finally:
            await a.stop()

    asyncio.run(asyncio.wait_for(go(), 60))


def test_the_urls_own_options_are_kept_and_a_cut_off_session_ends(pg, tmp_path):
    """A URL naming a schema (options=-c search_path=...): the records store migrates into it and
    the shared state must use the same tables; its connections also have the server end a session
    idle in a transaction (a node cut off mid-claim must not keep the advisory lock)."""
    import psycopg

    base = pg.new_database()
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA ivr13")
    url = base + "?options=-c%20search_path%3Divr13"
    open_store(url, tmp_path / "spool").start().close()
    phones = Phones()

    async def go():
        a, b = Node(url, "node-a", phones).start(), Node(url, "node-b", phones).start()
        try:
            a.directory.add("ann", "sip:ann@127.0.0.1:5070", status="available")
            await until(lambda: status(b, "ann") == "available", 15, "node b never saw ann")
            settings = await asyncio.to_thread(_settings, a.shared)
            assert settings == ("ivr13", "10s", "10s")
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(asyncio.wait_for(go(), 60))
    assert rows(base, "SELECT name, status FROM ivr13.agent_state") == [("ann", "available")]


def _settings(shared: SharedState) -> tuple:
    with shared._connect() as conn:
        return tuple(conn.execute(f"SHOW {name}").fetchone()[name] for name in (
            "search_path", "idle_in_transaction_session_timeout", "statement_timeout"))


def test_a_worker_error_that_is_not_an_outage_is_retried_calmly(pg, tmp_path, monkeypatch):
    """A heartbeat the server refuses without the connection failing (e.g. a server in read-only
    recovery): the worker logs it and retries every retry_s, like an outage, instead of spinning;
    claims answer "no agent" meanwhile; an unknown callback id is an error at once."""
    from ivr.agents import shared_sql

    url = migrated(pg, tmp_path)
    phones = Phones()
    beats = []
    real_beat = shared_sql.beat

    def refused(cur, node, now):
        beats.append(now)
        raise RuntimeError("cannot execute INSERT in a read-only transaction")

    async def go():
        a = Node(url, "node-a", phones).start()
        try:
            a.directory.add("ann", "sip:ann@127.0.0.1:5070", status="available")
            await until(lambda: a.shared._pending.get("ann") is None, 15, "ann written")
            with pytest.raises(UserError, match="no callback task"):
                await a.queues.take_callback_async("no-such-task", "ann")
            monkeypatch.setattr(shared_sql, "beat", refused)
            await until(lambda: a.shared.down, 15, "the error was not noticed")
            await asyncio.sleep(1.0)
            assert 1 <= len(beats) <= 12                       # retry_s 0.2: a handful, not thousands
            assert await a.shared.claim("x", frozenset()) is None
            monkeypatch.setattr(shared_sql, "beat", real_beat)
            await until(lambda: not a.shared.down, 15, "the worker never came back")
        finally:
            await a.stop()

    asyncio.run(asyncio.wait_for(go(), 60))


def test_an_agent_released_while_her_node_was_cut_off_is_held_again(pg, tmp_path):
    """Node a loses PostgreSQL alone (the others go on) while ann is on a call there; another node
    takes it for dead and releases ann. Back, node a holds her again: nobody may ring her mid-call."""
    import psycopg

    url = migrated(pg, tmp_path)
    phones = Phones()

    async def go():
        a = Node(url, "node-a", phones).start()
        try:
            await busy_agent(a, "ann", "elsewhere")
            await until(lambda: rows(url, "SELECT status FROM agent_state") == [("on_call",)], 15, "ann on a call")
            real_connect = a.shared._connect

            def cut_off():
                raise psycopg.OperationalError("connection refused (test: this node is cut off)")

            a.shared._connect = cut_off
            await asyncio.to_thread(rows, url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                               "WHERE application_name = 'ivr-agents node-a'")
            await until(lambda: a.shared.down, 15, "node a never noticed")
            await asyncio.to_thread(rows, url, "UPDATE agent_state SET status = 'available', call_id = NULL, "
                                               "node = '' RETURNING name")        # as another node's reap
            a.shared._connect = real_connect
            await until(lambda: not a.shared.down, 15, "node a never came back")
            await until(lambda: rows(url, "SELECT status, call_id, node FROM agent_state") == [
                ("on_call", "elsewhere", "node-a")], 15, "ann was not held again")
            assert status(a, "ann") == "on_call"
        finally:
            await a.stop()

    asyncio.run(asyncio.wait_for(go(), 60))


def test_a_claim_committed_as_the_connection_was_lost_does_not_keep_the_agent(pg, tmp_path, monkeypatch):
    """The connection dies just as a claim commits: this node hears "no agent" while the table has
    ann ringing for its caller. Back, the node releases that ring, and the caller gets ann for real."""
    import psycopg

    from ivr.agents import shared_sql

    url = migrated(pg, tmp_path)
    phones = Phones()
    real_claim, cut = shared_sql.claim, []

    def claim_then_cut(cur, *args):
        agent = real_claim(cur, *args)
        if agent is not None and not cut:
            cut.append(agent.name)
        return agent

    monkeypatch.setattr(shared_sql, "claim", claim_then_cut)

    async def go():
        a = Node(url, "node-a", phones).start()
        real_tx = a.shared._tx

        def tx(fn):
            out = real_tx(fn)
            if cut == ["ann"]:
                cut.append("done")             # committed; the answer is lost with the connection
                a.shared._conn.close()
                raise psycopg.OperationalError("server closed the connection unexpectedly (test)")
            return out

        a.shared._tx = tx
        try:
            await busy_agent(a, "ann", "elsewhere")
            assert a.join("c1") is not None
            await until(lambda: rows(url, "SELECT state FROM queue_calls") == [("waiting",)], 15, "c1 written")
            a.directory.call_ended("ann", "elsewhere")
            await until(lambda: phones.rings, 20, "c1 never got ann")
            assert cut == ["ann", "done"] and phones.rings == [("sip:ann@127.0.0.1:5070", "c1")]
            await until(lambda: rows(url, "SELECT status, call_id FROM agent_state") == [("ringing", "c1")], 15,
                        "ann's row")
        finally:
            await a.stop()

    asyncio.run(asyncio.wait_for(go(), 60))
