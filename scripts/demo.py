"""The demo: a synthesized caller phones the ACME retail hotline; replay it end to end.

Starts the demo order service (HTTP over SQLite, ivr.demo_backend) on a free loopback port,
renders a caller (piper voice, 8 kHz mu-law like a phone line) who asks where an order is,
says the order number, confirms it and says goodbye, then replays the call through
flows/retail/retail.yaml (in English) with the real recognizer and voice. The flow looks the caller
up by caller ID, fetches the order from the service and reads its status.

Writes build/demo/call.wav (the caller), build/demo/replay.wav (stereo: caller left,
machine right) and build/demo/trace.json.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ivr.callgen import render, write_mulaw_wav
from ivr.cli import main
from ivr.tts.piper import PiperTts

OUT = Path("build/demo")
FLOW = "flows/retail/retail.yaml"   # English and Mandarin: the demo call is routed to English
CALLER_ID = "+15550100"                   # Alice, in the demo service's customers
CALLER = [
    ("pause", 5500), ("say", "Where is my order?"),           # barges in on the menu
    ("pause", 4500), ("say", "four eight one five one six"),  # the order number
    ("pause", 4500), ("say", "yes"),                          # "That's 4 8 1 5 1 6. Is that right?"
    ("pause", 15000), ("say", "goodbye"),                     # after the status and "anything else?"
    ("pause", 4000),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_backend() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ivr.demo_backend", "--host", "127.0.0.1", "--port", str(port),
                             "--db", str(OUT / "orders.db")])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("demo: the order service did not start") from None
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("demo: the order service did not answer /health within 20 s")


def run() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    call = OUT / "call.wav"
    if not call.exists():
        write_mulaw_wav(call, render(CALLER, PiperTts()))
    backend, url = start_backend()
    os.environ["ORDERS_API"] = url
    try:
        return main(["replay", str(call), "--flow", FLOW, "--language", "en-US", "--caller", CALLER_ID,
                     "--time", "2026-11-24T10:00:00-05:00",
                     "--out", str(OUT / "replay.wav"), "--json", str(OUT / "trace.json")])
    finally:
        backend.terminate()
        backend.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(run())
