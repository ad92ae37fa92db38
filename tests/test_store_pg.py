"""Records store on a real PostgreSQL: round trip, migrations shared by nodes, and the
server stopped during writes and started again: nothing lost."""

import time

import pytest

from ivr.errors import UserError
from ivr.store import PostgresBackend, RecordStore, queries
from ivr.store.schema import LATEST
from ivr.store.subscriber import StoreSubscriber
from tests.pg_fixture import pg_server
from tests.test_store_db import INJECTION, feed_call, wait_up


@pytest.fixture(scope="module")
def pg():
    yield from pg_server()


def make_store(url, tmp_path, name="spool") -> RecordStore:
    return RecordStore(PostgresBackend(url, connect_timeout_s=2), tmp_path / name, retry_s=0.2).start()


def test_round_trip_with_sql_text_verbatim(pg, tmp_path):
    url = pg.new_database()
    store = make_store(url, tmp_path)
    feed_call(StoreSubscriber(store), heard=INJECTION)
    assert store.flush()
    (row,) = queries.calls(store, outcome="hangup")
    assert row["flow"] == "retail" and row["turns"] == 2 and row["transport_id"] == "CA1"
    assert [t["heard"] for t in queries.turns(store, "c1")] == [INJECTION, INJECTION]
    assert queries.turns(store, "c1")[0]["data"]["timing"] == {"asr_ms": 120}
    assert [e["kind"] for e in queries.events(store, "c1")] == ["PromptPlayed", "PromptPlayed", "CallEnded"]
    store.close()


def test_two_nodes_migrate_once_and_share_the_tables(pg, tmp_path):
    url = pg.new_database()
    one, two = make_store(url, tmp_path, "a"), make_store(url, tmp_path, "b")
    feed_call(StoreSubscriber(one), call_id="from-one")
    feed_call(StoreSubscriber(two), call_id="from-two")
    one.flush()
    two.flush()
    assert {c["call_id"] for c in queries.calls(one)} == {"from-one", "from-two"}
    assert one.backend.fetch("SELECT version FROM schema_version") == [{"version": v} for v in range(1, LATEST + 1)]
    one.close()
    two.close()


def test_server_stopped_during_writes_then_back_loses_nothing(pg, tmp_path):
    url = pg.new_database()
    store = make_store(url, tmp_path)
    sub = StoreSubscriber(store)
    feed_call(sub, call_id="before")
    store.flush()
    try:
        pg.stop()
        for index in range(5):                       # calls go on while the database is away
            feed_call(sub, call_id=f"during{index}", heard=INJECTION)
        store.flush()
        assert store.down and store.status()["spooled"] > 0
    finally:
        pg.start()
    wait_up(store, timeout_s=20)
    assert {c["call_id"] for c in queries.calls(store)} == {"before", *(f"during{i}" for i in range(5))}
    assert all(c["outcome"] == "hangup" and c["turns"] == 2 for c in queries.calls(store))
    assert [t["heard"] for t in queries.turns(store, "during4")] == [INJECTION, INJECTION]
    assert not list((tmp_path / "spool").glob("spool-*.jsonl"))
    store.close()


def test_retention_and_transcript_consent(pg, tmp_path):
    from ivr.store import TranscriptPolicy

    store = RecordStore(PostgresBackend(pg.new_database()), tmp_path / "spool", retention_days=7,
                        transcripts=TranscriptPolicy(True, {"private": False})).start()
    sub = StoreSubscriber(store)
    feed_call(sub, call_id="old", at_s=time.time() - 8 * 86400)
    feed_call(sub, call_id="p", flow="private", heard="no keep")
    store.flush()
    store._next_purge = 0
    store.add_event("p", "Note", 0, time.time(), {})
    store.flush()
    assert [c["call_id"] for c in queries.calls(store)] == ["p"] and queries.turns(store, "old") == []
    assert {t["heard"] for t in queries.turns(store, "p")} == {None}
    store.close()


def test_unreachable_server_at_start_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as sock:                    # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = RecordStore(PostgresBackend(f"postgresql://ivr:secret@127.0.0.1:{port}/ivr", 2), tmp_path / "s")
    with pytest.raises(UserError) as err:
        store.start()
    assert "PostgreSQL running" in err.value.hint and "secret" not in str(err.value)


@pytest.mark.slow
def test_service_call_while_postgres_is_stopped_is_written_when_it_returns(pg, tmp_path, line_audio):
    import asyncio
    from pathlib import Path

    import psycopg

    from ivr.clients.twilio_ws import run_ws_call
    from ivr.service.config import Listener, ServeConfig
    from ivr.service.service import Service

    url = pg.new_database()
    cfg = ServeConfig(listeners={"ws": Listener("127.0.0.1", 0)},
                      default_flow=Path(__file__).resolve().parent.parent / "flows" / "demo.yaml", asr="whisper",
                      max_calls=2, records_dir=tmp_path / "records", reload=False, shutdown_grace_ms=2000,
                      database=url)
    audio = line_audio([("pause", 2500), ("say", "opening hours"), ("pause", 5000)])

    async def go():
        service = Service(cfg, {})
        bound = await service.start()
        try:
            pg.stop()
            try:
                result = await run_ws_call("ws://{}:{}/media".format(*bound["ws"]), audio)
                for _ in range(100):                      # the call's end reaches the store
                    await asyncio.to_thread(service.store.flush)
                    if service.finished and service.store.status()["spooled"] and not service.store._seq:
                        break
                    await asyncio.sleep(0.1)
                spooled = service.store.status()["spooled"]
            finally:
                pg.start()
            await asyncio.to_thread(wait_up, service.store, 20)
        finally:
            await service.stop(grace_ms=1000)
        return result, spooled

    result, spooled = asyncio.run(go())
    assert result.reply_latencies_ms and spooled > 0          # the call went on while the database was away
    with psycopg.connect(url) as conn:
        ((outcome, turns, transport),) = conn.execute("SELECT outcome, turns, transport FROM calls").fetchall()
        assert outcome and transport == "ws" and turns >= 2
        assert conn.execute("SELECT count(*) FROM turns").fetchone()[0] == turns
    assert not list((tmp_path / "records" / "spool").glob("spool-*.jsonl"))
