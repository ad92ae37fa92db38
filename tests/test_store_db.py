"""Records store on SQLite: rows written turn by turn, migrations, consent, retention,
verbatim SQL-looking text, and the spool when the file cannot be written mid-run."""

import contextlib
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from ivr import callevents as ev
from ivr.errors import UserError
from ivr.store import RecordStore, SqliteBackend, TranscriptPolicy, backend_for, queries
from ivr.store.schema import LATEST
from ivr.store.subscriber import StoreSubscriber

INJECTION = "'); DROP TABLE calls; -- \" ; DELETE FROM turns WHERE 1=1; %s %(x)s ?"


def make_store(tmp_path, db=None, **options) -> RecordStore:
    return RecordStore(SqliteBackend(db or tmp_path / "ivr.sqlite3", busy_timeout_s=0.2), tmp_path / "spool",
                       retry_s=0.1, **options).start()


def feed_call(sub, call_id="c1", flow="retail", at_s=None, heard="check my order", turns=2):
    at_s = time.time() if at_s is None else at_s
    sub(ev.CallBegan(call_id=call_id, at_s=at_s, transport="ws", transport_id="CA1", caller="+15550123",
                     flow=flow, flow_version="abc123", language="en"))
    for index in range(turns):
        sub(ev.PromptPlayed(call_id=call_id, t_ms=100 * index, at_s=at_s, text=f"prompt {index}"))
        sub(ev.TurnEnded(call_id=call_id, t_ms=1000 * (index + 1), at_s=at_s + index, index=index, kind="speech",
                         step="menu", heard=heard, confidence=0.9, match={"choice": "orders", "score": 0.8,
                         "via": "phrase"}, said=(f"reply {index}",), latency_ms=420.0, timing={"asr_ms": 120}))
    sub(ev.CallEnded(call_id=call_id, t_ms=5000, at_s=at_s + 5, kind="hangup", reason="done", step="bye"))


def test_call_turns_and_events_round_trip_with_sql_text_verbatim(tmp_path):
    store = make_store(tmp_path)
    sub = StoreSubscriber(store)
    feed_call(sub, heard=INJECTION)
    assert store.flush()
    (row,) = queries.calls(store, flow="retail")
    assert row["outcome"] == "hangup" and row["turns"] == 2 and row["duration_ms"] == 5000
    assert row["transport_id"] == "CA1" and row["flow_version"] == "abc123" and row["transcripts"] == 1
    turns = queries.turns(store, "c1")
    assert [t["heard"] for t in turns] == [INJECTION, INJECTION]       # stored verbatim, nothing run
    assert turns[1]["said"] == ["reply 1"] and turns[0]["choice"] == "orders"
    assert turns[0]["data"]["timing"] == {"asr_ms": 120}
    kinds = [e["kind"] for e in queries.events(store, "c1")]
    assert kinds == ["PromptPlayed", "PromptPlayed", "CallEnded"]
    assert queries.outcomes(store) == [{"flow": "retail", "outcome": "hangup", "calls": 1}]
    assert queries.calls(store, caller=INJECTION) == []
    store.close()
    conn = sqlite3.connect(tmp_path / "ivr.sqlite3")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == LATEST


def test_each_turn_is_committed_before_the_call_ends(tmp_path):
    store = make_store(tmp_path)
    sub = StoreSubscriber(store)
    sub(ev.CallBegan(call_id="live", at_s=time.time(), flow="f"))
    sub(ev.TurnEnded(call_id="live", index=0, kind="speech", heard="hello"))
    assert store.flush()
    other = sqlite3.connect(tmp_path / "ivr.sqlite3")      # another process would see it (crash-safe)
    assert other.execute("SELECT heard FROM turns WHERE call_id='live'").fetchall() == [("hello",)]
    store.close()


def test_migrations_run_once_and_reopen_keeps_rows(tmp_path):
    store = make_store(tmp_path)
    feed_call(StoreSubscriber(store))
    store.flush()
    store.close()
    again = make_store(tmp_path)
    versions = again.backend.fetch("SELECT version FROM schema_version")
    assert versions == [{"version": v} for v in range(1, LATEST + 1)]
    assert len(queries.calls(again)) == 1
    again.close()


def test_transcripts_switched_off_per_flow_drop_texts_only(tmp_path):
    store = make_store(tmp_path, transcripts=TranscriptPolicy(default=True, flows={"private": False}))
    sub = StoreSubscriber(store)
    feed_call(sub, call_id="p", flow="private", heard="my secret words")
    feed_call(sub, call_id="k", flow="retail", heard="keep me")
    store.flush()
    private = queries.turns(store, "p")
    assert [(t["heard"], t["said"], t["choice"], t["step"]) for t in private] == [(None, None, "orders", "menu")] * 2
    assert all("text" not in e["data"] for e in queries.events(store, "p"))
    assert queries.call(store, "p")["transcripts"] == 0
    assert queries.turns(store, "k")[0]["heard"] == "keep me"
    raw = (tmp_path / "ivr.sqlite3").read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("ivr.sqlite3*"))
    assert b"my secret words" not in raw
    store.close()


def test_retention_deletes_old_calls_with_their_rows(tmp_path):
    store = make_store(tmp_path, retention_days=30, purge_every_s=3600)
    sub = StoreSubscriber(store)
    feed_call(sub, call_id="old", at_s=time.time() - 40 * 86400)
    feed_call(sub, call_id="new")
    store.flush()
    store._next_purge = 0          # the next writer round purges (hourly in service)
    store.add_event("new", "Note", 0, time.time(), {})
    store.flush()
    assert [c["call_id"] for c in queries.calls(store)] == ["new"]
    assert queries.turns(store, "old") == [] and queries.events(store, "old") == []
    assert store.status()["purged"] == 1
    store.close()


def test_damaged_file_is_a_clear_error_at_start(tmp_path):
    db = tmp_path / "ivr.sqlite3"
    db.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(UserError) as err:
        make_store(tmp_path, db)
    assert "damaged" in str(err.value) and "mv" in err.value.hint


@contextlib.contextmanager
def small_disk(path: Path, size_kb: int):
    """A real small filesystem (tmpfs) at `path`: fills up, can be remounted read-only."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a small tmpfs")
    path.mkdir()
    probe = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                           capture_output=True, text=True)
    if probe.returncode:
        pytest.skip(f"cannot mount tmpfs here: {probe.stderr.strip()}")
    try:
        yield lambda options: subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_read_only_file_is_a_clear_error_at_start(tmp_path):
    with small_disk(tmp_path / "disk", 1024) as remount:
        db = tmp_path / "disk" / "ivr.sqlite3"
        sqlite3.connect(db).execute("CREATE TABLE x (a)").connection.close()
        remount("ro")
        with pytest.raises(UserError) as err:
            make_store(tmp_path, db)
    assert "cannot be written" in str(err.value) and "writable" in err.value.hint


def test_disk_full_mid_run_spools_then_writes_everything(tmp_path):
    with small_disk(tmp_path / "disk", 256) as remount:   # room for the schema (5 migrations) and its WAL
        store = make_store(tmp_path, tmp_path / "disk" / "ivr.sqlite3")
        sub = StoreSubscriber(store)
        count = 0
        while not store.down and count < 400:          # fill the disk with real calls
            feed_call(sub, call_id=f"fill{count}", heard="x" * 2000)
            store.flush()
            count += 1
        assert store.down, "the small disk never filled"
        feed_call(sub, call_id="while-full", heard=INJECTION)
        store.flush()
        remount("size=8m")                              # space again
        wait_up(store)
        assert len(queries.calls(store)) == count + 1
        assert [t["heard"] for t in queries.turns(store, "while-full")] == [INJECTION, INJECTION]
        assert sum(len(queries.turns(store, f"fill{i}")) for i in range(count)) == 2 * count
        store.close()


def wait_up(store, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while (store.down or store.spool.pending) and time.monotonic() < deadline:
        store.flush(1)
        time.sleep(0.05)
    assert not store.down and not store.spool.pending


def test_locked_database_mid_run_spools_then_writes_everything(tmp_path, caplog):
    store = make_store(tmp_path)
    sub = StoreSubscriber(store)
    feed_call(sub, call_id="before")
    store.flush()
    blocker = sqlite3.connect(tmp_path / "ivr.sqlite3", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")               # e.g. a backup tool holding the file
    feed_call(sub, call_id="during", heard=INJECTION)
    store.flush()
    assert store.down and store.status()["spooled"] > 0
    assert list((tmp_path / "spool").glob("spool-*.jsonl"))
    blocker.execute("ROLLBACK")
    blocker.close()
    wait_up(store)
    assert {c["call_id"] for c in queries.calls(store)} == {"before", "during"}
    assert [t["heard"] for t in queries.turns(store, "during")] == [INJECTION, INJECTION]
    assert len(queries.events(store, "during")) == 3
    assert not list((tmp_path / "spool").glob("spool-*.jsonl"))
    store.close()


def test_spool_left_by_an_earlier_run_is_written_at_start(tmp_path):
    from ivr.store.spool import Spool

    spool = Spool(tmp_path / "spool")
    spool.append([{"op": "call", "row": {"call_id": "z", "started_at": 1.0, "flow": "f"}},
                  {"op": "turn", "row": {"call_id": "z", "idx": 0, "heard": "hi"}}])
    spool.seal()
    with open(spool.files()[0], "a") as handle:
        handle.write('{"op": "turn", "row": {"call_')       # cut short by a crash
    store = make_store(tmp_path)
    store.flush()
    assert queries.turns(store, "z")[0]["heard"] == "hi"
    assert spool.files() == []
    store.close()


def test_database_urls():
    assert backend_for("sqlite:///records/ivr.sqlite3", Path("/srv")).path == Path("/srv/records/ivr.sqlite3")
    assert backend_for("sqlite:////var/ivr.db").path == Path("/var/ivr.db")
    assert backend_for("postgresql://ivr@127.0.0.1:5432/ivr").name == "postgresql"
    with pytest.raises(UserError):
        backend_for("mysql://x")


def test_config_records_section(tmp_path):
    from ivr.service.config import load_config
    from ivr.store.subscriber import build_store

    path = tmp_path / "ivr.yaml"
    path.write_text("records: {dir: recs, retention_days: 30, transcripts: {default: true, flows: {zh: false}}}\n")
    cfg = load_config(path, env={})
    assert cfg.database_url() == f"sqlite:///{tmp_path / 'recs' / 'ivr.sqlite3'}"
    assert cfg.spool_path() == tmp_path / "recs" / "spool" and cfg.retention_days == 30
    store = build_store(cfg)
    assert store.transcripts.keep("zh") is False and store.transcripts.keep("en") is True
    store.close()
    assert (tmp_path / "recs" / "ivr.sqlite3").is_file()
    path.write_text("records: {database: 'postgresql://ivr@127.0.0.1:5432/ivr', spool_dir: sp}\n")
    cfg = load_config(path, env={})
    assert cfg.database_url().startswith("postgresql://") and cfg.spool_path() == tmp_path / "sp"
    assert load_config(path, env={"IVR_DATABASE": "off"}).database_url() is None
    for bad in ("records: {retention_days: -1}", "records: {transcripts: maybe}", "records: {databse: x}"):
        path.write_text(bad + "\n")
        with pytest.raises(UserError):
            load_config(path, env={})


def test_store_subscribed_to_a_real_hub(tmp_path):
    import asyncio

    from ivr.service.hub import Hub
    from ivr.store.subscriber import attach

    store = make_store(tmp_path)

    async def go():
        hub = Hub()
        attach(hub, store)
        feed_call(hub.publish, call_id="via-hub")
        await hub.close()

    asyncio.run(go())
    store.flush()
    assert queries.call(store, "via-hub")["turns"] == 2
    assert len(queries.turns(store, "via-hub")) == 2
    store.close()


def test_killed_service_keeps_every_committed_turn(tmp_path):
    import signal
    import sys

    code = f"""
import sys, time
from ivr.store import RecordStore, SqliteBackend
store = RecordStore(SqliteBackend({str(tmp_path / 'ivr.sqlite3')!r}), {str(tmp_path / 'spool')!r}).start()
store.begin_call({{"call_id": "k", "started_at": time.time(), "flow": "f"}})
for i in range(5):
    store.add_turn({{"call_id": "k", "idx": i, "heard": f"turn {{i}}"}})
    store.flush()
print("written", flush=True)
time.sleep(60)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parent.parent)
    try:
        assert proc.stdout.readline().strip() == "written"
    finally:
        proc.send_signal(signal.SIGKILL)               # no close(), no atexit: a crash
        proc.wait(10)
    conn = sqlite3.connect(tmp_path / "ivr.sqlite3")
    assert [r[0] for r in conn.execute("SELECT heard FROM turns ORDER BY idx")] == [f"turn {i}" for i in range(5)]
