"""Published flow versions in PostgreSQL (issue 13): two stores, as two nodes would hold them, on one
real database see the same versions, aliases and canaries; files are immutable in the database and
checked when materialised into each node's cache; a served alias keeps serving while PostgreSQL is
away and follows a move made on another node once it is back; `ivr flows import` copies a folder."""

import os
import socket
import threading
from pathlib import Path

import pytest

from ivr.errors import UserError
from ivr.flow import versions
from ivr.flow.store import FlowStore
from ivr.flow.versions_pg import PgVersionStore
from ivr.flow.versions_store import DirVersionStore
from tests.pg_fixture import pg_server
from tests.test_flow_versions import SUB, ivr, make_flow


@pytest.fixture(scope="module")
def pg():
    yield from pg_server()


def _store(url: str, cache: Path) -> PgVersionStore:
    return PgVersionStore(url, cache, connect_timeout_s=2).open()


def test_two_nodes_share_versions_aliases_and_canaries_through_the_cli(pg, tmp_path, capsys, monkeypatch):
    url = pg.new_database()
    monkeypatch.setenv("IVR_CACHE_DIR", str(tmp_path / "cache-cli"))
    monkeypatch.setenv("USER", "alice")
    path = make_flow(tmp_path / "src")
    code, out, _ = ivr(capsys, "publish", str(path), "--database", url, "-m", "first", "--alias", "live")
    assert code == 0 and "published hotline v1" in out and "hotline@live -> v1" in out
    (path.parent / "sub" / "check.yaml").write_text(SUB.replace("Checking.", "Checking now."), encoding="utf-8")
    monkeypatch.setenv("IVR_VERSIONS_DATABASE", url)                 # the environment names the database too
    code, out, _ = ivr(capsys, "publish", str(path))
    assert code == 0 and "published hotline v2" in out
    code, out, _ = ivr(capsys, "publish", str(path))
    assert code == 0 and "unchanged since v2" in out
    assert ivr(capsys, "canary", "hotline", "--version", "2", "--percent", "10")[0] == 0
    code, out, _ = ivr(capsys, "list")
    assert "v1" in out and "first" in out and "<- live" in out and "canary on live: v2 for 10% of calls" in out
    code, out, _ = ivr(capsys, "diff", "hotline", "1", "2")
    assert "-steps:\n" not in out and "+  s: {say: \"Checking now.\"" in out

    node_a, node_b = _store(url, tmp_path / "cache-a"), _store(url, tmp_path / "cache-b")
    assert node_a.state("hotline") == node_b.state("hotline")
    assert versions.resolve(node_b, "hotline", "live") == 1
    versions.set_alias(node_a, "hotline", "live", 2)                 # moved on one node ...
    assert versions.resolve(node_b, "hotline", "live") == 2          # ... seen by the other
    assert versions.rollback(node_b, "hotline") == (2, 1)
    a_path, b_path = node_a.flow_path("hotline", 2), node_b.flow_path("hotline", 2)
    assert a_path != b_path and a_path.read_bytes() == b_path.read_bytes()
    assert (b_path.parent / "sub" / "check.yaml").read_text() == SUB.replace("Checking.", "Checking now.")
    assert all(not (p.stat().st_mode & 0o222) for p in b_path.parent.rglob("*"))   # read-only copy

    check = b_path.parent / "sub" / "check.yaml"                    # the cache edited behind our back
    os.chmod(check.parent, 0o755)
    os.chmod(check, 0o644)
    check.write_text("tampered", encoding="utf-8")
    assert node_b.flow_path("hotline", 2) == b_path and "Checking now." in check.read_text()   # fetched again

    import psycopg

    with psycopg.connect(url, autocommit=True) as conn, pytest.raises(psycopg.Error, match="immutable"):
        conn.execute("UPDATE flow_version_files SET content = 'x' WHERE version = 1")
    with psycopg.connect(url, autocommit=True) as conn, pytest.raises(psycopg.Error, match="immutable"):
        conn.execute("DELETE FROM flow_versions")
    node_a.close()
    node_b.close()


def test_concurrent_publishes_get_distinct_numbers(pg, tmp_path):
    url = pg.new_database()
    stores = [_store(url, tmp_path / f"c{k}") for k in range(4)]
    made, errors = [], []

    def publish(store, k):
        try:
            made.append(store.add_version("race", {"race.yaml": f"k{k}".encode()}, "race.yaml", "t", "").version)
        except Exception as exc:   # judged below
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(s, k)) for k, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and sorted(made) == [1, 2, 3, 4]
    assert [m.version for m in stores[0].versions("race")] == [1, 2, 3, 4]


def test_served_alias_follows_another_node_and_survives_postgres_away(pg, tmp_path, caplog, monkeypatch):
    url = pg.new_database()
    publisher = _store(url, tmp_path / "pub")
    path = make_flow(tmp_path / "src", "Hello one.")
    versions.publish(publisher, path, alias="live")
    make_flow(tmp_path / "src", "Hello two.")
    versions.publish(publisher, path)
    monkeypatch.setenv("IVR_CACHE_DIR", str(tmp_path / "node-cache"))
    flows = FlowStore(versions_database=url)
    first = flows.add("default", Path("versions:hotline@live"))
    assert flows.version_of(first) == "v1" and flows.poll() == []
    assert flows.status()["default"]["store"].startswith("postgresql://")
    versions.set_alias(publisher, "hotline", "live", 2)              # another node moves the alias
    assert flows.poll() == ["default"] and flows.get("default").steps["greet"].say[0].text == "Hello two."

    pg.stop()
    try:
        with caplog.at_level("ERROR", logger="ivr.flows"):
            assert flows.poll() == [] and flows.poll() == []           # still serving v2
        assert flows.get("default").steps["greet"].say[0].text == "Hello two."
        refused = flows.status()["default"]["refused"]
        assert refused and "is unreachable" in refused[0]
        assert len([r for r in caplog.records if "not reloaded" in r.message]) == 1   # logged once, not per poll
        assert flows._version_store.flow_path("hotline", 1).is_file()   # cached here: loads without the database
        with pytest.raises(UserError) as err:
            versions.set_alias(publisher, "hotline", "live", 1)
        assert "is unreachable" in str(err.value) and "PostgreSQL running" in err.value.hint
    finally:
        pg.start()
    assert flows.poll() == [] and flows.status()["default"]["refused"] == []   # back: nothing moved
    versions.set_alias(publisher, "hotline", "live", 1)
    assert flows.poll() == ["default"] and flows.version_of(flows.get("default")) == "v1"


def test_unreachable_or_wrong_database_is_a_clear_error(tmp_path, capsys):
    with socket.socket() as sock:                                    # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _, err = ivr(capsys, "list", "--database", f"postgresql://ivr:secret@127.0.0.1:{port}/ivr")
    assert code != 0 and "is unreachable" in err and "PostgreSQL running" in err and "secret" not in err
    code, _, err = ivr(capsys, "list", "--database", "mysql://x@h/db")
    assert code != 0 and "not a PostgreSQL URL" in err
    with pytest.raises(UserError, match="is unreachable"):
        FlowStore(versions_database=f"postgresql://ivr@127.0.0.1:{port}/ivr").add("d", Path("versions:x@live"))


def test_import_copies_a_folder_with_its_aliases_once(pg, tmp_path, capsys, monkeypatch):
    url = pg.new_database()
    monkeypatch.setenv("IVR_CACHE_DIR", str(tmp_path / "cache"))
    folder = DirVersionStore(tmp_path / "flows.d")
    path = make_flow(tmp_path / "src", "Hello one.")
    versions.publish(folder, path, alias="live")
    make_flow(tmp_path / "src", "Hello two.")
    versions.publish(folder, path, alias="staging")
    versions.set_canary(folder, "hotline", "live", versions.Canary(2, percent=5))
    code, out, _ = ivr(capsys, "import", str(tmp_path / "flows.d"), "--database", url)
    assert code == 0 and "hotline: 2 version(s) copied, 0 already there" in out and "live -> v1" in out
    code, out, _ = ivr(capsys, "import", str(tmp_path / "flows.d"), "--database", url)
    assert code == 0 and "0 version(s) copied, 2 already there" in out
    db = _store(url, tmp_path / "check")
    assert db.state("hotline") == folder.state("hotline")
    assert [(m.version, m.hash) for m in db.versions("hotline")] == [(m.version, m.hash)
                                                                     for m in folder.versions("hotline")]
    assert db.flow_path("hotline", 2).read_text() == path.read_text()
    other = DirVersionStore(tmp_path / "other.d")                    # another v1 of the same name: refused
    versions.publish(other, make_flow(tmp_path / "src2", "Different."))
    code, _, err = ivr(capsys, "import", str(tmp_path / "other.d"), "--database", url)
    assert code != 0 and "holds other files" in err
    code, _, err = ivr(capsys, "import", str(tmp_path / "other.d"), "--dir", str(tmp_path / "x.d"))
    assert code != 0 and "no database was given" in err
    db.close()


def test_cache_is_named_without_the_password_and_sessions_notice_a_cut(pg, tmp_path):
    one = PgVersionStore("postgresql://ivr:first-secret@127.0.0.1:5/db", tmp_path)
    two = PgVersionStore("postgresql://ivr:second-secret@127.0.0.1:5/db", tmp_path)
    assert one.cache == two.cache and "secret" not in str(one.cache)            # nothing to test guesses on
    assert one.cache != PgVersionStore("postgresql://ivr@127.0.0.1:5/other", tmp_path).cache
    in_query = PgVersionStore("postgresql://ivr@127.0.0.1:5/db?password=hunter2&sslmode=disable", tmp_path)
    assert "hunter2" not in in_query.where and in_query.where.endswith("?password=***&sslmode=disable")
    store = _store(pg.new_database(), tmp_path / "c")
    shown = store._run(lambda conn: [conn.execute(f"SHOW {k}").fetchone()[0] for k in (
        "idle_in_transaction_session_timeout", "statement_timeout")])
    assert shown == ["10s", "1min"]
    assert store._conn.info.get_parameters().get("tcp_user_timeout") == "10000"   # a dead peer noticed in ~10 s
    store.close()


def test_file_names_outside_the_version_are_refused(pg, tmp_path):
    """A version's files are written under the node's cache folder only: a manifest (an imported
    folder, a row inserted by hand) naming '../..' or an absolute path is refused, nothing written."""
    import hashlib
    import json

    import psycopg

    from ivr.flow.versions_store import Manifest, file_hash

    url = pg.new_database()
    store = _store(url, tmp_path / "cache")
    contents = {"../../evil.yaml": b"x"}
    files = {rel: hashlib.sha256(data).hexdigest() for rel, data in contents.items()}
    manifest = Manifest(name="evil", version=1, entry="../../evil.yaml", hash=file_hash(contents), author="",
                        created="", message="", files=files)
    with pytest.raises(UserError, match="outside the version"):
        store.import_version(manifest, contents)
    with pytest.raises(UserError, match="outside the version"):
        store.add_version("evil", {"/tmp/evil.yaml": b"x"}, "/tmp/evil.yaml", "", "")
    with psycopg.connect(url, autocommit=True) as conn:                       # by hand, past the store
        conn.execute("INSERT INTO flow_versions (name, version, entry, hash, files) VALUES ('evil', 1, %s, %s, %s)",
                     (manifest.entry, manifest.hash, json.dumps(files)))
        conn.execute("INSERT INTO flow_version_files VALUES ('evil', 1, %s, %s, %s)",
                     ("../../evil.yaml", files["../../evil.yaml"], b"x"))
    with pytest.raises(UserError, match="outside the version"):
        store.flow_path("evil", 1)
    assert not list(tmp_path.rglob("evil.yaml"))
    store.close()


def test_migrations_run_by_number_and_a_mistyped_database_key_is_an_error(tmp_path, monkeypatch):
    """Migration 8 is PostgreSQL only (SQLite records it without running it); the list is applied by
    number whatever its order, and a statement keyed for no known database fails loudly."""
    import sqlite3

    from ivr.store import open_store, schema

    monkeypatch.setattr(schema, "MIGRATIONS", list(reversed(schema.MIGRATIONS)))   # 3 alters 1's table
    open_store(f"sqlite:///{tmp_path / 'a.sqlite3'}", tmp_path / "spool").start().close()
    conn = sqlite3.connect(tmp_path / "a.sqlite3")
    assert [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY version")] == list(
        range(1, schema.LATEST + 1))
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'flow_versions'").fetchall() == []
    conn.close()
    monkeypatch.setattr(schema, "MIGRATIONS", [(1, "typo", [{"postgres": "CREATE TABLE x (a TEXT)"}])])
    with pytest.raises(ValueError, match="unknown database"):
        schema.migrate(sqlite3.connect(tmp_path / "b.sqlite3", isolation_level=None), type("B", (), {
            "name": "sqlite", "_sql": staticmethod(lambda q: q)})())
