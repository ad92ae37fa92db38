"""Bad input of issue 13, defined and tested: a node that answers OPTIONS but not INVITE, nodes serving
different versions of a flow, PostgreSQL restarting under load.

One slow scenario (tests/cluster_badinput_scenario.py, ~60 s, one cluster for all three) in a
loopback-only network namespace, plus a bridge-transfer check on the test PostgreSQL stopped and
started again. (A flood from one source at the proxy: tests/test_cluster.py.)
"""

import asyncio
import time

import pytest

from tests.cluster_scenario import run_scenario
from tests.pg_fixture import pg_server


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    return run_scenario(tmp_path_factory, "cluster_badinput_scenario", "BADINPUT", timeout_s=170)


def _rows(outcome) -> dict:
    return {row["caller"]: row for row in outcome["records"]}


def _completed(calls) -> list:
    return [c for c in calls if c["outcome"] != "completed"]


@pytest.mark.slow
def test_a_node_that_answers_options_but_not_invite_loses_no_call_and_takes_itself_out(outcome):
    rows, nodes = _rows(outcome), outcome["nodes"]
    assert _completed(outcome["half_calls"]) == []                  # each INVITE it got moved on (500 -> next node)
    assert all(rows[c["caller"]]["node"] in (nodes["node1"], nodes["node2"]) for c in outcome["half_calls"])
    assert all(row["node"] != nodes["node3"] for row in rows.values())
    health = outcome["node3_health"]                                 # it said why, and left rotation
    assert health["ok"] is False and health["sip"]["healthy"] is False and health["sip"]["times_taken_out"] >= 1
    assert "192.0.2.1" in health["sip"]["last_failure"]
    assert all(not n["sip"]["healthy"] for n in outcome["status"]["nodes"] if n["name"] == "node3")


@pytest.mark.slow
def test_nodes_on_different_versions_each_call_keeps_its_version_and_says_which(outcome):
    rows, nodes = _rows(outcome), outcome["nodes"]
    assert outcome["flow"] == "versions:acme-demo@live" and outcome["v2"] == 2
    assert outcome["moved_everywhere"]                              # the alias move reached every node on live
    mixed = outcome["status"]["mixed_versions"]
    assert mixed == {"default: acme-demo": {"node1": "v2", "node2": "v1", "node3": "v2"}}, outcome["status"]
    # calls up when live moved finish on the version they started with
    assert _completed(outcome["long_calls"]) == []
    assert [rows[c["caller"]]["flow_version"] for c in outcome["long_calls"]] == ["v1", "v1"]
    # new calls get their node's version, and their record says which
    served = {nodes["node1"]: "v2", nodes["node2"]: "v1"}
    after = [rows[c["caller"]] for c in outcome["after_move"]]
    assert _completed(outcome["after_move"]) == []
    assert all(r["flow"] == "acme-demo" and r["flow_version"] == served[r["node"]] for r in after), after
    assert {r["flow_version"] for r in after} == {"v1", "v2"}, after
    assert all(r["flow_version"] == "v1" for r in rows.values() if r["caller"].startswith("a"))


@pytest.mark.slow
def test_postgres_restarting_under_load_calls_go_on_and_records_arrive_when_it_is_back(outcome):
    rows = _rows(outcome)
    assert _completed(outcome["db_calls"]) == [] and _completed(outcome["away_calls"]) == []
    for call in outcome["db_calls"] + outcome["away_calls"]:        # written once the database was back
        row = rows[call["caller"]]
        assert row["ended_at"] is not None and row["outcome"] == "caller_hangup" and row["turn_rows"] >= 1, row
    refused = outcome["away_health"]["flows"]["default"]["refused"]   # the node said so, kept serving v2
    assert refused and "unreachable" in refused[0] and outcome["away_health"]["flows"]["default"]["version"] == "v2"
    assert outcome["back_health"] and outcome["back_health"]["flows"]["default"]["refused"] == []


@pytest.fixture(scope="module")
def pg():
    yield from pg_server()


def test_bridge_transfers_answered_by_the_noting_node_while_postgres_is_away(pg, tmp_path):
    """A transfer noted while PostgreSQL is away is answered from the noting node's memory (the other
    node cannot know it: it answers 'no transfer'); once the database is back, new transfers are
    shared again."""
    from ivr.service.listeners import HealthServer
    from ivr.store import open_store
    from tests.test_cluster_transfers import _get, _Node

    url = pg.new_database()
    stores = [open_store(url, tmp_path / f"spool{k}").start() for k in (1, 2)]
    node_a, node_b = _Node(stores[0]), _Node(stores[1])

    async def run():
        servers = [HealthServer(n, "127.0.0.1", 0) for n in (node_a, node_b)]
        a, b = [f"http://{h}:{p}" for h, p in [await s.start() for s in servers]]
        try:
            pg.stop()
            try:
                node_a.transfers.note("CA-away", {"target": "sip:agents@127.0.0.1:5080", "reason": "agent",
                                                  "context": {}, "call_id": "c-away"}, node_a.store)
                await asyncio.sleep(0.5)                             # its shared write fails (logged)
                on_a = await asyncio.to_thread(_get, f"{a}/calls/CA-away/transfer")
                on_b = await asyncio.to_thread(_get, f"{b}/calls/CA-away/transfer")
            finally:
                pg.start()
            node_a.transfers.note("CA-back", {"target": "sip:sales@127.0.0.1:5080", "reason": "sales",
                                              "context": {}, "call_id": "c-back"}, node_a.store)
            back_on_b, deadline = "", time.monotonic() + 30
            while not back_on_b and time.monotonic() < deadline:     # the write reconnects; bounded by time
                back_on_b = await asyncio.to_thread(_get, f"{b}/calls/CA-back/transfer")
                if not back_on_b:
                    await asyncio.sleep(0.2)
            return on_a, on_b, back_on_b
        finally:
            for server in servers:
                await server.stop()

    try:
        on_a, on_b, back_on_b = asyncio.run(run())
    finally:
        for store in stores:
            store.close()
    assert on_a == "sip:agents@127.0.0.1:5080"
    assert on_b == ""                                               # defined: unknown there while the database is away
    assert back_on_b == "sip:sales@127.0.0.1:5080"
