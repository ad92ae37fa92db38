"""JSON call records as a hub subscriber: one record per call from its events, written in the
subscriber's thread; a crash mid-call keeps the turns done (recovered at the next start)."""

import asyncio
import json
import threading

from ivr.callevents import CallBegan, CallEnded, KeysPressed, TurnEnded
from ivr.records import JsonRecords
from ivr.service.hub import Hub

AT_S = 1_795_000_000.0   # 2026-11-18 UTC


def began(call_id: str) -> CallBegan:
    return CallBegan(call_id=call_id, at_s=AT_S, transport="ws", transport_id="CAsame", caller="+1555",
                     flow="demo", flow_version="abc123def456", language="en-US", asr="whisper", tts="piper")


def turn(call_id: str, index: int) -> TurnEnded:
    return TurnEnded(call_id=call_id, t_ms=1000 * index, at_s=AT_S + index, index=index,
                     kind="start" if index == 0 else "speech", step=None if index == 0 else "main",
                     heard="" if index == 0 else "opening hours", said=(f"reply {index}",))


def test_interleaved_calls_each_get_their_record_written_off_the_event_loop(tmp_path):
    writer_threads = set()
    records = JsonRecords(tmp_path)

    def recording(event):
        writer_threads.add(threading.current_thread().name)
        records(event)

    async def main():
        hub = Hub()
        hub.subscribe(recording, name="records-json", thread=True)
        for call_id in ("a1", "b2"):
            hub.publish(began(call_id))
        for index in range(3):
            for call_id in ("a1", "b2"):
                hub.publish(turn(call_id, index))
        hub.publish(KeysPressed(call_id="a1", keys="0"))
        hub.publish(CallEnded(call_id="a1", t_ms=5000, at_s=AT_S + 5, kind="transfer", target="sip:agents@127.0.0.1",
                              path=("greet", "main"), stats={"frames": 250}))
        hub.publish(CallEnded(call_id="b2", t_ms=6000, at_s=AT_S + 6, kind="protocol_error", reason="oversized",
                              why="WebSocket message over 65536 bytes (closed with 1009)"))
        return await hub.close(5.0)

    stats = asyncio.run(main())
    assert stats["subscribers"]["records-json"]["errors"] == 0
    assert writer_threads == {"hub:records-json"}
    a = json.loads((tmp_path / "2026-11-18" / "a1.json").read_text())
    b = json.loads((tmp_path / "2026-11-18" / "b2.json").read_text())
    assert [t["index"] for t in a["turns"]] == [0, 1, 2] and a["turns"][1]["said"] == ["reply 1"]
    assert a["outcome"]["kind"] == "transfer" and a["path"] == ["greet", "main"] and a["stats"]["frames"] == 250
    assert a["call"]["transport_id"] == "CAsame" and a["call"]["flow_version"] == "abc123def456"
    assert b["outcome"] == {"kind": "protocol_error", "target": None, "reason": "oversized", "step": None,
                            "t_ms": 6000, "context": {}, "why": "WebSocket message over 65536 bytes (closed with 1009)"}
    assert not list((tmp_path / ".partial").glob("*.jsonl"))     # done calls leave no event log behind


def test_a_crash_mid_call_keeps_the_turns_done(tmp_path):
    records = JsonRecords(tmp_path)
    for event in (began("c3"), turn("c3", 0), turn("c3", 1)):
        records(event)
    # The process dies here (no CallEnded, no close). The JSONL is on disk, line by line;
    # add the half line a kill in the middle of a write would leave.
    partial = tmp_path / ".partial" / "c3.jsonl"
    with open(partial, "a", encoding="utf-8") as f:
        f.write('{"type": "TurnEnded", "call_id": "c3", "ind')
    assert JsonRecords(tmp_path).recover() == 1
    rec = json.loads((tmp_path / "2026-11-18" / "c3.json").read_text())
    assert [t["heard"] for t in rec["turns"]] == ["", "opening hours"]
    assert rec["outcome"]["kind"] == "interrupted" and rec["call"]["ended_at"] is None
    assert not partial.exists()
    assert JsonRecords(tmp_path).recover() == 0


def test_an_unwritable_records_dir_keeps_the_event_log(tmp_path):
    records = JsonRecords(tmp_path)
    (tmp_path / "2026-11-18").write_text("a file where the day's folder should be")
    for event in (began("d4"), turn("d4", 0), CallEnded(call_id="d4", at_s=AT_S + 1, kind="hangup")):
        records(event)
    assert records.failed == 1 and records.written == 0
    lines = (tmp_path / ".partial" / "d4.jsonl").read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["CallBegan", "TurnEnded", "CallEnded"]
