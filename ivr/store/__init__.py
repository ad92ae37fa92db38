"""Call records in a database: SQLite by default, PostgreSQL for several nodes.

    store = open_store("sqlite:///records/ivr.sqlite3", spool_dir=Path("records/spool")).start()
    store.begin_call({...}); store.add_turn({...}); store.add_event(...); store.end_call({...})
    queries.calls(store, since=..., flow=...)

The service fills it from the call-event hub (`ivr.store.subscriber.attach`). See
`schema.py` for the tables, `store.py` for the writer thread and the spool.
"""

from pathlib import Path

from ivr.errors import UserError
from ivr.store.backends import Backend, PostgresBackend, SqliteBackend
from ivr.store.store import RecordStore, TranscriptPolicy

__all__ = ["Backend", "PostgresBackend", "RecordStore", "SqliteBackend", "TranscriptPolicy", "backend_for",
           "open_store"]


def backend_for(url: str, base: Path | None = None) -> Backend:
    """`sqlite:///relative/path`, `sqlite:////absolute/path` (SQLAlchemy's spelling), a bare
    path, or `postgresql://user@host:port/db` (libpq's URL; the password from PGPASSWORD or
    ~/.pgpass rather than in the URL)."""
    text = str(url).strip()
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresBackend(text)
    if text.startswith("sqlite://"):
        text = text[len("sqlite://"):]
        if not text.startswith("/") or text == "/":
            raise UserError(f"records database '{url}' has no path",
                            "write sqlite:///records/ivr.sqlite3 (relative) or sqlite:////var/lib/ivr/ivr.sqlite3")
        text = text[1:]
    elif "://" in text:
        raise UserError(f"records database '{url}': unknown kind",
                        "use sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
    path = Path(text)
    if not path.is_absolute() and base is not None:
        path = base / path
    return SqliteBackend(path)


def open_store(url: str, spool_dir: Path, base: Path | None = None, **options) -> RecordStore:
    """A store for the database at `url` (not started: call `.start()`)."""
    return RecordStore(backend_for(url, base), spool_dir, **options)
