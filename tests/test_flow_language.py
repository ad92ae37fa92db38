"""The full flow language through the pure interpreter: slots, confirmation, conditions,
variables, HTTP as Fetch/Fetched, subflows, business hours, knowledge base, templates."""

import textwrap
from datetime import datetime

import pytest

from ivr.events import CallStarted, Digits, Fetch, Fetched, Hangup, Heard, Listen, NoInput, Play, Transfer
from ivr.flow.http import HttpResult
from ivr.flow.interpreter import CallState, Interpreter
from ivr.flow.loader import FlowError, load_flow

ORDERS = """
name: orders
agent_line: sip:agents@127.0.0.1
globals:
  agent: {say: [agent], dtmf: "0", goto: to_agent}
start: ask_id
steps:
  ask_id:
    ask: Your order number?
    collect: {slot: order_id, type: digits, length: 6}
    confirm: "That's {{ slots.order_id | digits }}. Right?"
    no_match: ["Six digits please.", "Key in six digits."]
    max_attempts: 3
    next: lookup
  lookup:
    http: {get: "{{ env.API }}/orders/{{ slots.order_id }}", timeout: 2s, save: order}
    on_error: failed
    next:
      - {if: "order.status == 'shipped'", goto: shipped}
      - {goto: other}
  shipped:
    say: "Shipped with {{ order.carrier }}."
    hangup: true
  other:
    say: "Status {{ order.status }}."
    hangup: true
  failed:
    say: "Service error {{ http.error }}."
    next: to_agent
  to_agent:
    transfer: {to: "{{ agent_line }}", reason: "{{ last.intent or 'help' }}", context: {order: "{{ slots.order_id }}"}}
"""


def flow_of(tmp_path, text, name="flow.yaml", extra: dict | None = None):
    for rel, body in (extra or {}).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(textwrap.dedent(body), encoding="utf-8")
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_flow(path)


def run(interp, events, state=None):
    state = state or CallState()
    out = []
    for event in events:
        state, actions = interp.handle(state, event)
        out.append(actions)
    return state, out


def ok(data, status=200):
    return Fetched(HttpResult(True, status, data, "", "", 5, 1))


def said(actions):
    return [a.text for a in actions if isinstance(a, Play)]


def test_slot_confirm_fetch_and_condition(tmp_path):
    interp = Interpreter(flow_of(tmp_path, ORDERS), env={"API": "http://api.test", "SECRET": "x"})
    state, out = run(interp, [CallStarted(), Heard("it's four eight one five one six"), Heard("yes")])
    assert said(out[1]) == ["That's 4 8 1 5 1 6. Right?"]
    fetch = out[2][-1]
    assert isinstance(fetch, Fetch) and fetch.request.url == "http://api.test/orders/481516"
    assert interp.env == {"API": "http://api.test"}   # only what the flow names
    state, actions = interp.handle(state, ok({"status": "shipped", "carrier": "UPS"}))
    assert said(actions) == ["Shipped with UPS."] and isinstance(actions[-1], Hangup)
    assert state.slots == {"order_id": "481516"} and state.data["order"]["carrier"] == "UPS"


def test_slot_by_keys_and_no_to_confirmation(tmp_path):
    interp = Interpreter(flow_of(tmp_path, ORDERS), env={"API": "http://api.test"})
    _, out = run(interp, [CallStarted(), Digits("481516"), Heard("no"), Digits("123456"), Digits("1")])
    assert said(out[2]) == ["Let's try again.", "Your order number?"]
    assert isinstance(out[4][-1], Fetch) and out[4][-1].request.url.endswith("/orders/123456")


def test_wrong_length_escalates_then_global_agent_works_inside_collect(tmp_path):
    interp = Interpreter(flow_of(tmp_path, ORDERS), env={"API": "http://a"})
    _, out = run(interp, [CallStarted(), Heard("four eight one"), Heard("agent")])
    assert said(out[1])[0] == "Six digits please."
    assert isinstance(out[2][-1], Transfer) and out[2][-1].reason == "agent"


def test_http_error_takes_on_error_and_url_values_are_escaped(tmp_path):
    flow = flow_of(tmp_path, ORDERS.replace("type: digits, length: 6", "type: text").replace(
        "    confirm: \"That's {{ slots.order_id | digits }}. Right?\"\n", ""))
    interp = Interpreter(flow, env={"API": "http://api.test/v1"})
    state, out = run(interp, [CallStarted(), Heard("../admin?x=1#y")])
    assert out[1][-1].request.url == "http://api.test/v1/orders/..%2Fadmin%3Fx%3D1%23y"
    state, actions = interp.handle(state, Fetched(HttpResult(False, None, None, "timeout", "t", 2000, 2)))
    assert said(actions) == ["Service error timeout."]
    transfer = actions[-1]
    assert isinstance(transfer, Transfer) and transfer.context["order"] == "../admin?x=1#y"


def test_transfer_context_masks_sensitive_slots(tmp_path):
    flow = flow_of(tmp_path, """
        agent_line: sip:a@127.0.0.1
        start: card
        steps:
          card:
            ask: Card number?
            collect: {slot: card, type: digits, min_length: 12, max_length: 19, sensitive: true}
            next: out
          out:
            transfer: {to: "{{ agent_line }}", reason: card}
        """)
    state, out = run(Interpreter(flow), [CallStarted(), Digits("4111111111111111")])
    transfer = out[1][-1]
    assert transfer.context["slots"]["card"].endswith("1111") and "41111111" not in str(transfer.context)
    assert "4111111111111111" not in state.last.value


def test_unsure_choice_asks_did_you_mean(tmp_path):
    flow = flow_of(tmp_path, """
        nlu: {accept: 0.95, confirm: 0.6}
        start: main
        steps:
          main:
            ask: Say track my order.
            choices:
              track: {say: ["track my order"], goto: done, label: "tracking an order"}
          done:
            hangup: true
        """)
    interp = Interpreter(flow)
    state, out = run(interp, [CallStarted(), Heard("attract my order"), Heard("yes")])
    assert said(out[1]) == ["Did you mean tracking an order? Please say yes or no."]
    assert isinstance(out[2][-1], Hangup) and state.path[-1] == "done"


def test_business_hours_and_holidays(tmp_path):
    flow = flow_of(tmp_path, """
        hours: {timezone: Asia/Shanghai, open: {mon-fri: "09:00-18:00"}, holidays: CN}
        start: greet
        steps:
          greet:
            next:
              - {if: "holiday", goto: holiday}
              - {if: "open", goto: open_}
              - {goto: closed}
          holiday: {say: "Closed for {{ holiday }}.", hangup: true}
          open_: {say: Open., hangup: true}
          closed: {say: Closed., hangup: true}
        """)
    interp = Interpreter(flow)

    def greeting(iso):
        return said(interp.handle(CallState(), CallStarted(at_s=datetime.fromisoformat(iso).timestamp()))[1])

    assert greeting("2026-11-24T10:00:00+08:00") == ["Open."]
    assert greeting("2026-11-24T19:00:00+08:00") == ["Closed."]
    assert greeting("2026-11-24T02:00:00+00:00") == ["Open."]        # 10:00 in Shanghai
    assert greeting("2026-10-01T10:00:00+08:00")[0].startswith("Closed for ")   # National Day


def test_subflow_runs_and_returns_and_variables(tmp_path):
    flow = flow_of(tmp_path, """
        vars: {count: 0}
        subflows: {verify: sub/verify.yaml}
        start: main
        steps:
          main:
            set: {count: "{{ count + 1 }}"}
            run: verify
            next:
              - {if: "slots.pin == '1234' and count == 1", goto: good}
              - {goto: bad}
          good: {say: "Verified.", hangup: true}
          bad: {say: "Not verified.", hangup: true}
        """, extra={"sub/verify.yaml": """
        start: pin
        steps:
          pin:
            ask: Your PIN?
            collect: {slot: pin, type: digits, length: 4, sensitive: true}
            next: back
          back:
            return: true
        """})
    assert "verify/pin" in flow.steps and flow.subflows == {"verify": "verify/pin"}
    state, out = run(Interpreter(flow), [CallStarted(), Digits("1234")])
    assert said(out[1]) == ["Verified."] and state.stack == ()


def test_faq_answer_then_question_again(tmp_path):
    flow = flow_of(tmp_path, """
        knowledge: faq.yaml
        start: main
        steps:
          main:
            ask: How can I help?
            choices:
              track: {say: ["track my order"], goto: done}
            faq: true
          done: {hangup: true}
        """, extra={"faq.yaml": """
        language: en-US
        faqs:
          - id: returns
            questions: ["what is your return policy", "can I return an item"]
            answer: "Returns are free within 30 days."
        """})
    state, out = run(Interpreter(flow), [CallStarted(), Heard("what's your return policy"),
                                         Heard("what is the meaning of life")])
    assert said(out[1]) == ["Returns are free within 30 days.", "How can I help?"]
    assert state.last.via == "" and said(out[2])[0] == "Sorry, I didn't catch that."


def test_template_error_at_run_time_goes_to_fallback_not_silence(tmp_path):
    flow = flow_of(tmp_path, """
        agent_line: sip:a@127.0.0.1
        start: main
        steps:
          main:
            say: "Your date is {{ 'not a date' | date }}."
            hangup: true
        """)
    state, actions = Interpreter(flow).handle(CallState(), CallStarted())
    assert isinstance(actions[-1], Transfer) and "template error" in actions[-1].reason
    assert state.ended


def test_caller_lookup_personal_greeting_and_failure(tmp_path):
    flow = flow_of(tmp_path, """
        caller_lookup: {get: "{{ env.CRM }}/customers?phone={{ caller.number }}", timeout: 1s}
        start: hi
        steps:
          hi: {say: "Hello{% if caller.first_name %} {{ caller.first_name }}{% endif %}.", hangup: true}
        """)
    interp = Interpreter(flow, env={"CRM": "http://crm.test"})
    state, actions = interp.handle(CallState(), CallStarted(caller="+15550101"))
    assert actions == [Fetch(actions[0].request)] and actions[0].request.url == \
        "http://crm.test/customers?phone=%2B15550101"
    _, greet = interp.handle(state, ok({"first_name": "Bob"}))
    assert said(greet) == ["Hello Bob."]
    _, plain = interp.handle(state, Fetched(HttpResult(False, 404, None, "http_4xx", "", 3, 1)))
    assert said(plain) == ["Hello."]


def test_mandarin_digits_and_yes(tmp_path):
    flow = flow_of(tmp_path, ORDERS.replace("name: orders", "name: orders\nlanguage: zh-CN"))
    interp = Interpreter(flow, env={"API": "http://a"})
    state, out = run(interp, [CallStarted(), Heard("四八一五一六"), Heard("对的")])
    assert isinstance(out[2][-1], Fetch) and state.slots["order_id"] == "481516"


def test_listen_for_collect_takes_many_keys_with_terminator(tmp_path):
    interp = Interpreter(flow_of(tmp_path, ORDERS), env={"API": "http://a"})
    _, actions = interp.handle(CallState(), CallStarted())
    listen = actions[-1]
    assert isinstance(listen, Listen) and listen.max_digits == 6 and listen.terminator == "#"
    assert "four" in listen.expect and "agent" in listen.expect   # digit words bias the recognizer


def test_no_input_escalation_uses_per_attempt_prompts(tmp_path):
    interp = Interpreter(flow_of(tmp_path, ORDERS), env={"API": "http://a"})
    _, out = run(interp, [CallStarted(), NoInput(), Heard("blah"), NoInput()])
    assert said(out[1])[0] == "Sorry, I didn't hear you."
    assert said(out[2])[0] == "Six digits please."
    assert isinstance(out[3][-1], Transfer)


@pytest.mark.parametrize(("body", "message"), [
    ("steps: {a: {ask: 'Hi', collect: {slot: x, type: digit}, next: a}}", "did you mean 'digits'"),
    ("steps: {a: {say: '{{ x ', hangup: true}}", "template does not compile"),
    ("steps: {a: {say: '{{ x | shout }}', hangup: true}}", "unknown filter 'shout'"),
    ("steps: {a: {say: hi, next: b}, b: {say: there, next: a}}", "loop without ever listening"),
    ("steps: {a: {say: hi, hangup: true}, orphan: {say: x, hangup: true}}", "'orphan' is unreachable"),
    ("steps: {a: {http: {fetch: 'http://x'}, next: a}}", "exactly one of"),
    ("steps: {a: {run: nope, next: a}}", "unknown subflow 'nope'"),
    ("steps: {a: {return: true}}", "not in a subflow"),
    ("steps: {a: {ask: 'Hi', faq: true}}", "knowledge base, but the flow has none"),
    ("steps: {a: {ask: 'Hi', choices: {x: {say: [yes], goto: a}, y: {say: ['yes'], goto: a}}}}", "overlap"),
    ("hours: {timezone: Mars/Base, open: {}}\nsteps: {a: {hangup: true}}", "unknown time zone"),
    ("steps: {a: {next: [{if: 'x', goto: a}]}}", "last branch of 'next' needs no 'if'"),
    ("steps: {a: {set: {slots: 1}, hangup: true}}", "cannot be a variable name"),
])
def test_validation_errors_name_the_problem(tmp_path, body, message):
    path = tmp_path / "f.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(FlowError) as err:
        load_flow(path)
    assert any(message in p for p in err.value.problems), err.value.problems
    assert all(p.startswith(f"{path}:") for p in err.value.problems)


def test_a_dot_dot_value_cannot_climb_the_url_path(tmp_path):
    flow = flow_of(tmp_path, ORDERS.replace("type: digits, length: 6", "type: text").replace(
        "    confirm: \"That's {{ slots.order_id | digits }}. Right?\"\n", ""))
    _, out = run(Interpreter(flow, env={"API": "http://api.test/v1"}), [CallStarted(), Heard("..")])
    assert out[1][-1].request.url == "http://api.test/v1/orders/%2E%2E"
