"""Things `ivr validate` used to accept that misbehaved in a call (issue 9, part 1)."""

import textwrap

import pytest

from ivr.events import CallStarted, Digits, Fetch, Fetched, Heard, Play, Transfer
from ivr.flow.http import HttpResult
from ivr.flow.interpreter import CallState, Interpreter
from ivr.flow.loader import load_flow


@pytest.fixture
def make(tmp_path):
    def _make(text: str) -> Interpreter:
        path = tmp_path / "flow.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return Interpreter(load_flow(path), env={"API": "http://127.0.0.1:9"})
    return _make


def run(interp: Interpreter, *events, state: CallState | None = None):
    state = state or CallState()
    out = []
    for event in events:
        state, actions = interp.handle(state, event)
        out.append(actions)
    return state, out


def said(actions) -> list[str]:
    return [a.text for a in actions if isinstance(a, Play)]


# ---- set: after the value is collected; on choices --------------------------------------

BALANCE = """
    vars: {asked: 0}
    steps:
      account:
        ask: "Your account number?"
        collect: {slot: account, type: digits, length: 6}
        set: {acct: "{{ slots.account }}", asked: "{{ asked + 1 }}"}
        next: balance
      balance:
        http: {get: "{{ env.API }}/accounts/{{ acct }}/balance", save: bal}
        next: told
      told: {say: "Asked {{ asked }} time.", hangup: true}
"""


def test_set_on_a_collecting_step_runs_once_the_value_is_known(make):
    """It used to run before the caller answered: GET /accounts//balance."""
    state, (_, answer) = run(make(BALANCE), CallStarted(), Digits("481516"))
    fetch = next(a for a in answer if isinstance(a, Fetch))
    assert fetch.request.url == "http://127.0.0.1:9/accounts/481516/balance"
    state, actions = make(BALANCE).handle(state, Fetched(HttpResult(True, 200, {"amount": "1"}, None, "", 1, 1)))
    assert said(actions) == ["Asked 1 time."]


def test_set_on_a_confirmed_slot_runs_after_the_yes(make):
    flow = make(BALANCE.replace('next: balance', 'confirm: "{{ slots.account | digits }}?"\n        next: balance'))
    state, (_, asked, answer) = run(flow, CallStarted(), Digits("481516"), Heard("yes"))
    assert not any(isinstance(a, Fetch) for a in asked) and state.data["acct"] == "481516"
    assert next(a for a in answer if isinstance(a, Fetch)).request.url.endswith("/accounts/481516/balance")


def test_a_choice_sets_values_when_taken(make):
    interp = make("""
        steps:
          main:
            ask: "Balance or plans?"
            choices:
              balance: {say: [balance], dtmf: "1", goto: done, set: {topic: balance, urgent: "{{ true }}"}}
              plans: {say: [plans], dtmf: "2", goto: done, set: {topic: plans}}
          done: {say: "Topic {{ topic }}{% if urgent %}, urgent{% endif %}.", hangup: true}
    """)
    state, (_, actions) = run(interp, CallStarted(), Heard("balance"))
    assert said(actions) == ["Topic balance, urgent."] and state.data == {"topic": "balance", "urgent": True}
    _, (_, actions) = run(interp, CallStarted(), Digits("2"))
    assert said(actions) == ["Topic plans."]


def test_a_failing_choice_set_takes_the_error_path(make):
    interp = make("""
        agent_line: sip:agents@127.0.0.1
        steps:
          main:
            ask: "Balance?"
            choices:
              balance: {say: [balance], goto: done, set: {when: "{{ '2026-13-45' | date }}"}}
          done: {say: "ok", hangup: true}
    """)
    _, (_, actions) = run(interp, CallStarted(), Heard("balance"))
    assert isinstance(actions[-1], Transfer) and "template error" in actions[-1].reason


# ---- a failing template takes the flow's own error path; filters read what APIs send ----------

OUTAGE = """
    agent_line: sip:agents@127.0.0.1
    hours: {timezone: Asia/Shanghai, open: {mon-sun: "09:00-18:00"}}
    on_error: sorry
    steps:
      lookup:
        http: {get: "{{ env.API }}/outage", save: outage}
        next: tell
      tell:
        say: "Fixed by {{ outage.eta | time }} on {{ outage.eta | date }}; {{ outage.fee | money }}."
        hangup: true
      sorry:
        say: "Sorry, I can't read that now ({{ error.kind }} in {{ error.step }})."
        next:
          - {if: "open", goto: agent}
          - {goto: closed}
      agent: {transfer: "{{ agent_line }}"}
      closed: {say: "We are closed.", hangup: true}
"""


def fetched(data) -> Fetched:
    return Fetched(HttpResult(True, 200, data, None, "", 1, 1))


def test_time_date_and_money_filters_read_api_formats(make):
    """ISO datetimes with a zone are said in the flow's time zone; decimals may come as strings."""
    interp = make(OUTAGE)
    _, (_, actions) = run(interp, CallStarted(), fetched({"eta": "2026-11-24T06:30:00Z", "fee": "1,234.50"}))
    assert said(actions) == ["Fixed by 2:30 PM on Tuesday, November 24th; 1234 dollars and 50 cents."]
    _, (_, actions) = run(interp, CallStarted(), fetched({"eta": "2026-11-24T23:30:00-05:00", "fee": "0.5"}))
    assert said(actions) == ["Fixed by 12:30 PM on Wednesday, November 25th; 50 cents."]


@pytest.mark.parametrize(("at", "end"), [("2026-11-24T10:00:00+08:00", Transfer), ("2026-11-24T22:00:00+08:00", None)])
def test_a_failing_template_takes_the_flows_on_error_step(make, at, end):
    """It used to go straight to the agent line, skipping the flow's own after-hours logic."""
    from datetime import datetime

    interp = make(OUTAGE)
    start = CallStarted(at_s=datetime.fromisoformat(at).timestamp())
    state, (_, actions) = run(interp, start, fetched({"eta": "soon", "fee": "1"}))
    assert said(actions)[0] == "Sorry, I can't read that now (template in tell)."
    assert state.data["error"]["kind"] == "template" and "say_time" in state.data["error"]["what"]
    assert isinstance(actions[-1], Transfer) if end else said(actions)[-1] == "We are closed."


def test_a_service_failure_without_a_step_on_error_takes_the_flows(make):
    _, (_, actions) = run(make(OUTAGE), CallStarted(), Fetched(HttpResult(False, 503, None, "http_5xx", "", 1, 1)))
    assert said(actions)[0] == "Sorry, I can't read that now (service in lookup)."


def test_an_on_error_step_that_fails_itself_ends_at_the_agent_line(make):
    interp = make(OUTAGE.replace("({{ error.kind }} in {{ error.step }})", "{{ outage.eta | time }}"))
    _, (_, actions) = run(interp, CallStarted(), fetched({"eta": "soon", "fee": "1"}))
    assert isinstance(actions[-1], Transfer) and "template error" in actions[-1].reason


def test_on_error_must_name_a_step(tmp_path):
    from ivr.flow.yamlsrc import FlowError

    path = tmp_path / "flow.yaml"
    path.write_text("on_error: sory\nsteps:\n  sorry: {say: Sorry., hangup: true}\n", encoding="utf-8")
    with pytest.raises(FlowError) as info:
        load_flow(path)
    assert info.value.problems == [f"{path}:1:1: unknown step 'sory' (hint: did you mean 'sorry'?)"]


@pytest.mark.parametrize(("value", "date_en", "time_zh"), [
    ("2026-11-03T14:30:00Z", "Tuesday, November 3rd", "下午2点30分"),
    ("2026-11-03T09:05:00.250+08:00", "Tuesday, November 3rd", "上午9点05分"),
    ("2026-11-03 14:30", "Tuesday, November 3rd", "下午2点30分"),
])
def test_say_date_and_time_read_iso_datetimes_as_written(value, date_en, time_zh):
    from ivr.flow.sayas import say_date, say_time

    assert say_date(value, "en") == date_en and say_time(value, "zh-CN") == time_zh


@pytest.mark.parametrize("value", ["2026-11-03T25:00:00Z", "2026-02-30T10:00:00", "soon", "14h30"])
def test_unreadable_datetimes_say_what_is_wrong(value):
    from ivr.flow.sayas import say_time

    with pytest.raises(ValueError, match="say_time"):
        say_time(value, "en")


def test_validate_checks_subflow_and_knowledge_files_too(tmp_path, capsys):
    """`ivr validate flows/**/*.yaml` meets subflows and FAQ files: each is checked as what it is."""
    from ivr.cli_flow import cmd_validate

    (tmp_path / "sub.yaml").write_text("start: ask\nsteps:\n  ask: {say: Hi., next: don}\n  done: {return: true}\n",
                                       encoding="utf-8")
    (tmp_path / "faq.yaml").write_text('faqs:\n  - {id: hours, questions: ["when are you open"], answer: "Nine."}\n',
                                       encoding="utf-8")
    (tmp_path / "ok.yaml").write_text("steps:\n  a: {say: Hi., next: b}\n  b: {return: true}\n", encoding="utf-8")
    paths = [str(tmp_path / n) for n in ("sub.yaml", "faq.yaml", "ok.yaml")]
    assert cmd_validate(type("Args", (), {"flows": paths})) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{tmp_path}/sub.yaml:3:19: unknown step 'don' (hint: did you mean 'done'?)",
                   f"{tmp_path}/faq.yaml: ok (knowledge base, 1 entries)",
                   f"{tmp_path}/ok.yaml: ok (subflow, 2 steps)"]
