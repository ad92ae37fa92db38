"""Conversation tests (`ivr test`): the shipped hotlines pass, and a failure says what differs."""

import asyncio
import textwrap
from pathlib import Path

import pytest

from ivr.cli import main
from ivr.flow.convtest import format_failure, run_file

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["retail_en.yaml", "retail_zh.yaml"])
def test_example_hotlines_pass_their_conversation_tests(name):
    results = asyncio.run(run_file(ROOT / "tests" / "flows" / name))
    assert len(results) >= 5
    failed = [format_failure(r) for r in results if not r.ok]
    assert not failed, "\n".join(failed)


def test_a_failing_expectation_prints_a_clear_diff(tmp_path):
    (tmp_path / "t.yaml").write_text(textwrap.dedent(f"""
        flow: {ROOT / "flows" / "demo.yaml"}
        tests:
          - name: wrong expectations
            turns:
              - caller: "opening hours"
                expect: {{step: main, said: "We are closed"}}
            expect:
              path: [greet, main, track]
              outcome: {{end: transfer}}
        """), encoding="utf-8")
    [result] = asyncio.run(run_file(tmp_path / "t.yaml"))
    text = format_failure(result)
    assert not result.ok
    assert "expected to be listening at step 'main', but it is at 'anything_else'" in text
    assert "expected the machine to say 'We are closed'" in text and "it said: 'We are open" in text
    assert "visited: ['greet', 'main', 'hours', 'anything_else']" in text
    assert "caller: opening hours" in text   # the conversation so far


def test_cli_runs_a_directory_and_sets_the_exit_code(tmp_path, capsys):
    assert main(["test", str(ROOT / "tests" / "flows")]) == 0
    assert "0 failed" in capsys.readouterr().out
    (tmp_path / "bad.yaml").write_text(f"flow: {ROOT / 'flows' / 'demo.yaml'}\ntests:\n  - turns: "
                                       "[{{caller: agent, expect: {{end: hangup}}}}]\n".replace("{{", "{").replace(
                                           "}}", "}"), encoding="utf-8")
    assert main(["test", str(tmp_path)]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_validate_reports_every_problem_with_position(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("start: a\nsteps:\n  a: {ask: 'Hi', choices: {x: {say: [hi], goto: nowhere}}}\n", encoding="utf-8")
    assert main(["validate", str(ROOT / "flows" / "retail" / "retail_en.yaml"), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "retail_en.yaml: ok" in out and f"{bad}:3:" in out and "unknown step 'nowhere'" in out


@pytest.mark.slow
def test_wav_turns_go_through_the_recognizer(tmp_path, piper):
    """A recorded caller turn in a conversation test is transcribed by the flow's recognizer."""
    from ivr.audio.wavio import write_wav
    from ivr.cli_flow import _WavRecognizer

    audio = piper.synthesize("opening hours")
    write_wav(tmp_path / "hours.wav", audio, piper.rate_hz)
    (tmp_path / "t.yaml").write_text(textwrap.dedent(f"""
        flow: {ROOT / "flows" / "demo.yaml"}
        tests:
          - name: a WAV turn
            turns:
              - wav: hours.wav
                expect: {{said: "We are open Monday to Friday", step: anything_else}}
        """), encoding="utf-8")

    class Args:
        asr = "whisper"

    [result] = asyncio.run(run_file(tmp_path / "t.yaml", _WavRecognizer(Args())))
    assert result.ok, format_failure(result)
    assert "[wav hours.wav] heard" in "\n".join(result.transcript)
