"""PostgreSQL connections that notice a dead peer, for the long-lived connections of several nodes
(the shared agent state, ivr/agents/shared.py; the flow versions store, ivr/flow/versions_pg.py).

- TCP keepalives and `tcp_user_timeout`: a server gone without a reset (a cut network, a machine
  powered off) is noticed in ~10 s, not after the kernel's retransmissions (~15 min), so a thread
  waiting on it (a claim, a flow poll) is freed and a stopping node can exit.
- `idle_in_transaction_session_timeout` (server side): a node whose network dies in the middle of
  a transaction does not keep its row locks or advisory lock on the server until the server's own
  keepalive gives up (hours): the server ends that session after 10 s and the others go on.
- `statement_timeout` when asked: nothing waits on a lock for ever.

The URL's own `options` (e.g. `?options=-c%20search_path%3Divr`) are kept and win over these, so
these connections see the same schema as the records store.
"""

TCP = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
       "tcp_user_timeout": 10_000}


def session_options(url: str, *, statement_timeout_ms: int | None = None, idle_in_transaction_ms: int = 10_000) -> str:
    """The `options` connection parameter: ours first, then the URL's own (later settings win)."""
    from psycopg.conninfo import conninfo_to_dict

    ours = [f"-c idle_in_transaction_session_timeout={int(idle_in_transaction_ms)}"]
    if statement_timeout_ms:
        ours.append(f"-c statement_timeout={int(statement_timeout_ms)}")
    theirs = str(conninfo_to_dict(url).get("options") or "").strip()
    return " ".join([*ours, theirs]).strip()


def connect(url: str, *, application_name: str, connect_timeout_s: int, statement_timeout_ms: int | None = None,
            **kwargs):
    """psycopg.connect with the settings above (kwargs: autocommit, row_factory, ...)."""
    import psycopg

    return psycopg.connect(url, connect_timeout=connect_timeout_s, application_name=application_name[:63],
                           options=session_options(url, statement_timeout_ms=statement_timeout_ms), **TCP, **kwargs)
