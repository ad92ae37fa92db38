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
