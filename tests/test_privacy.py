"""Redaction rules (ivr.privacy): tables of what is masked and what must stay."""

import logging
from dataclasses import dataclass

import pytest

from ivr.flow import sayas
from ivr.privacy import (
    Redactor,
    install_log_redaction,
    is_card_number,
    luhn_ok,
    mask_input,
    redact,
    redact_event,
    redact_live,
    redact_value,
)

VISA = "4111111111111111"


@pytest.mark.parametrize("digits", [
    "4111111111111111", "4012888888881881", "5555555555554444", "5105105105105100", "378282246310005",
    "371449635398431", "6011111111111117", "3530111333300000", "4222222222222", "6250941006528599",
    "4000056655665556", "2223003122003222", "6759649826438453", "4111111111111111110"])
def test_luhn_valid_card_numbers(digits):
    assert luhn_ok(digits) and is_card_number(digits)


@pytest.mark.parametrize("digits", [
    "4111111111111112", "5555555555554445", "378282246310006", "1234567812345678", "0000000000001",
    "411111111111", "41111111111111111111", "4111a11111111111", ""])
def test_not_card_numbers(digits):
    assert not is_card_number(digits)


@pytest.mark.parametrize("text,expected", [
    (VISA, "************1111"),
    ("card 4111 1111 1111 1111 thanks", "card ************1111 thanks"),
    ("4111-1111-1111-1111", "************1111"),
    ("4111.1111.1111.1111", "************1111"),
    ("my card is four one one one one one one one one one one one one one one one",
     "my card is ************1111"),
    ("Four, one, one, one, one, one, one, one, one, one, one, one, one, one, one, one.", "************1111."),
    ("four double one one one one one one one one one one one one one one", "************1111"),
    ("For one one one one one one one one one one one one one one one", "************1111"),   # whisper
    ("4,111,111,111,111,111", "************1111"),                                              # whisper
    ("四幺幺幺幺幺幺幺幺幺幺幺幺幺幺幺", "************1111"),
    ("我的卡号是4111111111111111", "我的卡号是************1111"),
    ("378282246310005", "***********0005"),
    ("You said 4 1 1 1, 1 1 1 1, 1 1 1 1, 1 1 1 1. Is that right?", "You said ************1111. Is that right?"),
    ("GET http://127.0.0.1:9/cards/4111111111111111/check -> connect", "GET http://127.0.0.1:9/cards/"
     "************1111/check -> connect"),
    ("cards 4111111111111111 and 5555555555554444", "cards ************1111 and ************4444"),
])
def test_card_numbers_are_masked(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize("text", [
    "order 481516", "order four eight one five one six", "my order is 481516, the second one",
    "call me on +1 555 010 0199", "+44 20 7946 0958",
    "plus four four two zero seven nine four six zero nine five eight",
    "+86 138 0013 8000", "4111 1111 1111 1112", "2026-11-28 01:10:00", "12 dollars and 50 cents",
    "press 1 for sales, 2 for support", "CA4111111111111111", "call id 550e8400-e29b-41d4-a716-446655440000",
    "one for the money two for the show", "", "no numbers here at all",
])
def test_other_numbers_stay(text):
    assert redact(text) == text


def test_mask_is_sayas_mask():
    assert redact(VISA) == sayas.mask(VISA)
    assert mask_input("1234") == sayas.mask("1234") == "****"


@pytest.mark.parametrize("text,expected", [
    ("1234", "****"), ("my pin is 1 2 3 4", "my pin is ****"), ("one two three four", "****"),
    ("it's 9 8 7 6 5 4 3 2 1 0", "it's ******3210"), ("I don't know", "************"),
])
def test_input_at_a_sensitive_step_is_masked(text, expected):
    assert mask_input(text) == expected


def test_call_secrets_are_found_however_written():
    r = Redactor({"pin": "digits", "card": "digits"})
    assert r.input_at("pin", "my pin is one two three four") == "my pin is ****"
    assert r.input_at("card", "4000 0000 0000 0002") == "************0002"   # not Luhn-valid: still masked
    assert r.text("You entered 1, 2, 3, 4. Right?") == "You entered ****. Right?"
    assert r.text("You entered 1 2 3 4 and order 481516") == "You entered **** and order 481516"
    assert r.text("card 4000-0000-0000-0002 declined") == "card ************0002 declined"
    assert r.text("x=ref4000000000000002") == "x=ref************0002"    # glued to letters: 6+ digit secret
    assert r.text("order 12345") == "order 12345"                         # a longer number is not the PIN
    assert r.input_at("main", "1234") == "****"                           # elsewhere: a known secret
    assert r.input_at("main", "481516") == "481516"


def test_learn_slot_values_and_text_secrets():
    r = Redactor({"word": "text"})
    r.learn_slots({"pin": "0042", "card": 4111111111111111, "name": "Ann", "word": "Blue Horse"},
                  ["pin", "card", "word"])
    assert r.text("PIN 0 0 4 2, card 4111111111111111, name Ann") == "PIN ****, card ************1111, name Ann"
    assert r.text("the password is blue horse") == "the password is **********"
    assert r.text("blue horses") == "blue horses"                          # whole words only
    r.learn({"amount": "1250.75", "currency": "USD"})                      # a sensitive money slot
    assert r.text("1250.75 USD") == "****** USD"
    assert r.input_at("word", "purple elephant") == "***************"   # input at the step: masked whole
    assert r.input_at("word", "yes") == "***"
    assert r.text("yes, purple elephant") == "yes, purple elephant"          # input is not a value: not learned


@dataclass(frozen=True, slots=True, kw_only=True)
class _Event:
    call_id: str
    heard: str = ""
    said: tuple[str, ...] = ()
    context: dict | None = None
    candidates: tuple = ()


def test_values_are_redacted_recursively_keeping_their_shape():
    r = Redactor()
    r.learn("1234")
    event = _Event(call_id="c-4111111111111111x", heard="pin 1234", said=("You said 1 2 3 4", "ok"),
                   context={"reason": f"card {VISA}", "list": [VISA, 5, None], "n": 4111111111111111},
                   candidates=({"choice": "pay", "text": f"pay {VISA}"},))
    out = r.value(event)
    assert isinstance(out, _Event) and out.call_id == event.call_id
    assert out.heard == "pin ****" and out.said == ("You said ****", "ok")
    assert out.context == {"reason": "card ************1111", "list": ["************1111", 5, None],
                           "n": 4111111111111111}
    assert out.candidates == ({"choice": "pay", "text": "pay ************1111"},)
    assert redact_value({"a": (VISA,)}) == {"a": ("************1111",)}
    unchanged = _Event(call_id="x", heard="hello")
    assert r.value(unchanged) is unchanged


def test_log_records_are_redacted_for_every_handler(caplog):
    install_log_redaction()
    install_log_redaction()   # idempotent
    r = Redactor()
    r.learn("9876")
    with caplog.at_level(logging.INFO, logger="ivr.test"):
        logging.getLogger("ivr.test").info("HTTP GET %s failed, pin %s", f"http://x/cards/{VISA}", "9 8 7 6")
        try:
            raise ValueError(f"bad card {VISA}")
        except ValueError:
            logging.getLogger("ivr.test").exception("oops")
    text = caplog.text
    assert VISA not in text and "9 8 7 6" not in text
    assert "************1111" in text and "pin ****" in text
    r.close()
    assert redact_live("pin 9876") == "pin 9876"   # the call is over: its secrets no longer apply


def test_call_events_input_at_a_sensitive_step_and_everything_else():
    from ivr.callevents import KeysPressed, PromptPlayed, TransferRequested, TurnEnded

    r = Redactor({"pin": "digits", "card": "digits"})
    keys = [r.event(KeysPressed(call_id="c1", keys=k, step="pin")) for k in "9876"]
    assert [k.keys for k in keys] == ["*"] * 4
    assert r.event(KeysPressed(call_id="c1", keys="1", step="main")).keys == "1"
    turn = r.event(TurnEnded(call_id="c1", index=2, kind="dtmf", step="pin", heard="9876",
                             said=("You entered 9 8 7 6. Is that right?",)))
    assert turn.heard == "****" and turn.said == ("You entered ****. Is that right?",)
    spoken = r.event(TurnEnded(call_id="c1", index=3, kind="speech", step="card",
                               heard="four one one one one one one one one one one one one one one one",
                               candidates=({"choice": "card", "text": VISA},)))
    assert spoken.heard == "************1111" and spoken.candidates == ({"choice": "card", "text": "************1111"},)
    assert r.event(PromptPlayed(call_id="c1", text="Your PIN 9876")).text == "Your PIN ****"
    transfer = r.event(TransferRequested(call_id="c1", target="sip:a@127.0.0.1", reason="pin 9876",
                                         context={"card": VISA}))
    assert transfer.reason == "pin ****" and transfer.context == {"card": "************1111"}
    assert redact_event(TransferRequested(call_id="c2", target="x", reason="pin 9876")).reason == "pin ****"
    r.close()
    assert redact_event(TransferRequested(call_id="c2", target="x", reason="pin 9876")).reason == "pin 9876"


def test_http_result_detail_is_redacted_at_the_source():
    import asyncio

    from ivr.flow.http import HttpClient, HttpRequest

    r = Redactor()
    r.learn("2580")
    req = HttpRequest("GET", f"http://127.0.0.1:9/cards/{VISA}/pin/2580?token=abcdef", timeout_ms=500)

    async def go():
        client = HttpClient()
        try:
            return await client.execute(req)
        finally:
            await client.close()

    result = asyncio.run(go())
    assert not result.ok and "/cards/************1111/pin/****?token=***" in result.detail, result.detail
    r.close()


def test_the_hub_entrance_redacts_every_event_for_every_subscriber():
    import asyncio

    from ivr.callevents import CallEnded, TransferRequested, TurnEnded
    from ivr.service.hub import Hub

    got = []
    r = Redactor()
    r.learn("2468")   # a call in progress knows this PIN

    async def go():
        hub = Hub(filter=redact_event)
        hub.subscribe(got.append, name="test")
        hub.publish(TurnEnded(call_id="c9", index=1, kind="speech", step="x", heard=f"card {VISA}",
                              said=("PIN 2 4 6 8?",), candidates=({"choice": "pay", "heard": VISA},)))
        hub.publish(TransferRequested(call_id="c9", target="sip:a@127.0.0.1", reason=f"card {VISA}",
                                      context={"pin": "2468", "nested": [{"card": VISA}]}))
        hub.publish(CallEnded(call_id="c9", kind="transfer", reason="pin 2468", context={"card": VISA}))
        await hub.close()

    asyncio.run(go())
    r.close()
    assert len(got) == 3
    assert VISA not in repr(got) and "2468" not in repr(got) and "2 4 6 8" not in repr(got)
    assert got[0].heard == "card ************1111" and got[0].said == ("PIN ****?",)
    assert got[1].context == {"pin": "****", "nested": [{"card": "************1111"}]}


@pytest.mark.parametrize("slot_type,text,expected", [
    ("digits", "my pin is 1234", "my pin is ****"), ("phone", "it's 555 0100", "it's *******"),
    ("date", "january second 1990", "*******************"), ("text", "blue horse", "**********"),
])
def test_an_answer_for_a_sensitive_slot_is_masked_by_its_type(slot_type, text, expected):
    from ivr.privacy import mask_answer

    assert mask_answer(text, slot_type) == expected
