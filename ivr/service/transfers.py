"""Bridge transfers, kept where every node can find them.

The bridges that cannot transfer a call themselves (Twilio Media Streams, AudioSocket) hand
the flow's decision back; the telephony side then asks the HTTP listener for it by the id it
knows (callSid, AudioSocket UUID): `GET /calls/ID/transfer`, `POST /twilio/after-stream`.
Behind a load balancer that webhook may reach another node than the one that ran the call, so
with a PostgreSQL records database each transfer is also written to its `bridge_transfers`
table (migration 6, ivr/store/schema.py) and a node that does not know the id looks there,
waiting up to `wait_ms` for a write still on its way. With SQLite (one node) or no database,
the node's memory (the last 1000 transfers) is the whole book.
"""

import asyncio
import json
import logging
import time

log = logging.getLogger("ivr.serve")

UPSERT = ("INSERT INTO bridge_transfers (peer_id, call_id, target, reason, context, at_s) VALUES (?, ?, ?, ?, ?, ?) "
          "ON CONFLICT (peer_id) DO UPDATE SET call_id = excluded.call_id, target = excluded.target, "
          "reason = excluded.reason, context = excluded.context, at_s = excluded.at_s RETURNING peer_id")
SELECT = "SELECT call_id, target, reason, context FROM bridge_transfers WHERE peer_id = ?"


class TransferBook:
    def __init__(self, keep: int = 1000) -> None:
        self.keep = keep
        self.recent: dict[str, dict] = {}
        self._writes: set[asyncio.Task] = set()

    def __repr__(self) -> str:
        return f"TransferBook({self.recent!r})"

    def get(self, peer_id: str) -> dict | None:
        """This node's memory only (see `find` for the shared lookup)."""
        return self.recent.get(peer_id)

    @staticmethod
    def _shared(store) -> object | None:
        backend = getattr(store, "backend", None)
        return backend if getattr(backend, "name", "") == "postgresql" else None

    def note(self, peer_id: str, entry: dict, store=None) -> None:
        self.recent[peer_id] = entry
        for old in list(self.recent)[:-self.keep]:
            del self.recent[old]
        backend = self._shared(store)
        if backend is not None:
            task = asyncio.get_running_loop().create_task(asyncio.to_thread(self._write, backend, peer_id, entry))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    @staticmethod
    def _write(backend, peer_id: str, entry: dict) -> None:
        args = (peer_id, entry["call_id"], entry["target"], entry["reason"],
                json.dumps(entry.get("context") or {}, default=str), time.time())
        try:
            backend.fetch(UPSERT, args)
        except Exception as exc:   # the database away: this node still answers from memory
            log.warning("call %s: bridge transfer not shared with the other nodes (database: %s); only this "
                        "node can answer its webhook", entry["call_id"], str(exc).strip()[:200])

    async def find(self, peer_id: str, store=None, wait_ms: int = 1500) -> dict | None:
        found = self.recent.get(peer_id)
        backend = self._shared(store)
        if found is not None or backend is None or not peer_id:
            return found
        deadline = time.monotonic() + wait_ms / 1000
        while True:
            try:
                rows = await asyncio.to_thread(backend.fetch, SELECT, (peer_id,))
            except Exception as exc:
                log.warning("bridge transfer lookup for %s failed (database: %s)", peer_id, str(exc).strip()[:200])
                return None
            if rows:
                row = rows[0]
                return {"target": row["target"], "reason": row["reason"], "call_id": row["call_id"],
                        "context": json.loads(row["context"] or "{}")}
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.1)
