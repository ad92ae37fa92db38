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
    assert main(["validate", str(ROOT / "flows" / "retail" / "retail.yaml"), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "retail.yaml: ok" in out and f"{bad}:3:" in out and "unknown step 'nowhere'" in out


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


HOTLINE = """
    agent_line: sip:agents@127.0.0.1
    steps:
      main:
        ask: "Say balance."
        choices:
          balance: {say: [balance], dtmf: "1", goto: account}
      account:
        ask: "Your PIN?"
        collect: {slot: pin, type: digits, length: 4, sensitive: true}
        next: lookup
      lookup:
        http: {get: "http://api.test/balance/{{ slots.pin }}", save: bal}
        next: plans
      plans:
        http: {get: "http://api.test/plans", save: plans}
        next: tell
      tell: {say: "Your balance is {{ bal.amount }}.", hangup: true}
"""


def run_tests(tmp_path, tests: str, file_http: str = '"GET */balance/*": {json: {amount: 5}}') -> list:
    (tmp_path / "flow.yaml").write_text(textwrap.dedent(HOTLINE), encoding="utf-8")
    (tmp_path / "t.yaml").write_text(textwrap.dedent("""
        flow: flow.yaml
        http:
          {file_http}
          "GET */plans": {{json: []}}
        tests:
        """).format(file_http=file_http) + textwrap.indent(textwrap.dedent(tests), "  "), encoding="utf-8")
    return asyncio.run(run_file(tmp_path / "t.yaml"))


def test_step_is_where_the_call_listens_and_visited_what_it_passed(tmp_path):
    ok, wrong = run_tests(tmp_path, """
        - name: ok
          turns:
            - caller: balance
              expect: {step: account, visited: [account]}
            - keys: "1234"
              expect: {visited: [lookup, plans, tell]}
          expect: {visited: [main, account, tell]}
        - name: step used for a step passed through
          turns:
            - caller: balance
            - keys: "1234"
              expect: {step: lookup, visited: [tell, lookup]}
        """)
    assert ok.ok, format_failure(ok)
    text = format_failure(wrong)
    assert ("turn 2: expected to be listening at step 'lookup', but the call ended: hang up (flow) ('lookup' was "
            "visited on the way: to check steps passed through, use visited: [lookup])") in text
    assert "expected to pass through steps ['tell', 'lookup'] in this order" in text
    assert "visited this turn: ['lookup', 'plans', 'tell']" in text


def test_http_expectations_are_a_subset_unless_exact(tmp_path):
    subset, missing, exact = run_tests(tmp_path, """
        - name: subset
          turns: [{caller: balance}, {keys: "1234"}]
          expect: {http: ["GET */plans"]}
        - name: missing
          turns: [{caller: balance}, {keys: "1234"}]
          expect: {http: ["GET */plans", "GET */balance/*", "POST */tickets"]}
        - name: exact
          turns: [{caller: balance}, {keys: "1234"}]
          expect: {http: {requests: ["GET */plans"], exact: true}}
        """)
    assert subset.ok, format_failure(subset)
    assert missing.failures == ["http: expected requests not made (in this order): ['GET */balance/*', "
                                "'POST */tickets']\n      made: ['GET http://api.test/balance/****', "
                                "'GET http://api.test/plans']"]
    assert exact.failures == ["http: requests made but not expected (exact: true): "
                              "['GET http://api.test/balance/****']\n      expected: ['GET */plans']"]


def test_a_tests_own_http_answer_wins_for_the_same_request(tmp_path):
    [result] = run_tests(tmp_path, """
        - name: override by a different pattern
          http: {"GET http://api.test/balance/1234": {json: {amount: 99}}}
          turns:
            - caller: balance
            - keys: "1234"
              expect: {said: "Your balance is 99."}
        """)
    assert result.ok, format_failure(result)


def test_sensitive_slots_are_expected_by_value_or_masked(tmp_path):
    by_value, masked, wrong = run_tests(tmp_path, """
        - turns: [{caller: balance}, {keys: "1234"}]
          expect: {slots: {pin: "1234"}}
        - turns: [{caller: balance}, {keys: "1234"}]
          expect: {slots: {pin: "****"}}
        - turns: [{caller: balance}, {keys: "1234"}]
          expect: {slots: {pin: "9999"}}
        """)
    assert by_value.ok and masked.ok, format_failure(by_value) + format_failure(masked)
    assert wrong.failures == ["slots: expected slot pin = '9999', got '****'"]


def test_a_masked_card_number_may_be_expected_with_any_number_of_stars():
    from ivr.flow.convtest import _same_mask

    assert _same_mask("****1111", "************1111") and _same_mask("************1111", "****1111")
    assert not _same_mask("****1111", "************2222") and not _same_mask("****", "************1111")
    assert not _same_mask("4111", "************4111")


def test_a_flow_with_business_hours_needs_a_test_time(tmp_path):
    from ivr.flow.yamlsrc import FlowError

    (tmp_path / "flow.yaml").write_text(textwrap.dedent("""
        hours: {timezone: UTC, open: {mon-fri: "09:00-17:00"}}
        steps:
          main: {next: [{if: open, goto: hi}, {goto: bye}]}
          hi: {say: Open., hangup: true}
          bye: {say: Closed., hangup: true}
        """), encoding="utf-8")
    (tmp_path / "t.yaml").write_text(textwrap.dedent("""
        flow: flow.yaml
        tests:
          - name: no time
            expect: {said: Open.}
          - name: bad time
            time: "tuesday 10am"
            expect: {said: Open.}
        """), encoding="utf-8")
    with pytest.raises(FlowError) as info:
        asyncio.run(run_file(tmp_path / "t.yaml"))
    path = tmp_path / "t.yaml"
    assert info.value.problems == [
        f"{path}:4:5: test 'no time' needs a time: its flow has business hours, so without one 'open' would depend "
        "on when the test runs (hint: add time: \"2026-11-24T10:00:00+08:00\" to the test or the file)",
        f"{path}:7:5: time 'tuesday 10am' is not an ISO date and time (hint: e.g. time: "
        "\"2026-11-24T10:00:00+08:00\")",
    ]
