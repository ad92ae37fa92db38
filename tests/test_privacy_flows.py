"""Sensitive values never reach what `ivr test`, `ivr chat` and the agent see, nor a log line.

The flow (tests/data/privacy/card_flow.yaml) reads a sensitive card number and PIN back, puts
them in a URL (to a dead port) and templates them into the transfer's reason and context.
"""

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

from ivr.flow.http import HttpClient
from ivr.flow.loader import load_flow
from ivr.flow.textcall import TextCall

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "privacy"
CARD = "4111111111111111"
PIN = "9876"
# Every way the card or PIN could be written out; the masks keep only the card's last 4.
FORMS = (CARD, "4111 1111 1111 1111", "4 1 1 1 1 1 1 1", "411111", PIN, "9 8 7 6", "nine eight seven six")


def leaks(text: str) -> list[str]:
    return [form for form in FORMS if form in text]


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ivr(*args: str, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ivr", *args], input=stdin, capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, **(env or {})})


def test_ivr_test_failure_output_shows_no_card_or_pin():
    run = ivr("-v", "test", str(DATA / "card_test.yaml"))
    out = run.stdout + run.stderr
    assert run.returncode == 1 and "FAIL" in out, out          # the test fails on purpose
    assert "************1111" in out and "caller: my pin is ****" in out
    assert "step charge: GET http://pay.test/cards/************1111/pin/**** -> 503" in out   # the log line
    assert leaks(out) == [], out


def test_ivr_chat_output_and_the_http_failure_log_line_show_no_card_or_pin():
    script = f"{CARD}#\nyes\nmy pin is nine eight seven six\n/state\nyes\n"
    run = ivr("-v", "chat", str(DATA / "card_flow.yaml"), stdin=script,
              env={"PAY_API": f"http://127.0.0.1:{dead_port()}"})
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "You entered ****. Is that right?" in out and "transfer to sip:agents@127.0.0.1:5080" in out
    assert "/cards/************1111/pin/**** -> connect" in out       # the HTTP failure, logged redacted
    assert leaks(out) == [], out


def test_what_the_agent_sees_holds_no_sensitive_value():
    flow = load_flow(DATA / "card_flow.yaml")

    async def go():
        call = TextCall(flow, HttpClient(), env={"PAY_API": f"http://127.0.0.1:{dead_port()}"})
        try:
            await call.start()
            await call.press(CARD + "#")
            await call.say("yes")
            await call.say("my pin is 9876")
            return await call.say("yes")
        finally:
            await call.close()

    end = asyncio.run(go()).end
    assert end.reason == "payment with card ************1111 and PIN ****"
    assert end.context["card"] == "************1111" and end.context["pin"] == "****"
    assert end.context["note"] == "card ************1111"
    assert end.context["slots"] == {"card": "************1111", "pin": "****"}
    assert end.context["last_heard"] == "yes"
    assert leaks(repr(end)) == []
