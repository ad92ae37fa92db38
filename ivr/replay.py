"""Replay a recorded caller WAV through the whole pipeline, faster than real time."""

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ivr.asr.base import AsrModel
from ivr.audio.frames import INTERNAL_RATE_HZ
from ivr.audio.wavio import write_stereo
from ivr.call import Call, CallConfig, PromptSource
from ivr.callevents import CallEvent
from ivr.flow.http import HttpClient
from ivr.flow.interpreter import CallState, Interpreter
from ivr.flow.model import Flow
from ivr.trace import CallTrace
from ivr.transports.wavfile import WavReplayTransport, wav_blocks


@dataclass(slots=True)
class ReplayResult:
    trace: CallTrace
    transport: WavReplayTransport
    state: CallState | None = None     # the flow's state at the end (slots: raw, mask before showing)

    def write_stereo(self, path: Path) -> None:
        caller, machine = self.transport.stereo()
        write_stereo(path, caller, machine, INTERNAL_RATE_HZ)


async def replay_samples(samples, flow: Flow, asr: AsrModel, prompts: PromptSource,
                         config: CallConfig | None = None, call_id: str | None = None,
                         tts_name: str = "", caller: str = "replay", env: dict[str, str] | None = None,
                         at_s: float | None = None, emit: Callable[[CallEvent], None] | None = None,
                         language: str | None = None) -> ReplayResult:
    """`env` feeds the flow's HTTP steps; `at_s` is the call's start (business hours); `emit`
    receives the call's events as they happen (the trace is folded from the same events);
    `language`: the call's language when known before it (a flow with several: no language menu)."""
    # `samples`: mono int16 (whole or as chunks), or a transport made for it (e.g. keep_audio=False)
    transport = samples if isinstance(samples, WavReplayTransport) else WavReplayTransport(samples)
    http = HttpClient()
    call = Call(call_id or f"replay-{uuid.uuid4().hex[:8]}", Interpreter(flow, env, language), asr, prompts,
                transport, config, caller=caller, tts_name=tts_name, http=http, started_at_s=at_s, emit=emit)
    transport.keep_going = lambda: call.busy
    try:
        trace = await call.run()
    finally:
        await http.close()
    return ReplayResult(trace, transport, call.state)


def replay_file(wav: Path, flow: Flow, asr: AsrModel, prompts: PromptSource,
                config: CallConfig | None = None, channel: int | None = None,
                tts_name: str = "", caller: str = "replay", env: dict[str, str] | None = None,
                at_s: float | None = None, keep_audio: bool = True, language: str | None = None) -> ReplayResult:
    """Streams the WAV (a block at a time); `keep_audio=False` keeps no audio (no `write_stereo`), so memory
    stays flat for any length of call."""
    samples = WavReplayTransport(wav_blocks(wav, channel, INTERNAL_RATE_HZ), keep_audio=keep_audio)
    # A fixed id keeps the trace of the same input identical from run to run.
    call_id = f"replay-{wav.stem}"
    return asyncio.run(replay_samples(samples, flow, asr, prompts, config, call_id, tts_name, caller, env, at_s,
                                      language=language))
