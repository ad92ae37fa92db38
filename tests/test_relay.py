"""Every node's console sees every node's calls (issue 13): the relay over PostgreSQL LISTEN/NOTIFY.

Two nodes in one test, as tests/test_cluster_transfers.py does: each with its own hub (the
redaction filter), records store (one real PostgreSQL database, tests/pg_fixture.py), agent
directory, HTTP listener with the console, and relay. Agents log in over real sockets
(tests/test_console.py's `Agent`). Call events are published on node A's hub as a call loop
publishes them; the agent's browser is on node B.
"""

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from types import SimpleNamespace

import pytest

from ivr import callevents as ev
from ivr.agents import AgentDirectory
from ivr.privacy import redact_event
from ivr.service import relay_wire as wire
from ivr.service.config import ServeConfig
from ivr.service.hub import Hub
from ivr.service.listeners import HealthServer
from ivr.service.relay import Relay
from ivr.store import open_store
from ivr.store.subscriber import attach
from ivr.web.auth import AuthSettings
from ivr.web.users import UserStore
from tests.pg_fixture import pg_server
from tests.test_console import CHEAP, PASSWORDS, Agent, Rig

CARD = "4111 1111 1111 1111"


@pytest.fixture(scope="module")
def pg():
    yield from pg_server()


def _users(folder):
    users = UserStore(folder / "users.json", cost=CHEAP)
    users.set_user("alice", "agent", PASSWORDS["alice"], must_exist=False, sip="sip:alice@127.0.0.1:5071")
    users.set_user("sue", "supervisor", PASSWORDS["sue"], must_exist=False)
    return users


@asynccontextmanager
async def node(folder, url: str, name: str):
    """One node's parts, as `Service.start` wires them: records store, relay, then the console."""
    users = _users(folder)
    store = open_store(url, folder / f"spool-{name}").start()
    hub = Hub(filter=redact_event)
    attach(hub, store)
    agents = AgentDirectory()
    agents.sync_users(users.users())
    cfg = ServeConfig(auth=AuthSettings(users_file=users.path), node=name)
    service = SimpleNamespace(cfg=cfg, hub=hub, agents=agents, queues=None, store=store, metrics=None,
                              transfers={}, health=lambda: {"ok": True})
    service.relay = Relay(store.backend.url, name, heartbeat_s=1.0).start(hub)
    server = HealthServer(service, "127.0.0.1", 0)
    host, port = await server.start()
    try:
        yield Rig(f"http://{host}:{port}", service, server, folder)
    finally:
        await server.stop()
        await hub.close(deadline_s=3.0)
        await service.relay.stop()
        store.close()


async def listening(*nodes, timeout_s: float = 30.0) -> None:
    """Until every relay (a node's, or a Relay) LISTENs (after a start or a restart of PostgreSQL)."""
    relays = [n if isinstance(n, Relay) else n.service.relay for n in nodes]
    end = time.monotonic() + timeout_s
    while not all(r.stats()["listening"] for r in relays):
        assert time.monotonic() < end, [r.stats() for r in relays]
        await asyncio.sleep(0.05)


def call_to_alice(hub: Hub, call_id: str, transcript: tuple = ()) -> None:
    now = time.time()
    hub.publish(ev.CallBegan(call_id=call_id, at_s=now, transport="sip", caller="+15550101", called="4000",
                             flow="retail_en", language="en"))
    if not transcript:
        hub.publish(ev.TurnEnded(call_id=call_id, at_s=now, index=0, kind="speech", step="main",
                                 heard=f"my card is {CARD} and my order is late", said=("One moment.",),
                                 timing={"asr_ms": 120.0}))
    hub.publish(ev.QueueJoined(call_id=call_id, at_s=now, queue="support", caller="+15550101",
                               caller_name="Ann Lee", intent="track", position=1))
    hub.publish(ev.AgentRinging(call_id=call_id, at_s=now, agent="alice", queue="support", caller="+15550101",
                                caller_name="Ann Lee", intent="track", reason="order late",
                                slots={"order_id": "A123"}, transcript=transcript, path=("greet", "main", "agent")))


def _count(url: str, sql: str, *args) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchone()[0]


def test_a_call_on_node_a_pops_on_node_b_and_is_recorded_once(pg, tmp_path):
    url = pg.new_database()

    async def run():
        async with node(tmp_path, url, "node-a") as a, node(tmp_path, url, "node-b") as b:
            await listening(a, b)
            alice = await Agent(b, "alice").login()
            await alice.open()
            sue = await Agent(b, "sue").login()
            await sue.open(page="supervisor")
            try:
                call_to_alice(a.service.hub, "c-a1")
                pop = await alice.expect("pop", timeout_s=15)
                sup = await sue.expect("supervisor", timeout_s=15,
                                       where=lambda m: any(c["call_id"] == "c-a1" for c in m.get("calls", [])))
                a.service.hub.publish(ev.CallEnded(call_id="c-a1", at_s=time.time(), t_ms=5000, kind="transfer"))
                gone = await sue.expect("supervisor", timeout_s=15,
                                        where=lambda m: not any(c["call_id"] == "c-a1" for c in m.get("calls", [])))
            finally:
                await alice.close()
                await sue.close()
            assert a.service.store.flush() and b.service.store.flush()
            return pop, sup, gone, b.service.hub.published, a.service.relay.stats(), b.service.relay.stats()

    pop, sup, gone, b_published, a_stats, b_stats = asyncio.run(run())
    call = pop["call"]
    assert call["call_id"] == "c-a1" and call["node"] == "node-a" and pop["ringing"] is True
    assert call["caller_name"] == "Ann Lee" and call["queue"] == "support" and call["slots"] == {"order_id": "A123"}
    assert call["turns"][0]["said"] == ["One moment."]
    assert CARD not in call["turns"][0]["heard"] and "late" in call["turns"][0]["heard"]   # redacted at A's hub
    row = next(c for c in sup["calls"] if c["call_id"] == "c-a1")
    assert row["node"] == "node-a" and row["state"] == "agent" and row["agent"] == "alice"
    assert not any(c["call_id"] == "c-a1" for c in gone["calls"])
    # node B showed the call and recorded nothing: its hub saw no event, the database has one call, one turn
    assert b_published == 0
    assert _count(url, "SELECT count(*) FROM calls WHERE call_id = %s", "c-a1") == 1
    assert _count(url, "SELECT count(*) FROM turns WHERE call_id = %s", "c-a1") == 1
    assert a_stats["sent"] >= 5 and b_stats["received"] >= 5 and b_stats["sent"] == 0
    assert "node-a" in b_stats["nodes_heard"]
    from ivr.web.metrics import service_values

    relay = SimpleNamespace(stats=lambda: b_stats)
    values = service_values(SimpleNamespace(cfg=ServeConfig(), admission=SimpleNamespace(refused=0), relay=relay))
    assert values["ivr_relay_received_total"][2] == b_stats["received"] and values["ivr_relay_down"][2] == 0


def test_the_relay_survives_a_postgres_restart(pg, tmp_path, caplog):
    url = pg.new_database()
    caplog.set_level(logging.WARNING, logger="ivr.relay")

    async def run():
        async with node(tmp_path, url, "node-a") as a, node(tmp_path, url, "node-b") as b:
            await listening(a, b)
            alice = await Agent(b, "alice").login()
            await alice.open()
            try:
                await asyncio.to_thread(pg.stop)
                try:
                    call_to_alice(a.service.hub, "c-during")   # not relayed: counted, not blocking anything
                    await asyncio.sleep(1.0)
                finally:
                    await asyncio.to_thread(pg.start)
                await listening(a, b)
                call_to_alice(a.service.hub, "c-after")
                pop = await alice.expect("pop", timeout_s=20, where=lambda m: m["call"]["call_id"] == "c-after")
            finally:
                await alice.close()
            return pop, a.service.relay.stats()

    pop, a_stats = asyncio.run(run())
    assert pop["call"]["node"] == "node-a" and pop["call"]["caller_name"] == "Ann Lee"
    assert a_stats["not_sent_db_down"] >= 1 and not a_stats["down"]
    texts = [r.getMessage() for r in caplog.records if r.name == "ivr.relay"]
    assert sum("unreachable" in t for t in texts) == 2, texts     # once per relay for the outage
    assert sum("back after" in t for t in texts) == 2, texts


def test_an_event_over_the_notify_limit_is_trimmed_and_still_pops(pg, tmp_path):
    long_turns = tuple({"heard": f"turn {i} " + "words " * 60, "said": "ok", "step": "main"} for i in range(80))
    big = ev.AgentRinging(call_id="c-big", agent="alice", transcript=long_turns, caller="+15550101")
    payload, trimmed = wire.encode_event("node-a", "x" * 16, big)
    assert trimmed and len(payload.encode()) <= wire.MAX_PAYLOAD_BYTES < 8000
    node_name, _, event, _, _ = wire.decode(payload)
    assert node_name == "node-a" and event.agent == "alice" and event.caller == "+15550101"
    assert event.transcript[-1]["heard"].startswith("turn 79 ")   # the newest turns kept
    huge = ev.TurnEnded(call_id="c-big", index=3, kind="speech", heard="x" * 50_000)
    payload, trimmed = wire.encode_event("node-a", "x" * 16, huge)
    assert trimmed and wire.decode(payload)[2].index == 3
    assert wire.encode_event("node-a", "x", ev.PromptPlayed(call_id="c", text="hi")) == (None, False)
    url = pg.new_database()

    async def run():
        async with node(tmp_path, url, "node-a") as a, node(tmp_path, url, "node-b") as b:
            await listening(a, b)
            alice = await Agent(b, "alice").login()
            await alice.open()
            try:
                call_to_alice(a.service.hub, "c-big", transcript=long_turns)
                pop = await alice.expect("pop", timeout_s=15)
            finally:
                await alice.close()
            return pop, a.service.relay.stats()

    pop, stats = asyncio.run(run())
    assert pop["call"]["call_id"] == "c-big" and pop["call"]["node"] == "node-a"
    assert pop["call"]["turns"] and pop["call"]["turns"][-1]["heard"].startswith("turn 79 ")
    assert stats["trimmed"] >= 1 and stats["too_big"] == 0


def test_a_node_that_dies_or_stops_has_its_calls_ended_in_the_other_consoles(pg, tmp_path, caplog):
    """A node killed mid-call sends no CallEnded: its heartbeats stop and the others end its calls
    once it has been silent for lost_after_s. A node that stops says goodbye: no wait for silence."""
    url = pg.new_database()
    caplog.set_level(logging.INFO, logger="ivr.relay")

    async def run():
        async with node(tmp_path, url, "node-b") as b:
            relays = {name: Relay(url, name, heartbeat_s=1.0) for name in ("node-a", "node-c")}
            hubs = {name: Hub(filter=redact_event) for name in relays}
            for name, relay in relays.items():
                relay.start(hubs[name])
            await listening(b, *relays.values())
            for name in relays:
                call_to_alice(hubs[name], f"call-{name}")
            end = time.monotonic() + 15
            while not all(b.console.book.get(f"call-{name}") for name in relays):
                assert time.monotonic() < end
                await asyncio.sleep(0.05)
            for hub in hubs.values():
                await hub.close(deadline_s=2.0)
            relays["node-a"]._pub.notify = lambda payload: False   # killed: no goodbye reaches anyone
            for relay in relays.values():
                await relay.stop()
            calls = [b.console.book.get(f"call-{name}") for name in relays]
            end = time.monotonic() + 30
            while any(call.ended_at_s is None for call in calls):
                assert time.monotonic() < end, "a call of a node gone stayed live"
                await asyncio.sleep(0.1)
            return [c.outcome for c in calls], [c.call_id for c in b.console.book.live()]

    outcomes, live = asyncio.run(run())
    assert outcomes == ["gone", "gone"] and live == []
    texts = [r.getMessage() for r in caplog.records if r.name == "ivr.relay"]
    assert any("node node-a silent" in t for t in texts) and any("node node-c stopped" in t for t in texts), texts
    assert not any("node node-c silent" in t for t in texts), texts


def test_console_folds_heartbeats_of_another_node():
    """remote_live: a call its node's heartbeat no longer names ends once quiet for the grace; a
    node gone ends all its calls at once; a call named again (the node back) is live again."""
    from ivr.web.console import Console

    now = [1000.0]
    console = Console(SimpleNamespace(hub=None, agents=None, queues=None), clock=lambda: now[0])

    async def run():
        for call_id in ("c-1", "c-2"):
            await console.on_remote("node-a", ev.CallBegan(call_id=call_id, at_s=now[0], caller="+15550101"))
        console.remote_live("node-a", ["c-1"])                 # c-2 missing, but just seen: kept
        kept = [c.call_id for c in console.book.live()]
        now[0] += 10
        console.remote_live("node-a", ["c-1"])                 # c-2 missing and quiet: over
        after = [c.call_id for c in console.book.live()]
        console.remote_live("node-b", [], final=True)          # another node: nothing of node-a touched
        console.remote_live("node-a", [], final=True)          # node-a gone: all of its calls
        gone = [c.call_id for c in console.book.live()]
        console.remote_live("node-a", ["c-1"])                 # back after all
        return kept, after, gone, console.book.get("c-1")

    kept, after, gone, c1 = asyncio.run(run())
    assert kept == ["c-1", "c-2"] and after == ["c-1"] and gone == []
    assert c1.ended_at_s is None and c1.node == "node-a" and console.book.get("c-2").outcome == "gone"


def test_a_database_that_hangs_costs_the_calls_nothing():
    """PostgreSQL that accepts connections and never answers: the relay's queue fills and drops
    (counted by the hub), while every other subscriber gets every event and publish never waits."""
    import socket

    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(16)   # the kernel completes the handshake; nothing ever answers
    url = f"postgresql://ivr@127.0.0.1:{hang.getsockname()[1]}/ivr"

    async def run():
        hub = Hub(filter=redact_event)
        seen = []
        hub.subscribe(seen.append, name="records-stand-in")
        relay = Relay(url, "node-a", queue_size=10, connect_timeout_s=2).start(hub)
        for k in range(200):
            hub.publish(ev.TurnEnded(call_id="c-1", index=k, kind="speech", heard="hello"))
        await asyncio.sleep(0.2)
        stats = await hub.close(deadline_s=1.0)
        await relay.stop()
        return len(seen), stats["subscribers"]["console-relay"], relay.stats()

    try:
        delivered, relay_sub, relay_stats = asyncio.run(run())
    finally:
        hang.close()
    assert delivered == 200                              # the other subscriber lost nothing
    assert relay_sub["dropped"] >= 150 and relay_stats["sent"] == 0
