"""End to end: card numbers and a PIN through `ivr serve`, then every byte the service wrote.

`ivr serve` runs in-process with the Twilio Media Streams bridge and the HTTP listener on
127.0.0.1. The flow (tests/data/privacy/card_flow.yaml) has sensitive card and PIN slots with
read-back confirmations, an HTTP step putting both in a URL to a dead port, and a transfer
whose reason and context template them. One caller keys a card by DTMF (bridge dtmf events);
another says one (piper speech through the real recognizer) and keys the PIN in-band.

Then every output is searched for the card numbers and the PIN, in any spelling: all files
under the test's folder (JSON records and their partial event logs, the SQLite records
database with its WAL and spool, the log file, the prompt cache), plus what the HTTP listener
answers (/metrics, /health, the bridge transfer lookups) and what the service keeps for the
bridge. A new output is one more entry in `outputs()`; run with -s to see the list.
"""

import asyncio
import logging
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ivr.clients.twilio_ws import run_ws_call
from ivr.service.config import Listener, ServeConfig
from ivr.service.service import Service

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
FLOW = ROOT / "tests" / "data" / "privacy" / "card_flow.yaml"
KEYED = "5425233430109903"       # Luhn-valid, keyed by DTMF
SPOKEN = "4539148803436467"      # Luhn-valid, said
PIN = "9876"
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def spellings(digits: str, shown_tail: int) -> list[re.Pattern]:
    """The digits before the last `shown_tail` (a mask may show those), in any spelling:
    contiguous, grouped with spaces/dashes/commas/dots, or as digit words."""
    head = digits[: len(digits) - shown_tail]
    sep = r"[\s,.\-/]{0,3}"
    numerals = sep.join(head) + ("" if shown_tail else r"(?!\d)")   # a PIN: not inside a longer number
    words = sep.join(WORDS[int(d)] for d in head)
    return [re.compile(rf"(?<![\d.]){numerals}", re.I), re.compile(words, re.I)]


FORBIDDEN = [*spellings(KEYED, 4), *spellings(SPOKEN, 4), *spellings(PIN, 0)]


def leaks(name: str, data: bytes) -> list[str]:
    text = data.decode("latin-1")    # SQLite pages, WAV headers: bytes as they are
    return [f"{name}: {m.group()!r} at {m.start()}" for p in FORBIDDEN for m in p.finditer(text)]


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read()
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code} ".encode() + err.read()


def outputs(tmp_path: Path, answers: dict[str, bytes], service: Service) -> dict[str, bytes]:
    """Everything the service wrote or answered."""
    found = {str(p.relative_to(tmp_path)): p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    found.update({f"file names under {tmp_path}": "\n".join(found).encode()})
    found.update(answers)
    found["service.transfers (what the bridge is told)"] = repr(service.transfers).encode()
    return found


def test_card_and_pin_keyed_and_said_through_the_bridge_leave_no_trace(tmp_path, line_audio, monkeypatch):
    monkeypatch.setenv("IVR_CACHE_DIR", str(tmp_path / "cache"))      # the prompt cache is searched too
    cfg = ServeConfig(listeners={"ws": Listener("127.0.0.1", 0), "http": Listener("127.0.0.1", 0)},
                      default_flow=FLOW, asr="whisper", max_calls=2, records_dir=tmp_path / "records",
                      reload=False, shutdown_grace_ms=3000)
    keyed_dtmf = [(1500 + 150 * i, k) for i, k in enumerate(KEYED + "#")] + [(5500, "1")] + \
        [(7000 + 150 * i, k) for i, k in enumerate(PIN)] + [(8500, "1")]
    keyed_audio = line_audio([("pause", 16000)])
    said = ", ".join(" ".join(WORDS[int(d)] for d in SPOKEN[i:i + 4]) for i in range(0, 16, 4))
    spoken_audio = line_audio([("pause", 4500), ("say", said), ("pause", 3500), ("say", "yes"), ("pause", 3000),
                               ("keys", PIN), ("pause", 2500), ("keys", "1"), ("pause", 7000)])
    (tmp_path / "logs").mkdir()
    log_file = logging.FileHandler(tmp_path / "logs" / "service.log")
    log_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(call_id)s] %(message)s",
                                            defaults={"call_id": "-"}))
    ivr_log = logging.getLogger("ivr")
    old_level = ivr_log.level
    ivr_log.addHandler(log_file)
    ivr_log.setLevel(logging.DEBUG)

    async def go():
        service = Service(cfg, {"PAY_API": f"http://127.0.0.1:{dead_port()}"})
        bound = await service.start()
        host, port = bound["ws"]
        hhost, hport = service.listeners["http"].address
        try:
            keyed, spoken = await asyncio.gather(
                run_ws_call(f"ws://{host}:{port}/media", keyed_audio, dtmf=keyed_dtmf, call_sid="CAkeyed",
                            custom={"from": "+15550100"}, tail_ms=1000),
                run_ws_call(f"ws://{host}:{port}/media", spoken_audio, call_sid="CAspoken", tail_ms=1000))
            answers = {}
            for path in ("/metrics", "/health", "/calls/CAkeyed/transfer", "/calls/CAspoken/transfer"):
                answers[f"GET {path}"] = await asyncio.to_thread(get, f"http://{hhost}:{hport}{path}")
        finally:
            await service.stop(grace_ms=2000)
        return keyed, spoken, answers, service

    try:
        keyed, spoken, answers, service = asyncio.run(go())
    finally:
        ivr_log.removeHandler(log_file)
        ivr_log.setLevel(old_level)
        log_file.close()

    # The calls did what the test means: both cards and the PIN were taken, confirmed and used.
    records = sorted((tmp_path / "records").rglob("*.json"))
    assert len(records) == 2, records
    text = {p: p.read_text() for p in records}
    for record in text.values():
        assert '"to_agent"' in record and '"charge"' in record, record
        assert "payment with card ************" in record and "and PIN ****" in record
    assert any("************9903" in t for t in text.values()) and any("************6467" in t for t in text.values())
    assert "transfer" in (keyed.close_reason or "") and "transfer" in (spoken.close_reason or "")
    log_text = (tmp_path / "logs" / "service.log").read_text()
    assert "/cards/************" in log_text and "/pin/**** -> connect" in log_text    # the HTTP failure line

    searched = outputs(tmp_path, answers, service)
    print("searched:", *(f"{name} ({len(data)} bytes)" for name, data in searched.items()), sep="\n  ")
    assert any(name.startswith("records/") for name in searched) and "logs/service.log" in searched
    database = b"".join(data for name, data in searched.items() if ".sqlite3" in name)
    if database:    # the records database holds the calls' turns, masked (so searching it means something)
        assert b"************9903" in database and b"************6467" in database
    if answers["GET /metrics"].startswith(b"#"):
        assert b"ivr_" in answers["GET /metrics"]
    found = [hit for name, data in searched.items() for hit in leaks(name, data)]
    assert found == []
