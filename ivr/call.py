"""The call loop: frames in, VAD/DTMF/ASR, events to the interpreter, prompts out.

Time is the count of 20 ms frames consumed, never the wall clock: every timer (no-input,
inter-digit, endpoint) runs in frames, so a replay fed as fast as the CPU allows behaves
exactly like the live call. Decoding and synthesis run in worker threads; the loop awaits
them, so a live transport buffers inbound frames meanwhile and the loop catches up.

Split by job: this file (frames, speech, turns), `call_early.py` (early endpoint),
`call_keys.py` (keys, timers), `call_output.py` (prompts, HTTP, transfer, hang-up),
`call_record.py` (the call events it emits; its trace is a fold over them).
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ivr import sentiment
from ivr.asr.base import AsrModel, AsrSession, Transcript
from ivr.audio.dtmf import DtmfDetector
from ivr.audio.frames import FRAME_MS, ms_to_frames, silence
from ivr.audio.playback import Playback
from ivr.audio.vad import Endpointer, EndReason, VadConfig
from ivr.call_early import CallEarlyEnd, decode, on_asr_thread
from ivr.call_keys import CallKeys
from ivr.call_output import CallOutput
from ivr.call_queue import CallQueue
from ivr.call_record import CallRecord
from ivr.call_workers import embed_ahead, on_call_thread
from ivr.callevents import CallBegan, CallEvent, PromptCut, SpeechStarted, flow_version
from ivr.events import (
    CallerHungUp,
    CallStarted,
    EngineFailed,
    Event,
    Hangup,
    Heard,
    Listen,
    Transfer,
)
from ivr.flow.http import HttpClient
from ivr.flow.interpreter import CallState, Interpreter
from ivr.privacy import Redactor
from ivr.trace import CallTrace, Outcome, TraceBuilder, Turn
from ivr.transports.base import Transport

log = logging.getLogger("ivr.call")


class PromptSource(Protocol):
    def get(self, text: str) -> np.ndarray: ...
    def load_recorded(self, path: str) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class CallConfig:
    vad: VadConfig = field(default_factory=VadConfig)
    early_endpoint: bool = True      # end a turn at a short pause if the words match an answer
    early_match_score: float = 0.9
    early_meaning: bool = True       # ...or if the flow would take them at once by meaning (call_early.py)
    speculate_ms: int = 100          # whisper: start decoding at this much trailing silence (call_early.py)
    feed_frames: int = 5             # frames batched per recognizer feed (100 ms)
    inter_digit_ms: int = 3000
    dtmf_mute_ms: int = 200          # VAD ignores the tail of a key tone
    max_call_ms: int = 3_600_000
    live: bool = False               # a live call keeps playing while an HTTP step runs; replay waits for it


class Call(CallRecord, CallEarlyEnd, CallKeys, CallOutput, CallQueue):
    def __init__(self, call_id: str, interpreter: Interpreter, asr: AsrModel, prompts: PromptSource,
                 transport: Transport, config: CallConfig | None = None,
                 caller: str = "", called: str = "", tts_name: str = "", http: HttpClient | None = None,
                 started_at_s: float | None = None, params: dict | None = None,
                 emit: Callable[[CallEvent], None] | None = None, transport_kind: str = "replay",
                 transport_id: str = "", remote: str = "", version: str | None = None, queue_port=None,
                 tap: Callable | None = None) -> None:
        """`emit` receives every call event (the service's hub); the call's own trace is folded
        from the same events. `version`: the flow's version (default: a hash of its files).
        `queue_port`: where a `queue` step waits for an agent (ivr/agents/dispatch.py `QueuePort`)."""
        self.id = call_id
        self.interp = interpreter
        self.asr = asr
        self.prompts = prompts
        self.transport = transport
        self.config = config or CallConfig()
        self.caller, self.called = caller, called
        self.http = http
        self.started_at_s = started_at_s
        self.params = dict(params or {})
        self.fetching: asyncio.Task | None = None
        self.log = logging.LoggerAdapter(log, {"call_id": call_id})
        # Every event this call emits passes through it (`_emit`): sensitive values never leave the loop.
        self.redactor = Redactor.for_flow(interpreter.flow)
        self.tts_name = tts_name
        self.began = CallBegan(call_id=call_id, at_s=time.time(), transport=transport_kind,
                               transport_id=transport_id or call_id, caller=caller, called=called, remote=remote,
                               flow=interpreter.flow.name, language=interpreter.flow.language, asr=asr.name,
                               tts=tts_name, params=dict(self.params),
                               flow_version=flow_version(interpreter.flow.sources or (interpreter.flow.path,))
                               if version is None else version)
        self._builder = TraceBuilder(call_id, interpreter.flow.name, asr.name, tts_name)
        self._emit_out = emit
        self.outcome: Outcome | None = None   # how the call is ending; emitted with CallEnded
        self.ended = False                    # CallEnded emitted
        self.turn_count = 0
        self._started_perf = 0.0
        self.state = CallState()
        self.endpointer = Endpointer(self.config.vad)
        self.dtmf = DtmfDetector()
        self.playback = Playback()
        self.frame = -1                       # index of the frame being handled
        self.listen: Listen | None = None     # what the flow waits for
        self.listening = False                # prompts done (or barged): input counts now
        self.pending_end: Transfer | Hangup | None = None
        self.no_input_at: int | None = None   # frame at which NoInput fires
        self.digits = ""
        self.digit_deadline: int | None = None
        self.mute_until = -1
        self.session: AsrSession | None = None
        self.unfed: list[np.ndarray] = []
        self.ignoring_speech = False
        self.barged = False
        self.turn: Turn | None = None         # the turn whose reply is being prepared (open)
        self.done = False
        self.queue_port = queue_port
        self.queued = None                    # in a queue step (ivr/call_queue.py)
        self.tap = tap                        # tap(inbound, outbound, private) per frame (ivr/recordings.py)
        self.sent: np.ndarray | None = None   # the frame sent this tick (None: silence)

    # ---- the loop ------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Something is still to happen without new caller input (replay uses this)."""
        return not self.done and (self.playback.busy or self.endpointer.in_speech or self.fetching is not None
                                  or self.pending_end is not None or bool(self.digits))

    async def run(self) -> CallTrace:
        self._started_perf = time.perf_counter()
        self._emit(self.began)
        self.turn = self._new_turn("start")
        await self._dispatch(CallStarted(self.caller, self.called, self.params, self.started_at_s))
        max_frames = ms_to_frames(self.config.max_call_ms)
        async for item in self.transport.inbound():
            if isinstance(item, str):
                await self._key(item)
                continue
            self.frame += 1
            if self.fetching is not None and self.fetching.done():
                await self._fetched()
            await self._inbound(item)
            if self.queued is not None:
                await self._queue_tick()
            await self._outbound()
            if self.tap is not None:   # private: at a step collecting a sensitive slot (and its read-back)
                self.tap(item, self.sent, self.state.step in self.redactor.sensitive_steps)
            if self.done:
                break
            if self.frame >= max_frames:
                await self._end(Hangup("max call length"))
                break
        if self.fetching is not None:
            self.fetching.cancel()
        if self.prefetching is not None:
            self.prefetching.cancel()
        self._queue_gone("caller_hangup")
        if not self.done:
            step = self.listen.step if self.listen else None
            await self._dispatch(CallerHungUp())
            # Why the far end went: the transport knows (a stop/BYE, a protocol fault, silence).
            cause = getattr(self.transport, "end_cause", None)
            self._finish_outcome(Outcome(getattr(cause, "kind", "caller_hangup"), step=step,
                                         t_ms=self._ms(self.frame + 1), reason=getattr(cause, "reason", ""),
                                         why=getattr(cause, "why", "")))
        self.finish()
        return self.trace

    async def _inbound(self, frame: np.ndarray) -> None:
        key = self.dtmf.process(frame)
        if key:
            await self._key(key)
        vad = self.endpointer.process(frame)
        if self.frame < self.mute_until:
            self.endpointer.reset()
            await self._check_timers()
            return
        if vad.started:
            await self._speech_started()
        if (self.endpointer.in_speech or vad.ended) and not self.ignoring_speech and vad.audio:
            self.unfed.extend(vad.audio)
            if len(self.unfed) >= self.config.feed_frames:
                await self._feed()
        if vad.ended:
            await self._speech_ended(vad.ended)
        elif self.endpointer.in_speech and self.session and not self.ignoring_speech:
            await self._maybe_end_early()
        await self._check_timers()

    async def _outbound(self) -> None:
        frame = self.playback.next_frame()
        self.sent = frame
        if frame is not None and self.turn and self.turn.t_reply_ms is None:
            self.turn.t_reply_ms = self._ms(self.frame + 1)   # sent once this frame is in
        if not self.playback.busy:
            if self.pending_end is not None:
                await self.transport.send(frame if frame is not None else silence())
                await self._end(self.pending_end)
                return
            if self.listen and not self.listening:
                self._start_listening()
        await self.transport.send(frame if frame is not None else silence())

    # ---- caller speech -------------------------------------------------------------

    def _accepting(self) -> bool:
        return self.listen is not None and not self.digits and (
            self.listening or self.playback.bargeable)

    async def _speech_started(self) -> None:
        if not self._accepting():
            self.ignoring_speech = True
            return
        self.ignoring_speech = False
        self.barged = False
        if not self.listening:      # speaking over a prompt that allows it: barge in
            self.barged = True
            self._emit(PromptCut(**self._now(), texts=tuple(self.playback.clear()), by="speech"))
            await self.transport.clear()
            self._start_listening()
        self._emit(SpeechStarted(**self._now(), step=self.listen.step, barge_in=self.barged))
        self.no_input_at = None
        self.unfed = []
        self._kept_hypothesis(EndReason.NOISE)   # a new utterance: drop the last one's hypotheses
        if self.asr.streams_partials:   # vosk compiles the step's grammar here: off the loop
            self.session = await on_asr_thread(self.asr.session, self.listen.expect)
        else:
            self.session = self.asr.session(self.listen.expect)

    async def _feed(self) -> str | None:
        if not self.session or not self.unfed:
            return None
        audio, self.unfed = np.concatenate(self.unfed), []
        if not self.asr.streams_partials:
            return self.session.feed(audio)   # whisper only buffers: no thread needed
        return await on_asr_thread(self.session.feed, audio)

    async def _speech_ended(self, reason: EndReason, final: Transcript | None = None,
                            peek_ms: float = 0.0) -> None:
        if self.ignoring_speech or self.session is None:
            self.ignoring_speech = False
            self._restart_no_input()
            return
        session, self.session = self.session, None
        kept = self._kept_hypothesis(reason)
        if reason is EndReason.NOISE:
            self.unfed = []
            self._restart_no_input()
            return
        turn = self._new_turn("speech", endpoint=reason.value, barge_in=self.barged,
                    t_speech_start_ms=self._ms(self.endpointer.speech_start_frame),
                    t_speech_end_ms=self._ms(self.endpointer.last_voiced_frame + 1),
                    t_endpoint_ms=self._ms(self.frame + 1))
        t0 = time.perf_counter()
        try:
            if final is None and kept is not None:   # the pause's decode, nothing said since
                final, self.unfed = kept, []
            elif final is None:
                if self.unfed:
                    session.feed(np.concatenate(self.unfed))
                    self.unfed = []
                final = await decode(session, session.finish)
        except Exception as exc:   # an engine failure must not leave the caller in silence
            self.log.exception("recognition failed")
            await self._turn(turn, EngineFailed(f"asr: {exc}"))
            return
        turn.heard, turn.confidence = final.text, final.confidence
        turn.timing["asr_ms"] = round(peek_ms + (time.perf_counter() - t0) * 1000, 1)
        turn.timing.update(final.timing)   # the recognizer's own breakdown (wait for a model copy, decode)
        shown = self.redactor.input_at(turn.step, final.text, answer=self.state.confirming is not None)
        self.log.info("heard %r (confidence %.2f, endpoint %s)", shown, final.confidence, reason.value)
        turn.sentiment = sentiment.score(final.text, self.interp.speaking(self.state).flow.language)   # the call's
        event = Heard(final.text, final.confidence, final.alternatives, turn.sentiment, final.doubt)
        t0 = time.perf_counter()
        try:   # e5 on its own thread when matching will use it, found cached by the interpreter (call_workers.py)
            if await embed_ahead(self.interp, self.state, event) is not None:   # asked (the time even if not needed)
                turn.timing["embed_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        except Exception:   # only an optimisation: the interpreter embeds the sentence itself
            self.log.warning("sentence embedding ahead of matching failed", exc_info=True)
        await self._turn(turn, event)

    # ---- turns and actions ---------------------------------------------------------

    async def _turn(self, turn: Turn, event: Event) -> None:
        self.listen, self.listening, self.no_input_at, self.barged = None, False, None, False
        self._close_turn()
        self.turn = turn
        await self._dispatch(event)
        last = self.state.last
        if last and last.choice and turn.kind != "no_input":
            turn.match = {"choice": last.choice, "score": last.score, "via": last.via}
        if last and last.candidates and turn.kind != "no_input":
            turn.candidates = [dict(c) for c in last.candidates]   # the top 3 the NLU weighed
        turn.next_step = self.listen.step if self.listen else None
        if turn.t_speech_end_ms is not None:
            silence_ms = (turn.t_endpoint_ms or 0) - turn.t_speech_end_ms
            turn.timing["endpoint_silence_ms"] = silence_ms
            turn.latency_ms = round(silence_ms + sum(
                turn.timing.get(k, 0.0) for k in ("asr_ms", "embed_ms", "flow_ms", "tts_ms")), 1)

    async def _dispatch(self, event: Event) -> None:
        t0 = time.perf_counter()
        if isinstance(event, Heard):
            # Matching may embed the sentence (e5, ~12 ms, when not done ahead; ivr.flow.understand): off the loop.
            self.state, actions = await on_call_thread(self.interp.handle, self.state, event)
        else:
            self.state, actions = self.interp.handle(self.state, event)
        # Before any prompt reading a value back is emitted, the redactor knows the value.
        self.redactor.learn_slots(self.state.slots, self.state.sensitive)
        if self.turn is not None:
            self.turn.timing["flow_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        await self._apply(actions)

    @staticmethod
    def _ms(frame: int) -> int:
        return frame * FRAME_MS
