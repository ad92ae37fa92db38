"""The call loop tells what happens through call events; its trace is a fold over them.

A real replay (piper caller audio through a phone line, whisper, the demo flow): the events
come in order, every turn is emitted once and complete, and folding the events again (also
after a JSON round trip, as a crashed call's JSONL would be read back) gives the same trace."""

import asyncio
import json

import pytest

from ivr.callevents import (
    CallBegan,
    CallEnded,
    KeysPressed,
    PromptCut,
    PromptPlayed,
    SpeechStarted,
    TransferRequested,
    TurnEnded,
    from_dict,
    to_dict,
)
from ivr.replay import replay_samples
from ivr.trace import fold
from tests.test_replay import DEMO_CALLER

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_events(demo_flow, whisper_asr, prompt_cache, line_audio):
    events = []
    result = asyncio.run(replay_samples(line_audio(DEMO_CALLER), demo_flow, whisper_asr, prompt_cache,
                                        call_id="ev", emit=events.append))
    return result, events


def test_events_in_order_and_complete(demo_events, demo_flow):
    result, events = demo_events
    assert isinstance(events[0], CallBegan) and isinstance(events[-1], CallEnded)
    assert sum(isinstance(e, CallEnded) for e in events) == 1
    began = events[0]
    assert (began.call_id, began.transport, began.flow, began.language) == ("ev", "replay", demo_flow.name, "en-US")
    assert len(began.flow_version) == 12 and began.asr.startswith("whisper")
    assert all(e.call_id == "ev" for e in events)
    assert [e.t_ms for e in events[:-1]] == sorted(e.t_ms for e in events[:-1])   # CallEnded: when decided
    turns = [e for e in events if isinstance(e, TurnEnded)]
    assert [t.index for t in turns] == list(range(len(turns))) == [t.index for t in result.trace.turns]
    # Every prompt queued is said in some turn; the barge-ins cut prompts; the agent key is a key.
    played = [e.text for e in events if isinstance(e, PromptPlayed)]
    assert played == [text for t in turns for text in t.said]
    assert [e.by for e in events if isinstance(e, PromptCut)] == ["speech", "dtmf"]
    assert [e.keys for e in events if isinstance(e, KeysPressed)] == ["0"]
    assert sum(isinstance(e, SpeechStarted) for e in events) >= 3
    transfer = next(e for e in events if isinstance(e, TransferRequested))
    assert transfer.target == "sip:agents@127.0.0.1:5080" and transfer.context["intent"] == "agent"
    end = events[-1]
    assert end.kind == "transfer" and end.path == tuple(result.trace.path) and end.stats["frames"] > 0


def test_a_turn_is_emitted_when_its_reply_has_played(demo_events):
    _, events = demo_events
    turns = [e for e in events if isinstance(e, TurnEnded)]
    for turn in turns[1:-1]:     # the start turn has no input; the last one ends with the call
        assert turn.t_reply_ms is not None and turn.t_ms >= turn.t_reply_ms
        assert turn.next_step is not None


def test_the_trace_is_a_fold_over_the_events(demo_events):
    result, events = demo_events
    assert fold(events).to_dict() == result.trace.to_dict()
    lines = [json.dumps(to_dict(e)) for e in events]           # as a per-call JSONL file holds them
    assert fold(from_dict(json.loads(line)) for line in lines).to_dict() == result.trace.to_dict()
    # Cut short (a crash after the first turns): the turns done are all there.
    partial = fold(events[: events.index(next(e for e in events if isinstance(e, TurnEnded) and e.index == 2)) + 1])
    assert [t.index for t in partial.turns] == [0, 1, 2] and partial.outcome is None
