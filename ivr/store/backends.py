"""The two databases behind the records store: SQLite (one node, the default) and
PostgreSQL (several nodes, psycopg 3). Both take the same operations (`call`, `turn`,
`event`, `end`: plain dicts, so they can wait in the spool as JSON) and the same SQL.

Every value goes in as a query parameter, never into the SQL text: a caller who says
"'; DROP TABLE calls; --" is stored verbatim. Column names come from the fixed lists below.
`down(exc)` tells an outage (retry later, spool meanwhile) from an operation the database
will never take (set aside in the spool's rejected file).
"""

import contextlib
import json
import logging
import sqlite3
import threading
from pathlib import Path

from ivr.errors import UserError
from ivr.store.schema import migrate

log = logging.getLogger("ivr.store")

CALL_COLUMNS = ("call_id", "transport", "transport_id", "caller", "called", "remote", "flow", "flow_version",
                "language", "started_at", "transcripts", "data")
END_COLUMNS = ("ended_at", "outcome", "reason", "target", "end_step", "why", "duration_ms", "turns")
TURN_COLUMNS = ("call_id", "idx", "kind", "step", "heard", "confidence", "choice", "score", "via", "said",
                "next_step", "endpoint", "barge_in", "t_ms", "latency_ms", "at_s", "data", "sentiment")
EVENT_COLUMNS = ("call_id", "seq", "kind", "t_ms", "at_s", "data")
DISPOSITION_COLUMNS = ("call_id", "agent", "disposition", "notes", "at_s", "data")
CALLBACK_COLUMNS = ("callback_id", "call_id", "number", "queue", "created_at", "status", "caller", "language",
                    "reason", "agent", "updated_at", "data")
JSON_COLUMNS = {"data", "said"}


def _insert(table: str, columns: tuple[str, ...], key: str) -> str:
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT ({key}) DO NOTHING"


_END_INSERT = ("call_id", "started_at", *END_COLUMNS)
SQL = {
    "call": (_insert("calls", CALL_COLUMNS, "call_id"), CALL_COLUMNS),
    "turn": (_insert("turns", TURN_COLUMNS, "call_id, idx"), TURN_COLUMNS),
    "event": (_insert("events", EVENT_COLUMNS, "call_id, seq"), EVENT_COLUMNS),
    # the end of a call completes its row; if its start never arrived, it makes the row
    "end": (f"INSERT INTO calls ({', '.join(_END_INSERT)}) VALUES ({', '.join('?' for _ in _END_INSERT)}) "
            f"ON CONFLICT (call_id) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in END_COLUMNS), _END_INSERT),
    # the agent console's disposition of a call (ivr/web/console.py): the agent's latest word on it
    "disposition": (f"INSERT INTO dispositions ({', '.join(DISPOSITION_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in DISPOSITION_COLUMNS)}) "
                    "ON CONFLICT (call_id, agent) DO UPDATE SET "
                    + ", ".join(f"{c} = excluded.{c}" for c in ("disposition", "notes", "at_s", "data")),
                    DISPOSITION_COLUMNS),
    # a callback task (ivr/agents/callbacks.py): its latest state by id (a write that arrives late, e.g.
    # from the spool, does not undo a newer change another node made in the shared table)
    "callback": (f"INSERT INTO callbacks ({', '.join(CALLBACK_COLUMNS)}) "
                 f"VALUES ({', '.join('?' for _ in CALLBACK_COLUMNS)}) ON CONFLICT (callback_id) DO UPDATE SET "
                 + ", ".join(f"{c} = excluded.{c}" for c in ("status", "agent", "updated_at"))
                 + " WHERE callbacks.updated_at IS NULL OR callbacks.updated_at <= excluded.updated_at",
                 CALLBACK_COLUMNS),
}


def params(op: dict) -> tuple[str, tuple]:
    """The SQL and parameters of one operation."""
    sql, columns = SQL[op["op"]]
    row = op["row"]
    values = []
    for column in columns:
        value = row.get(column)
        if column in JSON_COLUMNS and value is not None:
            value = json.dumps(value, ensure_ascii=False, default=str)
        elif isinstance(value, bool):
            value = int(value)
        values.append(value)
    return sql, tuple(values)


def _runs(ops: list[dict]) -> list[tuple[str, list[tuple]]]:
    """Consecutive operations of the same kind, grouped, order kept."""
    runs: list[tuple[str, list[tuple]]] = []
    for op in ops:
        sql, args = params(op)
        if runs and runs[-1][0] == sql:
            runs[-1][1].append(args)
        else:
            runs.append((sql, [args]))
    return runs


class Backend:
    name = "?"
    placeholder = "?"

    def open(self) -> None: ...
    def close(self) -> None: ...

    def write(self, ops: list[dict]) -> None:
        """All the operations in one transaction: all written or none."""
        raise NotImplementedError

    def fetch(self, sql: str, args: tuple = ()) -> list[dict]:
        raise NotImplementedError

    def purge(self, before_at_s: float) -> int:
        """Delete the calls that started before `before_at_s`, with their turns and events."""
        raise NotImplementedError

    @staticmethod
    def down(exc: BaseException) -> bool:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)


PURGE = ["DELETE FROM turns WHERE call_id IN (SELECT call_id FROM calls WHERE started_at < ?)",
         "DELETE FROM events WHERE call_id IN (SELECT call_id FROM calls WHERE started_at < ?)",
         "DELETE FROM dispositions WHERE call_id IN (SELECT call_id FROM calls WHERE started_at < ?)",
         "DELETE FROM calls WHERE started_at < ?",
         "DELETE FROM text_vectors WHERE created_at < ?"]   # the report's cached utterance vectors


class SqliteBackend(Backend):
    """One file, WAL journal (readers never block the writer), synchronous=NORMAL: a committed
    turn survives the process crashing; only a power cut may lose the last commits."""

    name = "sqlite"

    def __init__(self, path: Path, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self.conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout_s)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def open(self) -> None:
        """Connect and migrate; a file that is not a database or cannot be written is a clear
        error now, not a surprise at the first call."""
        where = self.path
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"records database: cannot create the folder {where.parent}: {exc.strerror}",
                            "create it, or set records.database to a writable place") from exc
        try:
            self.conn = self._connect()
            self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("ROLLBACK")
            migrate(self.conn, self)
        except sqlite3.Error as exc:
            self.close()
            text = str(exc)
            if "readonly" in text or "unable to open" in text:
                raise UserError(f"records database {where} cannot be written: {text}",
                                f"make the file and its folder writable by this user (chown/chmod {where} "
                                f"and {where.parent}), or set records.database to another path") from exc
            if "not a database" in text or "malformed" in text or "corrupt" in text:
                raise UserError(f"records database {where} is damaged: {text}",
                                f"move it aside (mv {where} {where}.broken; also its -wal/-shm files) and start "
                                f"again: a new, empty database is made; try `sqlite3 {where}.broken .recover` "
                                "to salvage its rows") from exc
            raise UserError(f"records database {where}: {text}",
                            "check the path in records.database and the disk (space, permissions)") from exc

    def reconnect(self) -> None:
        self.close()
        self.conn = self._connect()
        migrate(self.conn, self)     # a file replaced while away gets the tables again

    def close(self) -> None:
        for conn in (self.conn, self._reader):
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
        self.conn = self._reader = None

    def write(self, ops: list[dict]) -> None:
        if self.conn is None:
            self.reconnect()
        conn = self.conn
        conn.execute("BEGIN")
        try:
            for sql, rows in _runs(ops):
                conn.executemany(sql, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    def fetch(self, sql: str, args: tuple = ()) -> list[dict]:
        with self._read_lock:
            if self._reader is None:
                self._reader = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0)
                self._reader.row_factory = sqlite3.Row
            return [dict(row) for row in self._reader.execute(sql, args).fetchall()]

    def purge(self, before_at_s: float) -> int:
        conn = self.conn or self._connect()
        conn.execute("BEGIN")
        try:
            count = conn.execute("SELECT count(*) FROM calls WHERE started_at < ?", (before_at_s,)).fetchone()[0]
            for sql in PURGE:
                conn.execute(sql, (before_at_s,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return count

    @staticmethod
    def down(exc: BaseException) -> bool:
        # OperationalError: read-only, disk full, locked, cannot open; a bare DatabaseError:
        # "file is not a database", "database disk image is malformed". Integrity/programming
        # errors are the operation's fault, not an outage.
        return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError


class PostgresBackend(Backend):
    """psycopg 3 (libpq): the server's own durability; several service nodes share one
    database. Migrations take an advisory lock so nodes starting together migrate once."""

    name = "postgresql"
    placeholder = "%s"

    def __init__(self, url: str, connect_timeout_s: int = 5) -> None:
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self.conn = None
        self._reader = None
        self._read_lock = threading.Lock()

    def _connect(self):
        import psycopg

        return psycopg.connect(self.url, connect_timeout=self.connect_timeout_s, application_name="ivr",
                               autocommit=True)

    def open(self) -> None:
        import psycopg

        try:
            self.conn = self._connect()
            migrate(self.conn, self)
        except psycopg.Error as exc:
            self.close()
            raise UserError(f"records database {redact_url(self.url)}: {str(exc).strip()}",
                            "is PostgreSQL running and reachable, do the user, password (PGPASSWORD or "
                            "~/.pgpass) and database exist? Or use records.database: sqlite:///PATH") from exc

    def reconnect(self) -> None:
        self.close()
        self.conn = self._connect()

    def close(self) -> None:
        for conn in (self.conn, self._reader):
            if conn is not None:
                with contextlib.suppress(Exception):   # a dead connection may fail to close: gone anyway
                    conn.close()
        self.conn = self._reader = None

    def write(self, ops: list[dict]) -> None:
        if self.conn is None or self.conn.closed:
            self.reconnect()
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                for sql, rows in _runs(ops):     # executemany pipelines: one round trip per run
                    cur.executemany(self._sql(sql), rows)
        except BaseException:
            if self.conn is not None and self.conn.broken:
                self.close()
            raise

    def fetch(self, sql: str, args: tuple = ()) -> list[dict]:
        from psycopg.rows import dict_row

        with self._read_lock:
            if self._reader is None or self._reader.closed:
                self._reader = self._connect()
            try:
                with self._reader.cursor(row_factory=dict_row) as cur:
                    cur.execute(self._sql(sql), args)
                    return list(cur.fetchall())
            except Exception:
                if self._reader.broken:       # server gone: reconnect at the next query
                    self._reader = None
                raise

    def purge(self, before_at_s: float) -> int:
        if self.conn is None or self.conn.closed:
            self.reconnect()
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM calls WHERE started_at < %s", (before_at_s,))
            count = cur.fetchone()[0]
            for sql in PURGE:
                cur.execute(self._sql(sql), (before_at_s,))
        return count

    @staticmethod
    def down(exc: BaseException) -> bool:
        import psycopg

        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


SECRET_PARAMS = ("password", "sslpassword")     # libpq parameters a URL's query may carry


def redact_url(url: str) -> str:
    """postgresql://user:secret@host/db -> postgresql://user:***@host/db (for messages); a password
    given as ?password=... is hidden too."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<malformed database URL>"
    netloc, query = parts.netloc, parts.query
    if password:
        netloc = netloc.replace(":" + password + "@", ":***@", 1)
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(k.lower() in SECRET_PARAMS for k, _ in pairs):
        query = urlencode([(k, "***" if k.lower() in SECRET_PARAMS else v) for k, v in pairs], safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))
