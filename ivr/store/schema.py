"""The records schema and its migrations, one list for SQLite and PostgreSQL.

Migrations are numbered and applied in order at start-up, each in its own transaction, and
`schema_version` remembers which ran. Only types and statements both databases read the
same way are used (TEXT, BIGINT, DOUBLE PRECISION, INSERT ... ON CONFLICT), so one list
serves both. Never edit a migration that has shipped: append a new one.

Tables:
- `calls`: one row per call, written at its start and completed at its end;
- `turns`: one row per turn (caller input, what it meant, the reply), keyed (call_id, idx);
- `events`: the other call events (prompts, keys, transfers, ...), keyed (call_id, seq);
- `callbacks`: callback tasks from the queues (`ivr/agents/callbacks.py`), latest state by id;
- `dispositions`: what the agent recorded after a call (the console), keyed (call_id, agent);
- `bridge_transfers`: the transfer a flow asked for on a bridge call, by the peer's id (any node answers);
- `agent_state`, `queue_calls`, `agent_nodes`: agents' statuses, waiting callers and the nodes'
  heartbeats, shared by several nodes on PostgreSQL (`ivr/agents/shared.py`; unused with SQLite);
- `flow_versions`, `flow_version_files`, `flow_state` (PostgreSQL only): published flow versions for
  several nodes (`ivr/flow/versions_pg.py`): manifests, file bytes with their SHA-256, aliases/canaries.
JSON columns (`data`, `said`, ...) hold JSON text in both databases.
"""

import logging
import time

log = logging.getLogger("ivr.store")

# A statement is SQL both databases read, or {"sqlite": ..., "postgresql": ...} where they differ.
MIGRATIONS: list[tuple[int, str, list[str | dict[str, str]]]] = [
    (1, "calls, turns and events with the indexes reports need", [
        """CREATE TABLE calls (
            call_id TEXT PRIMARY KEY,
            transport TEXT, transport_id TEXT, caller TEXT, called TEXT, remote TEXT,
            flow TEXT, flow_version TEXT, language TEXT,
            started_at DOUBLE PRECISION NOT NULL, ended_at DOUBLE PRECISION,
            outcome TEXT, reason TEXT, target TEXT, end_step TEXT, why TEXT,
            duration_ms BIGINT, turns INTEGER, transcripts INTEGER NOT NULL DEFAULT 1,
            data TEXT)""",
        "CREATE INDEX calls_started_at ON calls (started_at)",
        "CREATE INDEX calls_flow ON calls (flow, started_at)",
        "CREATE INDEX calls_caller ON calls (caller, started_at)",
        "CREATE INDEX calls_outcome ON calls (outcome, started_at)",
        """CREATE TABLE turns (
            call_id TEXT NOT NULL, idx INTEGER NOT NULL,
            kind TEXT, step TEXT, heard TEXT, confidence DOUBLE PRECISION,
            choice TEXT, score DOUBLE PRECISION, via TEXT, said TEXT, next_step TEXT,
            endpoint TEXT, barge_in INTEGER, t_ms BIGINT, latency_ms DOUBLE PRECISION,
            at_s DOUBLE PRECISION, data TEXT,
            PRIMARY KEY (call_id, idx))""",
        "CREATE INDEX turns_step ON turns (step)",
        """CREATE TABLE events (
            call_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
            t_ms BIGINT, at_s DOUBLE PRECISION, data TEXT,
            PRIMARY KEY (call_id, seq))""",
        "CREATE INDEX events_kind ON events (kind, at_s)",
    ]),
    (2, "utterance vectors cached for the report's topics (ivr/report/topics.py)", [
        """CREATE TABLE text_vectors (
            text_hash TEXT PRIMARY KEY, model TEXT NOT NULL, vector TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL)""",
    ]),
    (3, "a turn's sentiment as a column; covering indexes for the report's queries", [
        "ALTER TABLE turns ADD COLUMN sentiment DOUBLE PRECISION",
        {"sqlite": "UPDATE turns SET sentiment = json_extract(data, '$.sentiment') WHERE data IS NOT NULL",
         "postgresql": "UPDATE turns SET sentiment = CAST(CAST(data AS jsonb) ->> 'sentiment' AS DOUBLE PRECISION) "
                       "WHERE data IS NOT NULL"},
        "CREATE INDEX calls_report ON calls (started_at, outcome, duration_ms, called, caller, end_step, reason, "
                                            "call_id)",
        "CREATE INDEX turns_report ON turns (at_s, kind, via, choice, sentiment, call_id)",
        "CREATE INDEX turns_unmatched ON turns (at_s, heard) WHERE kind = 'speech' AND choice IS NULL",
    ]),
    (4, "callback tasks asked for in a queue (ivr/agents/callbacks.py)", [
        """CREATE TABLE callbacks (
            callback_id TEXT PRIMARY KEY, call_id TEXT, number TEXT NOT NULL, queue TEXT,
            created_at DOUBLE PRECISION NOT NULL, status TEXT NOT NULL, caller TEXT, language TEXT,
            reason TEXT, agent TEXT, updated_at DOUBLE PRECISION, data TEXT)""",
        "CREATE INDEX callbacks_status ON callbacks (status, created_at)",
    ]),
    (5, "the agent console's dispositions and notes, one row per call and agent (ivr/web/console.py)", [
        """CREATE TABLE dispositions (
            call_id TEXT NOT NULL, agent TEXT NOT NULL, disposition TEXT NOT NULL, notes TEXT,
            at_s DOUBLE PRECISION NOT NULL, data TEXT,
            PRIMARY KEY (call_id, agent))""",
        "CREATE INDEX dispositions_at ON dispositions (at_s, disposition)",
    ]),
    (6, "bridge transfers, so a webhook that reaches another node finds them (ivr/service/transfers.py)", [
        """CREATE TABLE bridge_transfers (
            peer_id TEXT PRIMARY KEY, call_id TEXT NOT NULL, target TEXT, reason TEXT, context TEXT,
            at_s DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX bridge_transfers_at ON bridge_transfers (at_s)",
    ]),
    (7, "agents, waiting callers and live nodes shared by several nodes (ivr/agents/shared.py)", [
        """CREATE TABLE agent_state (
            name TEXT PRIMARY KEY, address TEXT NOT NULL, role TEXT, status TEXT NOT NULL,
            since_s DOUBLE PRECISION NOT NULL, idle_since_s DOUBLE PRECISION NOT NULL, call_id TEXT, node TEXT,
            misses INTEGER NOT NULL DEFAULT 0, calls INTEGER NOT NULL DEFAULT 0, after_call TEXT,
            wrap_until_s DOUBLE PRECISION NOT NULL DEFAULT 0)""",
        "CREATE INDEX agent_state_free ON agent_state (status, idle_since_s)",
        """CREATE TABLE queue_calls (
            call_id TEXT PRIMARY KEY, queue TEXT NOT NULL, node TEXT NOT NULL,
            joined_at DOUBLE PRECISION NOT NULL, state TEXT NOT NULL, agent TEXT, info TEXT)""",
        "CREATE INDEX queue_calls_order ON queue_calls (state, joined_at)",
        """CREATE TABLE agent_nodes (
            node TEXT PRIMARY KEY, seen_at DOUBLE PRECISION NOT NULL, started_at DOUBLE PRECISION)""",
    ]),
    (8, "published flow versions, their files and per-flow aliases/canaries (ivr/flow/versions_pg.py)", [
        # PostgreSQL only (a statement without a "sqlite" entry is skipped there): versions are shared
        # by several nodes; one node keeps them in a folder (flows.versions_dir)
        {"postgresql": """CREATE TABLE flow_versions (
            name TEXT NOT NULL, version INTEGER NOT NULL, entry TEXT NOT NULL, hash TEXT NOT NULL,
            author TEXT, created TEXT, message TEXT, files TEXT NOT NULL,
            PRIMARY KEY (name, version))"""},
        {"postgresql": """CREATE TABLE flow_version_files (
            name TEXT NOT NULL, version INTEGER NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL,
            content BYTEA NOT NULL, PRIMARY KEY (name, version, path))"""},
        {"postgresql": """CREATE TABLE flow_state (
            name TEXT PRIMARY KEY, state TEXT NOT NULL, revision BIGINT NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL)"""},
        # a published version is never changed: the database refuses UPDATE and DELETE of it
        {"postgresql": "CREATE FUNCTION ivr_flow_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS "
                       "$$ BEGIN RAISE EXCEPTION 'published flow versions are immutable'; END $$"},
        {"postgresql": "CREATE TRIGGER flow_versions_immutable BEFORE UPDATE OR DELETE ON flow_versions "
                       "FOR EACH ROW EXECUTE FUNCTION ivr_flow_versions_immutable()"},
        {"postgresql": "CREATE TRIGGER flow_version_files_immutable BEFORE UPDATE OR DELETE ON flow_version_files "
                       "FOR EACH ROW EXECUTE FUNCTION ivr_flow_versions_immutable()"},
    ]),
]

LATEST = max(number for number, _, _ in MIGRATIONS)   # numbers are assigned; the list may end on a lower one

VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, " \
                "applied_at DOUBLE PRECISION NOT NULL, note TEXT)"


def migrate(conn, backend) -> list[int]:
    """Apply the migrations not yet in `schema_version`, in order, each in a transaction."""
    sql = backend._sql
    applied: list[int] = []
    if backend.name == "sqlite":
        conn.execute(VERSION_TABLE)
        done = {row[0] for row in conn.execute("SELECT version FROM schema_version")}
        for number, note, statements in _in_order():
            if number in done:
                continue
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in statements:
                    if _dialect(statement, backend):
                        conn.execute(_dialect(statement, backend))
                conn.execute("INSERT INTO schema_version VALUES (?, ?, ?)", (number, time.time(), note))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            applied.append(number)
    else:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(4242001)")   # one node migrates, the others wait
            cur.execute(VERSION_TABLE)
            cur.execute("SELECT version FROM schema_version")
            done = {row[0] for row in cur.fetchall()}
            for number, note, statements in _in_order():
                if number in done:
                    continue
                for statement in statements:
                    if _dialect(statement, backend):
                        cur.execute(_dialect(statement, backend))
                cur.execute(sql("INSERT INTO schema_version VALUES (?, ?, ?)"), (number, time.time(), note))
                applied.append(number)
    if applied:
        log.info("records database: applied migrations %s", applied)
    return applied


def _in_order() -> list:
    """By number (the list is in the order migrations were added, which may differ)."""
    return sorted(MIGRATIONS, key=lambda m: m[0])


def _dialect(statement: str | dict[str, str], backend) -> str:
    """The statement for this database; "" (nothing to run) when a dict has no entry for it. A key
    that names no database (a typo) is an error, not a statement silently skipped everywhere."""
    if not isinstance(statement, dict):
        return statement
    unknown = set(statement) - {"sqlite", "postgresql"}
    if unknown:
        raise ValueError(f"migration statement for unknown database(s) {sorted(unknown)}: sqlite or postgresql")
    return statement.get(backend.name, "")
