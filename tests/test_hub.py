"""The call-event hub: fan-out in order, isolation of slow and failing subscribers, the
entrance filter, closing with a deadline; the event vocabulary's round trip; throttled logs."""

import asyncio
import json
import logging
import threading

import pytest

from ivr.callevents import (
    EVENT_TYPES,
    CallBegan,
    CallEnded,
    KeysPressed,
    TurnEnded,
    flow_version,
    from_dict,
    to_dict,
)
from ivr.service.hub import Hub
from ivr.throttle import ThrottledLog


def _keys(n: int, call_id: str = "c1") -> list[KeysPressed]:
    return [KeysPressed(call_id=call_id, t_ms=i * 20, at_s=1.0, keys=str(i % 10)) for i in range(n)]


def test_events_are_frozen_and_round_trip():
    turn = TurnEnded(call_id="c1", t_ms=40, at_s=2.5, index=1, kind="speech", step="menu", heard="sales",
                     confidence=0.9, candidates=({"choice": "sales", "score": 0.9},), said=("One moment.",),
                     match={"choice": "sales", "score": 0.9, "via": "step"}, timing={"asr_ms": 12.0})
    with pytest.raises(AttributeError):
        turn.heard = "x"
    data = to_dict(turn)
    assert data["type"] == "TurnEnded" and list(data["said"]) == ["One moment."] and data["sentiment"] is None
    assert from_dict(data) == turn == from_dict(json.loads(json.dumps(data)))
    assert from_dict({**to_dict(CallEnded(call_id="c1", kind="hangup")), "added_later": 1}).kind == "hangup"
    with pytest.raises(ValueError, match="unknown call event type"):
        from_dict({"type": "Nope"})
    assert set(EVENT_TYPES) >= {"CallBegan", "SpeechStarted", "TurnEnded", "PromptPlayed", "PromptCut",
                                "KeysPressed", "TransferRequested", "TransferFailed", "CallEnded"}


def test_flow_version_is_a_content_hash(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text("name: x\n")
    first = flow_version([a])
    assert len(first) == 12 and flow_version([a]) == first
    a.write_text("name: y\n")
    assert flow_version([a]) != first
    assert flow_version([tmp_path / "missing.yaml"]) == ""


def test_every_subscriber_gets_every_event_in_order():
    async def main():
        hub = Hub()
        seen_sync, seen_async, seen_thread = [], [], []

        async def slow_async(event):
            await asyncio.sleep(0)
            seen_async.append(event)

        hub.subscribe(seen_sync.append, name="sync")
        hub.subscribe(slow_async, name="async")
        hub.subscribe(seen_thread.append, name="thread", thread=True)
        events = _keys(200)
        for event in events:
            hub.publish(event)
        stats = await hub.close(5.0)
        return events, seen_sync, seen_async, seen_thread, stats

    events, a, b, c, stats = asyncio.run(main())
    assert a == b == c == events
    assert stats["published"] == 200
    assert all(s["delivered"] == 200 and s["dropped"] == 0 for s in stats["subscribers"].values())


def test_a_stuck_subscriber_loses_only_its_own_events_and_never_blocks_publish(caplog):
    async def main():
        hub = Hub(queue_size=10)
        release = threading.Event()
        fast = []
        hub.subscribe(lambda e: release.wait(10), name="stuck", thread=True)
        hub.subscribe(fast.append, name="fast", queue_size=1000)
        for event in _keys(100):
            hub.publish(event)          # returns at once although "stuck" is blocked
        await asyncio.sleep(0.05)
        release.set()
        stats = await hub.close(5.0)
        return fast, stats

    with caplog.at_level(logging.WARNING, logger="ivr.hub"):
        fast, stats = asyncio.run(main())
    assert len(fast) == 100
    stuck = stats["subscribers"]["stuck"]
    assert stuck["dropped"] >= 80 and stuck["delivered"] + stuck["dropped"] == 100
    too_slow = [r for r in caplog.records if "too slow" in r.getMessage()]
    assert len(too_slow) == 1     # logged once per interval, with the count


def test_a_failing_subscriber_is_counted_and_the_others_go_on(caplog):
    async def main():
        hub = Hub()
        good = []

        def bad(event):
            raise RuntimeError("boom")

        hub.subscribe(bad, name="bad")
        hub.subscribe(good.append, name="good")
        for event in _keys(5):
            hub.publish(event)
        return good, await hub.close(2.0)

    with caplog.at_level(logging.WARNING, logger="ivr.hub"):
        good, stats = asyncio.run(main())
    assert len(good) == 5
    assert stats["subscribers"]["bad"]["errors"] == 5
    assert sum("subscriber bad failed" in r.getMessage() for r in caplog.records) == 1


def test_the_filter_runs_before_fan_out_and_a_failing_filter_drops_the_event():
    async def main():
        hub = Hub()
        seen = []
        hub.subscribe(seen.append, name="s")
        hub.set_filter(lambda e: None if e.keys == "1" else KeysPressed(call_id=e.call_id, keys="*", t_ms=e.t_ms))
        for event in _keys(3):
            hub.publish(event)

        def broken(event):
            raise ValueError("redactor bug")

        hub.set_filter(broken)
        hub.publish(_keys(1)[0])      # never passed on unfiltered
        stats = await hub.close(2.0)
        return seen, stats

    seen, stats = asyncio.run(main())
    assert [e.keys for e in seen] == ["*", "*"]
    assert stats["filtered_out"] == 1 and stats["filter_errors"] == 1


def test_publish_from_a_worker_thread_and_after_close():
    async def main():
        hub = Hub()
        seen = []
        hub.subscribe(seen.append, name="s")
        await asyncio.to_thread(hub.publish, CallBegan(call_id="c9", transport="ws"))
        await asyncio.sleep(0.01)
        await hub.close(1.0)
        hub.publish(CallEnded(call_id="c9", kind="hangup"))   # ignored, counted, no exception
        return seen, hub.stats()

    seen, stats = asyncio.run(main())
    assert [type(e).__name__ for e in seen] == ["CallBegan"]
    assert stats["subscribers"]["s"]["dropped"] == 1


def test_close_abandons_a_subscriber_that_misses_the_deadline():
    async def main():
        hub = Hub()

        async def hang(event):
            await asyncio.sleep(60)

        hub.subscribe(hang, name="hang")
        for event in _keys(3):
            hub.publish(event)
        return await hub.close(0.2)

    stats = asyncio.run(main())
    assert stats["subscribers"]["hang"]["delivered"] == 0
    assert stats["subscribers"]["hang"]["dropped"] >= 2


def test_throttled_log_counts_what_it_suppresses(caplog):
    now = [100.0]
    throttle = ThrottledLog(logging.getLogger("ivr.test.throttle"), interval_s=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="ivr.test.throttle"):
        assert throttle.log("busy", "busy: refused %s", "a")
        for name in "bcd":
            now[0] += 1
            assert not throttle.log("busy", "busy: refused %s", name)
        now[0] += 10
        assert throttle.log("busy", "busy: refused %s", "e")
        assert throttle.log("other", "other thing")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["busy: refused a", "busy: refused e (and 3 more like it in the last 13 s)", "other thing"]
    assert throttle.total == {"busy": 5, "other": 1}
