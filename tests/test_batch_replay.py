"""Batch replay for testers: `ivr replay DIR --flow F --junit out.xml` over recorded calls with
sidecar expectations; the WAV streamed a block at a time; expectations files checked like flows."""

import json
import textwrap
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import soundfile as sf

from ivr.audio.frames import FRAME_SAMPLES, split_frames
from ivr.audio.wavio import read_audio
from ivr.callgen import render, write_mulaw_wav
from ivr.flow.yamlsrc import FlowError
from ivr.replay_expect import check, load_expect
from ivr.transports import wavfile
from ivr.transports.wavfile import WavReplayTransport, wav_blocks
from tests.test_cli import ivr

FLOW = """
    name: batch-test
    language: en-US
    voice: piper
    agent_line: sip:agents@127.0.0.1:5080
    globals:
      agent: {say: ["agent"], dtmf: "0", goto: to_agent}
    start: main
    steps:
      main:
        ask: "Say track an order, or opening hours."
        choices:
          track: {say: ["track [my] order"], dtmf: "1", goto: order}
          hours: {say: ["opening hours"], dtmf: "2", goto: hours}
      order:
        ask: "Key in your order number."
        collect: {slot: order_no, type: digits, length: 4}
        next: done
      done:
        say: "Thanks."
        hangup: true
      hours:
        say: "We open at nine."
        hangup: true
      to_agent:
        say: "Connecting you."
        transfer: {to: "{{ agent_line }}", reason: agent}
    """

CALLS = {   # name: (caller script, sidecar)
    "track": ([("pause", 3500), ("say", "track my order"), ("pause", 3000), ("keys", "1234"), ("pause", 3000)],
              'path: [main, order, done]\noutcome: hangup\nslots: {order_no: "1234"}\nheard: ["track my order"]\n'),
    "agent": ([("pause", 2000), ("keys", "0"), ("pause", 4000)],
              "visited: [main, to_agent]\noutcome: transfer\ntransfer: sip:agents@127.0.0.1:5080\n"),
    # Deliberately wrong: the caller asks for the hours, the sidecar expects order tracking.
    "hours": ([("pause", 3500), ("say", "opening hours"), ("pause", 4000)],
              'visited: [main, order]\noutcome: hangup\nheard: ["track my order"]\n'),
}


@pytest.fixture(scope="module")
def batch(tmp_path_factory, piper):
    root = tmp_path_factory.mktemp("batch")
    (root / "flow.yaml").write_text(textwrap.dedent(FLOW), encoding="utf-8")
    calls = root / "calls"
    for name, (script, expect) in CALLS.items():
        write_mulaw_wav(calls / f"{name}.wav", render(script, piper))     # 8 kHz mu-law, as call recorders keep them
        (calls / f"{name}.expect.yaml").write_text(expect, encoding="utf-8")
    return root


@pytest.mark.slow
def test_a_folder_of_calls_gives_a_table_junit_and_a_failing_status(batch, tmp_path):
    junit, report = tmp_path / "out.xml", tmp_path / "out.json"
    proc = ivr("replay", str(batch / "calls"), "--flow", str(batch / "flow.yaml"), "--junit", str(junit),
               "--json", str(report), tmp_path=tmp_path)
    assert proc.returncode == 1, proc.stderr                      # one call failed its expectations
    assert "3 calls: 2 passed, 1 failed, 0 errors" in proc.stdout
    rows = {line.split()[0].rsplit("/", 1)[-1]: line.split()[1] for line in proc.stdout.splitlines()
            if line.split() and line.split()[0].endswith(".wav")}
    assert rows == {"agent.wav": "PASS", "hours.wav": "FAIL", "track.wav": "PASS"}
    assert "never heard 'track my order' (heard: opening hours)" in proc.stdout
    assert "turn latency p50" in proc.stdout and "no match 0 (0.0%)" in proc.stdout

    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "0")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    failure = cases["hours.wav"].find("failure")
    assert failure is not None and "step 'order' not visited" in failure.get("message")
    assert cases["track.wav"].find("failure") is None and cases["agent.wav"].find("failure") is None

    data = json.loads(report.read_text())
    summary = data["summary"]
    assert summary["caller_turns"] == 4 and summary["no_match_rate"] == 0.0
    assert summary["latency_ms"]["turns"] == 2 and summary["latency_ms"]["p50"] >= 200   # endpoint silence and up
    by_wav = {c["wav"].rsplit("/", 1)[-1]: c for c in data["calls"]}
    assert by_wav["agent.wav"]["trace"]["outcome"]["target"] == "sip:agents@127.0.0.1:5080"


@pytest.mark.slow
def test_one_call_with_a_sidecar_prints_the_trace_and_the_check(batch, tmp_path):
    proc = ivr("replay", str(batch / "calls" / "track.wav"), "--flow", str(batch / "flow.yaml"), tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "heard 'track my order' -> track" in proc.stdout              # the documented single-call trace
    assert "expectations (" in proc.stdout and proc.stdout.rstrip().endswith("PASS")


def test_the_wav_is_read_one_block_at_a_time(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    pcm = (rng.normal(0, 3000, 8000 * 12)).astype(np.int16)            # 12 s at 8 kHz
    path = tmp_path / "long.wav"
    sf.write(str(path), pcm, 8000, subtype="PCM_16")
    reads: list[int] = []
    real_read = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        reads.append(frames)
        return real_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    blocks = wav_blocks(path, block_frames=4000)
    assert reads == []                                                  # checked, not read, until asked
    first = next(blocks)
    assert reads == [4000]                                              # one block for the first chunk
    rest = list(blocks)
    assert all(n == 4000 for n in reads) and len(reads) == 8000 * 12 // 4000 + 1   # never the whole file
    assert max(len(b) for b in rest) <= 4000 * 2 + 512                  # 16 kHz chunks of one block each
    streamed, whole = np.concatenate([first, *rest]), read_audio(path)   # the same audio as reading it whole
    assert len(streamed) == len(whole) and np.abs(streamed.astype(int) - whole).max() <= 2


def test_a_transport_without_audio_keeps_none_and_reframes_chunks():
    chunks = [np.full(n, i, np.int16) for i, n in enumerate([100, 700, 33, 2000, 5])]
    whole = np.concatenate(chunks)
    transport = WavReplayTransport(iter(chunks), keep_audio=False)

    async def drain():
        return [f async for f in transport.inbound()]

    import asyncio

    frames = asyncio.run(drain())
    expected = list(split_frames(whole))
    assert len(frames) == len(expected) and all(np.array_equal(a, b) for a, b in zip(frames, expected, strict=True))
    assert all(len(f) == FRAME_SAMPLES for f in frames)
    assert transport.frames_in == len(expected) and transport.inbound_frames == []
    with pytest.raises(RuntimeError):
        transport.stereo()
    assert wavfile.BLOCK_FRAMES * 2 * 4 < 1_000_000                    # a block in float32: well under 1 MB


def test_expectations_files_are_checked_like_flows(tmp_path):
    path = tmp_path / "x.expect.yaml"
    path.write_text("outcome: transferred\npaht: [main]\nslots: [a]\n", encoding="utf-8")
    with pytest.raises(FlowError) as err:
        load_expect(path)
    problems = err.value.problems
    assert any(p.startswith(f"{path}:2:1: unknown key 'paht'") and "did you mean 'path'" in p for p in problems)
    assert any(p.startswith(f"{path}:1:1: unknown outcome 'transferred'") and "'transfer'" in p for p in problems)
    assert any("'slots' must be a mapping" in p for p in problems)


def test_check_names_every_miss():
    path = load_expect_text("path: [main, order, done]\noutcome: transfer\ntransfer: sip:a@127.0.0.1\n"
                            "slots: {order_no: '1234', pin: '9999'}\nheard: [Track my order!]\n")
    trace = {"path": ["main", "hours"], "outcome": {"kind": "hangup", "target": None},
             "turns": [{"kind": "speech", "heard": "track my order"}]}
    failures = check(path, trace, {"order_no": 1234})
    assert failures == ["path main > hours, expected main > order > done", "outcome hangup, expected transfer",
                        "transfer to None, expected sip:a@127.0.0.1", "slot pin not filled, expected '9999'"]


def load_expect_text(text):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.expect.yaml"
        path.write_text(text, encoding="utf-8")
        return load_expect(path)
