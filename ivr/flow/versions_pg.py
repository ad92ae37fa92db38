"""Published flow versions in PostgreSQL: every node of a cluster sees the same versions, aliases
and canaries (the `VersionStore` of versions_store.py; tables of migration 8, ivr/store/schema.py).

- `flow_versions` (one row per version: its manifest) and `flow_version_files` (each file's bytes
  and SHA-256) are written once, in one transaction, and the database refuses to UPDATE or DELETE
  them (triggers).
- `flow_state` holds per flow the aliases, their history and canaries as JSON, changed only in a
  transaction that locks the row (`SELECT ... FOR UPDATE`), plus a `revision` counter bumped by
  every change. A serving node polls that one number every watch interval (1 s) and re-reads the
  alias only when it moved (see `revision`): polling rather than LISTEN/NOTIFY because the
  service's watch already runs every second, a poll is one primary-key read, and a notification
  sent while a node's connection is down (PostgreSQL restarting) is lost, so a node would have to
  poll after every reconnect anyway.
- `flow_path` materialises a version's files into a local cache folder (flows load from files),
  checking every file against the manifest's hashes; the cache is re-checked at each use and
  rebuilt from the database if a file there changed. A version already cached (with its
  manifest) still loads while the database is away.
"""

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path, PurePosixPath

from ivr.errors import UserError
from ivr.flow.versions_store import FILES, MANIFEST, Manifest, VersionStore, _read_only, _writable, file_hash

log = logging.getLogger("ivr.flows")

HINT = ("is PostgreSQL running and reachable, do the user, password (PGPASSWORD or ~/.pgpass) and database "
        "exist? The URL comes from --database, IVR_VERSIONS_DATABASE or flows.versions_database; a serving node "
        "keeps serving the versions it has loaded meanwhile")
MANIFEST_COLUMNS = "version, entry, hash, author, created, message, files"


def default_cache_dir() -> Path:
    return Path(os.environ.get("IVR_CACHE_DIR") or Path.home() / ".cache" / "ivr") / "flow-versions"


class PgVersionStore(VersionStore):
    def __init__(self, url: str, cache_dir: Path | None = None, connect_timeout_s: int = 5) -> None:
        from ivr.store.backends import redact_url

        self.url, self.connect_timeout_s = url, connect_timeout_s
        self.where = redact_url(url)
        # one cache per database, named without the password (a folder name must not let anyone test
        # guesses of it, and a changed password keeps the cache a node serves from while the database is away)
        key = hashlib.sha256(self.where.encode()).hexdigest()[:12]
        self.cache = Path(cache_dir or default_cache_dir()) / key
        self._conn = None
        self._lock = threading.Lock()

    # ---- connection ----------------------------------------------------------------

    def open(self) -> "PgVersionStore":
        """Connect and migrate now: an unreachable database is a clear error at start."""
        self._run(lambda conn: None)
        return self

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
            self._conn = None

    def _run(self, work: Callable):
        import psycopg

        with self._lock:
            try:
                if self._conn is None or self._conn.closed or self._conn.broken:
                    from ivr.store.pgconn import connect

                    # keepalives: a poll on a database cut off returns in ~10 s (a stopping node's watch thread
                    # would otherwise hold its exit for the kernel's ~15 min); a publisher cut off mid-transaction
                    # does not keep the flow's row locked
                    self._conn = connect(self.url, application_name="ivr-flows", autocommit=True,
                                         connect_timeout_s=self.connect_timeout_s, statement_timeout_ms=60_000)
                    from ivr.store.backends import PostgresBackend
                    from ivr.store.schema import migrate

                    migrate(self._conn, PostgresBackend(self.url))
                return work(self._conn)
            except psycopg.OperationalError as exc:
                if self._conn is not None and (self._conn.closed or self._conn.broken):
                    self._conn = None
                raise UserError(f"flow versions database {self.where} is unreachable: {_first_line(exc)}",
                                HINT) from exc
            except psycopg.Error as exc:
                raise UserError(f"flow versions database {self.where}: {_first_line(exc)}",
                                "published versions are never changed in place; publish a new version") from exc

    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self._run(lambda conn: conn.execute(sql, args).fetchall())

    # ---- reading -------------------------------------------------------------------

    def names(self) -> list[str]:
        return [row[0] for row in self._rows("SELECT DISTINCT name FROM flow_versions ORDER BY name")]

    def versions(self, name: str) -> list[Manifest]:
        rows = self._rows(f"SELECT {MANIFEST_COLUMNS} FROM flow_versions WHERE name = %s ORDER BY version", (name,))
        return [_manifest(name, row) for row in rows]

    def manifest(self, name: str, version: int) -> Manifest:
        rows = self._rows(f"SELECT {MANIFEST_COLUMNS} FROM flow_versions WHERE name = %s AND version = %s",
                          (name, version))
        if not rows:
            raise UserError(f"{self.where}: flow {name} has no version v{version}",
                            f"`ivr flows list {name}` shows the versions published")
        return _manifest(name, rows[0])

    def read_file(self, name: str, version: int, rel: str) -> bytes:
        rows = self._rows("SELECT content FROM flow_version_files WHERE name = %s AND version = %s AND path = %s",
                          (name, version, rel))
        if not rows:
            raise UserError(f"{self.where}: {name} v{version} has no file {rel}")
        return bytes(rows[0][0])

    def state(self, name: str) -> dict:
        rows = self._rows("SELECT state FROM flow_state WHERE name = %s", (name,))
        data = json.loads(rows[0][0]) if rows else {}
        for key in ("aliases", "history", "canaries"):
            data.setdefault(key, {})
        return data

    def revision(self, name: str) -> int:
        """A number that changes whenever the flow's aliases, canaries or versions change."""
        rows = self._rows("SELECT revision FROM flow_state WHERE name = %s", (name,))
        return int(rows[0][0]) if rows else 0

    # ---- writing -------------------------------------------------------------------

    def add_version(self, name: str, contents: dict[str, bytes], entry: str, author: str,
                    message: str) -> Manifest:
        _check_paths(name, [*contents, entry])
        def add(conn) -> Manifest:
            with conn.transaction(), conn.cursor() as cur:
                _lock_flow(cur, name)
                cur.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM flow_versions WHERE name = %s", (name,))
                number = int(cur.fetchone()[0])
                manifest = Manifest(name=name, version=number, entry=entry, hash=file_hash(contents), author=author,
                                    created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), message=message,
                                    files={rel: hashlib.sha256(d).hexdigest() for rel, d in sorted(contents.items())})
                _insert(cur, manifest, contents)
            return manifest
        return self._run(add)

    def import_version(self, manifest: Manifest, contents: dict[str, bytes]) -> bool:
        """Copy a version published elsewhere under its own number: True if copied, False if the
        same version (same hash) is already here; a different version under that number is refused."""
        if file_hash(contents) != manifest.hash or any(
                hashlib.sha256(contents.get(rel, b"")).hexdigest() != digest for rel, digest in manifest.files.items()):
            raise UserError(f"{manifest.name} {manifest.label}: its files do not match its manifest",
                            "published versions must not be edited; it was not imported")
        _check_paths(manifest.name, [*manifest.files, *contents, manifest.entry])

        def copy(conn) -> bool:
            with conn.transaction(), conn.cursor() as cur:
                _lock_flow(cur, manifest.name)
                cur.execute("SELECT hash FROM flow_versions WHERE name = %s AND version = %s",
                            (manifest.name, manifest.version))
                row = cur.fetchone()
                if row is not None:
                    if row[0] != manifest.hash:
                        raise UserError(f"{manifest.name} {manifest.label} in {self.where} holds other files "
                                        f"({row[0][:12]}, not {manifest.hash[:12]})",
                                        "a version is never overwritten; import into another database or name")
                    return False
                _insert(cur, manifest, contents)
            return True
        return self._run(copy)

    def update_state(self, name: str, change: Callable[[dict], None]) -> dict:
        def update(conn) -> dict:
            with conn.transaction(), conn.cursor() as cur:
                _lock_flow(cur, name)
                cur.execute("SELECT state FROM flow_state WHERE name = %s", (name,))
                state = json.loads(cur.fetchone()[0])
                for key in ("aliases", "history", "canaries"):
                    state.setdefault(key, {})
                change(state)
                cur.execute("UPDATE flow_state SET state = %s, revision = revision + 1, updated_at = %s "
                            "WHERE name = %s", (json.dumps(state, sort_keys=True), time.time(), name))
            return state
        return self._run(update)

    # ---- the local copy ------------------------------------------------------------

    def flow_path(self, name: str, version: int) -> Path:
        """The version's flow file in the local cache, materialised from the database if missing or changed."""
        folder = self.cache / name / f"v{version}"
        try:
            manifest = self.manifest(name, version)
        except UserError:
            manifest = _cached_manifest(folder)       # the database away: a cached copy still serves
            if manifest is None:
                raise
        _check_paths(name, [*manifest.files, manifest.entry])    # never written or read outside the cache folder
        if _intact(folder, manifest):
            return folder / FILES / manifest.entry
        if folder.exists():
            log.warning("%s: cached copy of %s v%d changed on disk; fetched again", folder, name, version)
            _writable(folder)
            shutil.rmtree(folder, ignore_errors=True)
        rows = self._rows("SELECT path, sha256, content FROM flow_version_files WHERE name = %s AND version = %s",
                          (name, version))
        contents = {path: bytes(content) for path, _, content in rows}
        if set(contents) != set(manifest.files) or file_hash(contents) != manifest.hash or any(
                hashlib.sha256(data).hexdigest() != manifest.files[rel] for rel, data in contents.items()):
            raise UserError(f"{self.where}: the files of {name} v{version} do not match its manifest",
                            "the database was edited by hand; publish the flow again as a new version")
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".v{version}-", dir=folder.parent))
        try:
            for rel, data in contents.items():
                (tmp / FILES / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / FILES / rel).write_bytes(data)
            (tmp / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2) + "\n", encoding="utf-8")
            _read_only(tmp)
            os.rename(tmp, folder)                 # whole or not at all; another process may have won
        except OSError:
            _writable(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
            if not _intact(folder, manifest):
                raise
        return folder / FILES / manifest.entry


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _check_paths(name: str, paths: list[str]) -> None:
    """A version's file names are relative paths inside the version (no '..', not absolute)."""
    bad = [rel for rel in paths if not rel or PurePosixPath(rel).is_absolute() or ".." in PurePosixPath(rel).parts]
    if bad:
        raise UserError(f"flow {name}: file name(s) outside the version: {', '.join(map(repr, bad))}",
                        "a version holds its files under its own folder; publish it again from the flow's folder")


def _manifest(name: str, row: tuple) -> Manifest:
    version, entry, digest, author, created, message, files = row
    return Manifest(name=name, version=int(version), entry=entry, hash=digest, author=author or "",
                    created=created or "", message=message or "", files=json.loads(files))


def _lock_flow(cur, name: str) -> None:
    """The flow's state row, made if new and locked for this transaction: writers of one flow take turns."""
    cur.execute("INSERT INTO flow_state (name, state, revision, updated_at) VALUES (%s, '{}', 0, %s) "
                "ON CONFLICT (name) DO NOTHING", (name, time.time()))
    cur.execute("SELECT revision FROM flow_state WHERE name = %s FOR UPDATE", (name,))


def _insert(cur, manifest: Manifest, contents: dict[str, bytes]) -> None:
    cur.execute(f"INSERT INTO flow_versions (name, {MANIFEST_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (manifest.name, manifest.version, manifest.entry, manifest.hash, manifest.author, manifest.created,
                 manifest.message, json.dumps(manifest.files, sort_keys=True)))
    cur.executemany("INSERT INTO flow_version_files (name, version, path, sha256, content) VALUES (%s, %s, %s, %s, %s)",
                    [(manifest.name, manifest.version, rel, manifest.files[rel], data)
                     for rel, data in sorted(contents.items())])
    cur.execute("UPDATE flow_state SET revision = revision + 1, updated_at = %s WHERE name = %s",
                (time.time(), manifest.name))


def _cached_manifest(folder: Path) -> Manifest | None:
    try:
        return Manifest(**json.loads((folder / MANIFEST).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def _intact(folder: Path, manifest: Manifest) -> bool:
    if _cached_manifest(folder) != manifest:
        return False
    for rel, digest in manifest.files.items():
        try:
            if hashlib.sha256((folder / FILES / rel).read_bytes()).hexdigest() != digest:
                return False
        except OSError:
            return False
    return True
