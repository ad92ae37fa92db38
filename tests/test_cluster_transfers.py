"""A bridge transfer noted on one node is answered by another (issue 13): both share PostgreSQL.

Two HTTP listeners, as two nodes would run them, each with its own records store on one
PostgreSQL database; the flow's transfer is noted on node A (as the Twilio/AudioSocket bridge
does), then Twilio's <Connect action> webhook and Asterisk's lookup reach node B.
"""

import asyncio
import json
import urllib.parse
import urllib.request

import pytest

from ivr.service.transfers import TransferBook
from ivr.store import open_store
from ivr.transports.base import CallInfo
from tests.pg_fixture import pg_server


@pytest.fixture(scope="module")
def pg():
    yield from pg_server()


class _Node:
    """The parts of a Service the HTTP listener's transfer routes use."""

    def __init__(self, store) -> None:
        from ivr.service.config import ServeConfig

        self.cfg = ServeConfig()
        self.store = store
        self.transfers = TransferBook()
        self.calls: dict = {}

    def health(self) -> dict:
        return {"ok": True}


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


def _post(url: str, form: dict) -> str:
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=5) as resp:
        return resp.read().decode()


def test_a_transfer_noted_on_one_node_is_answered_by_another(pg, tmp_path):
    from ivr.service.listeners import HealthServer

    url = pg.new_database()
    stores = [open_store(url, tmp_path / f"spool{k}").start() for k in (1, 2)]
    node_a, node_b = _Node(stores[0]), _Node(stores[1])

    async def run() -> tuple[str, str, str, str]:
        server = HealthServer(node_b, "127.0.0.1", 0)
        host, port = await server.start()
        try:
            info = CallInfo(call_id="c-1", kind="ws", transport_id="CA0123456789abcdef", caller="+15550100")
            node_a.transfers.note(info.peer_id, {"target": "sip:agents@127.0.0.1:5080", "reason": "agent",
                                                 "context": {"order": "A-7"}, "call_id": info.call_id}, node_a.store)
            base = f"http://{host}:{port}"
            twiml = await asyncio.to_thread(_post, f"{base}/twilio/after-stream", {"CallSid": info.peer_id})
            text = await asyncio.to_thread(_get, f"{base}/calls/{info.peer_id}/transfer")
            unknown = await asyncio.to_thread(_get, f"{base}/calls/nobody/transfer")
            hangup = await asyncio.to_thread(_post, f"{base}/twilio/after-stream", {"CallSid": "CAnobody"})
            return twiml, text, unknown, hangup
        finally:
            await server.stop()

    try:
        twiml, text, unknown, hangup = asyncio.run(run())
    finally:
        for store in stores:
            store.close()
    assert "<Dial><Sip>sip:agents@127.0.0.1:5080</Sip></Dial>" in twiml
    assert text == "sip:agents@127.0.0.1:5080"
    assert unknown == ""                       # no transfer: empty (Asterisk's CURL then hangs up)
    assert "<Hangup/>" in hangup
    rows = stores[1].backend.fetch("SELECT call_id, context FROM bridge_transfers")
    assert rows == [{"call_id": "c-1", "context": json.dumps({"order": "A-7"})}]
