"""A transfer nobody answers: the caller hears an apology and the call ends, never silence."""

import asyncio

import pytest

from ivr.call import Call
from ivr.flow.interpreter import Interpreter
from ivr.transports.base import TransferFailed
from ivr.transports.wavfile import WavReplayTransport

pytestmark = pytest.mark.slow


class UnreachableAgents(WavReplayTransport):
    async def transfer(self, target, reason, context):
        raise TransferFailed("REFER refused: 603 Decline; agent line busy (486)")


def test_failed_transfer_apologises_and_hangs_up(demo_flow, whisper_asr, prompt_cache, line_audio):
    transport = UnreachableAgents(line_audio([("pause", 2500), ("keys", "0"), ("pause", 9000)]))
    call = Call("t", Interpreter(demo_flow), whisper_asr, prompt_cache, transport)
    transport.keep_going = lambda: call.busy
    trace = asyncio.run(call.run())
    assert trace.outcome.kind == "transfer_failed" and "603" in trace.outcome.reason
    said = [s for t in trace.turns for s in t.said]
    assert said[-1].startswith("Sorry, nobody can take your call right now")
    assert [e[1] for e in transport.events][-1] == "hangup"      # after the apology played
