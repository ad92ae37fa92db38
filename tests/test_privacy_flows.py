"""Sensitive values never reach what `ivr test`, `ivr chat` and the agent see, nor a log line.

The flow (tests/data/privacy/card_flow.yaml) reads a sensitive card number and PIN back, puts
them in a URL (to a dead port) and templates them into the transfer's reason and context.
"""

import asyncio
import os
import re
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
    """Forms found, not counting digits inside another number (a timestamp 1764299876.5)."""
    return [form for form in FORMS if re.search(rf"(?<![\d.]){re.escape(form)}(?!\d)", text)]


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


def test_replay_trace_events_logs_and_console_show_no_card_or_pin(whisper_asr, prompt_cache, line_audio, caplog):
    """`ivr replay` of a call keying the card and PIN: the trace (--json), every call event
    emitted and the console text hold masks only."""
    from ivr.cli import format_trace
    from ivr.privacy import install_log_redaction
    from ivr.replay import replay_samples

    install_log_redaction()   # as the ivr command does
    flow = load_flow(DATA / "card_flow.yaml")
    audio = line_audio([("pause", 1500), ("keys", CARD + "#"), ("pause", 1500), ("keys", "1"), ("pause", 1500),
                        ("keys", PIN), ("pause", 1500), ("keys", "1"), ("pause", 6000)])
    events = []
    with caplog.at_level("DEBUG", logger="ivr"):
        result = asyncio.run(replay_samples(audio, flow, whisper_asr, prompt_cache, caller="+15550100",
                                            env={"PAY_API": f"http://127.0.0.1:{dead_port()}"}, emit=events.append))
    trace = result.trace.to_dict()
    trace["stats"]["wall_ms"], trace["stats"]["speed_x"] = 1, 1
    assert trace["path"][-3:] == ["pin", "charge", "to_agent"], trace["path"]     # keyed, confirmed, HTTP failed
    assert trace["outcome"]["reason"] == "payment with card ************1111 and PIN ****"
    said = [s for t in trace["turns"] for s in t["said"]]
    assert "That's ************1111. Is that right?" in said and "You entered ****. Is that right?" in said
    assert [t["heard"] for t in trace["turns"] if t["kind"] == "dtmf"] == ["************1111", "1", "****", "1"]
    shown = "\n".join([format_trace(trace), repr(trace), repr(events), caplog.text])
    assert "/cards/************1111/pin/**** -> connect" in caplog.text
    assert leaks(shown) == [], shown
    # The read-back prompts were synthesised for the call only: no audio of them in the prompt cache.
    from ivr.flow.sayas import say_digits

    for spoken in (f"That's {say_digits(CARD, 'en-US')}. Is that right?",
                   f"You entered {say_digits(PIN, 'en-US')}. Is that right?"):
        assert not prompt_cache.has(spoken), spoken
    assert prompt_cache.has("Please key in your four digit PIN.")   # other prompts are cached as before
