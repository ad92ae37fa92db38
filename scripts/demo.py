"""The demo: a synthesized caller phones the demo hotline; replay it and show the trace.

Writes build/demo/call.wav (the caller, 8 kHz mu-law as a phone line carries it),
build/demo/replay.wav (stereo: caller left, machine right) and build/demo/trace.json.
"""

import sys
from pathlib import Path

from ivr.callgen import render, write_mulaw_wav
from ivr.cli import main
from ivr.tts.piper import PiperTts

OUT = Path("build/demo")
CALLER = [
    ("pause", 7500), ("say", "Where is my order?"),      # after the greeting and menu
    ("pause", 6500), ("say", "main menu"),
    ("pause", 2000), ("say", "opening hours"),           # barges in on the menu prompt
    ("pause", 5000), ("keys", "0"),                      # presses 0 for an agent
    ("pause", 3000),
]


def run() -> int:
    call = OUT / "call.wav"
    if not call.exists():
        write_mulaw_wav(call, render(CALLER, PiperTts()))
    return main(["replay", str(call), "--flow", "flows/demo.yaml",
                 "--out", str(OUT / "replay.wav"), "--json", str(OUT / "trace.json")])


if __name__ == "__main__":
    sys.exit(run())
