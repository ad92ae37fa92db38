"""The output half of the call loop: actions from the flow become audio, HTTP and call control.

Plays are rendered (prompt cache or recorded WAV, in a worker thread) into the playback
queue; a Fetch runs the HTTP request (a live call keeps playing meanwhile); Transfer and
Hangup wait until the prompts before them have played, then go to the transport.

Prefetch: when the flow asks a confirmation ("That's 4 8 1 5 1 6. Is that right?"), the call
loop plays the likely answer ahead on a copy of the state (the interpreter is pure: a "yes" key,
no NLU), runs the HTTP GET that answer would make (a live call only: a GET has no side effect),
and has the prompt cache synthesise the prompts that follow while the caller still hears the
question, so the templated answer ("Your order ... arrives on Friday") is ready when they say yes.
Nothing of it reaches the call's state, events or records.
"""

import asyncio
import copy
import time
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from ivr.audio.frames import INTERNAL_RATE_HZ
from ivr.call_workers import on_call_thread
from ivr.callevents import PromptPlayed, TransferRequested
from ivr.callevents import TransferFailed as TransferFailedEvent
from ivr.events import (
    Action,
    Digits,
    EngineFailed,
    EnterQueue,
    Fetch,
    Fetched,
    Hangup,
    Listen,
    Play,
    RequestCallback,
    Transfer,
    TransferError,
)
from ivr.flow.http import HttpClient, HttpResult
from ivr.lang import base_language
from ivr.trace import Outcome
from ivr.transports.base import TransferFailed

# A reply starts this long before its first audible sample: piper puts ~60 ms of silence before every
# prompt, which the caller heard as latency after each answer (measured, docs/BENCHMARKS.md).
LEAD_IN_MS = 10
AUDIBLE = 64   # |sample| (int16, about -54 dBFS): above line noise and a synthetic voice's dither


def trim_lead_in(samples: np.ndarray, lead_in_ms: int = LEAD_IN_MS) -> np.ndarray:
    """`samples` without the silence before its first audible sample, but `lead_in_ms` of it."""
    loud = np.flatnonzero(np.abs(samples) > AUDIBLE) if len(samples) else samples
    if not len(loud):
        return samples   # all silence (a recorded pause): played as it is
    return samples[max(0, int(loud[0]) - lead_in_ms * INTERNAL_RATE_HZ // 1000):]


class CallOutput:
    """Mixed into `Call`; uses its interpreter, state, playback, transport, open turn and `_emit`.

    A flow with several languages: `voices` and `recognizers` map each base language to its prompt
    source and ASR model (the service fills them); a Play names its language, a Listen its own."""

    voices: Mapping[str, object] = MappingProxyType({})
    recognizers: Mapping[str, object] = MappingProxyType({})

    prefetching: asyncio.Task | None = None
    PREFETCH_HOPS = 3    # Fetch -> Fetched rounds played ahead at most

    async def _apply(self, actions: list[Action]) -> None:
        t0 = time.perf_counter()
        if any(isinstance(a, Listen) for a in actions) and self.state.confirming is not None:
            self._prefetch_confirmed()
        for action in actions:
            if isinstance(action, Play):
                try:
                    samples = self._in_memory(action)   # most prompts: no thread hop behind busy workers
                    if samples is None:
                        samples = await on_call_thread(self._render, action)
                except Exception as exc:
                    self.log.exception("prompt synthesis failed: %r", action.text)
                    if not isinstance(self.pending_end, Transfer):
                        self.state, fallback = self.interp.handle(self.state, EngineFailed(f"tts: {exc}"))
                        await self._apply([a for a in fallback if not isinstance(a, Play)])
                    return
                if not self.playback.busy:   # a reply starts: the caller waits through its leading silence
                    samples = trim_lead_in(samples)
                self.playback.push(samples, action.barge_in, action.text)
                self._emit(PromptPlayed(**self._now(), text=action.text, audio_path=action.audio_path,
                                        barge_in=action.barge_in, duration_ms=len(samples) * 1000 // INTERNAL_RATE_HZ))
                if self.turn is not None:
                    self.turn.said.append(action.text)
            elif isinstance(action, Listen):
                self.listen, self.listening = action, False
                if self.recognizers:   # the recognizer of the language the flow listens in now
                    self.asr = self._recognizer(action)
            elif isinstance(action, Transfer | Hangup):
                self.pending_end = action
            elif isinstance(action, Fetch):
                await self._fetch(action)
            elif isinstance(action, EnterQueue):
                await self._queue_enter(action)
            elif isinstance(action, RequestCallback):
                await self._queue_callback(action.number)
        if self.turn is not None:
            self.turn.timing["tts_ms"] = round((time.perf_counter() - t0) * 1000, 1)

    def _prefetch_confirmed(self) -> None:
        if self.prefetching is not None and not self.prefetching.done():
            self.prefetching.cancel()
        self.prefetching = asyncio.ensure_future(self._prefetch(copy.deepcopy(self.state)))

    async def _prefetch(self, state) -> None:
        """Play a "yes" ahead on a copy of the state; synthesise the prompts it leads to."""
        try:
            state, actions = await on_call_thread(self.interp.handle, state, Digits("1"))
            for _ in range(self.PREFETCH_HOPS):
                started = []
                for play in actions:
                    if isinstance(play, Play) and not play.audio_path and self.redactor.text(play.text) == play.text:
                        prompts = self._voice(play)   # never a prompt reading a sensitive value back
                        if hasattr(prompts, "prefetch"):
                            started += prompts.prefetch([play.text])
                await asyncio.gather(*(asyncio.wrap_future(f) for f in started))
                fetch = next((a for a in actions if isinstance(a, Fetch)), None)
                if fetch is None or fetch.request.method != "GET" or not self.config.live:
                    return
                if self.http is None:
                    self.http = HttpClient()
                result = await self.http.execute(fetch.request)
                state, actions = await on_call_thread(self.interp.handle, state, Fetched(result))
        except asyncio.CancelledError:
            raise
        except Exception:   # only an optimisation: the real answer renders its prompts itself
            self.log.warning("prompt prefetch failed", exc_info=True)

    async def _fetch(self, action: Fetch) -> None:
        if self.http is None:
            self.http = HttpClient()
        self.fetching = asyncio.ensure_future(self.http.execute(action.request))
        if not self.config.live:   # replay: the answer arrives at the same frame every run
            await asyncio.wait([self.fetching])
            await self._fetched()

    async def _fetched(self) -> None:
        task, self.fetching = self.fetching, None
        try:
            result = task.result()
        except Exception as exc:   # execute() reports faults as results; this is a bug guard
            self.log.exception("HTTP step crashed")
            result = HttpResult(False, None, None, "connect", f"client error: {exc}", 0, 1)
        self.log.info("HTTP %s -> %s", result.status, "ok" if result.ok else result.error)
        if self.turn is not None:
            self.turn.timing["http_ms"] = result.elapsed_ms
        await self._dispatch(Fetched(result))

    def _in_memory(self, play: Play) -> np.ndarray | None:
        prompts = self._voice(play)
        if play.audio_path or not hasattr(prompts, "in_memory") or self.redactor.text(play.text) != play.text:
            return None
        return prompts.in_memory(play.text)

    def _render(self, play: Play) -> np.ndarray:
        prompts = self._voice(play)
        if play.audio_path:
            return prompts.load_recorded(play.audio_path)
        if hasattr(prompts, "synthesize") and self.redactor.text(play.text) != play.text:
            # It reads back a card number or a sensitive value: synthesised for this call, never cached.
            return prompts.synthesize(play.text)
        return prompts.get(play.text)

    def _recognizer(self, listen: Listen):
        """The recognizer of the Listen's language. A language menu (`languages`) is heard with
        whisper's language id when a multilingual whisper serves one of its languages: it names
        the language, then that language's recognizer transcribes (ivr/asr/language_id.py)."""
        own = self.recognizers.get(base_language(listen.language, ""), self.asr)
        if len(listen.languages) > 1:
            menu = {base_language(t, ""): self.recognizers.get(base_language(t, "")) for t in listen.languages}
            detector = next((a for a in menu.values() if getattr(a, "multilingual", False)), None)
            if detector is not None and all(menu.values()):
                from ivr.asr.language_id import LanguageIdAsr

                return LanguageIdAsr(detector, menu)
        return own

    def _voice(self, play: Play):
        """The voice of the Play's language; a Play without one speaks the call's language now."""
        if not self.voices:
            return self.prompts
        language = play.language or self.interp.speaking(self.state).flow.language
        return self.voices.get(base_language(language, ""), self.prompts)

    async def _end(self, action: Transfer | Hangup) -> None:
        self.pending_end, self.done = None, True
        step = self.state.path[-1] if self.state.path else None
        if isinstance(action, Transfer):
            self.log.info("transfer to %s (%s)", action.target, action.reason)
            self._finish_outcome(Outcome("transfer", action.target, action.reason, step,
                                         self._ms(self.frame + 1), dict(action.context)))
            self._emit(TransferRequested(**self._now(), target=action.target, reason=action.reason, step=step,
                                         context=dict(action.context)))
            try:
                await self.transport.transfer(action.target, action.reason, action.context)
            except TransferFailed as exc:
                await self._transfer_failed(action, str(exc))
        else:
            self.log.info("hang up (%s)", action.reason)
            # The hang-up after a failed transfer keeps "transfer_failed" as the call's outcome.
            if not (self.outcome and self.outcome.kind == "transfer_failed"):
                self._finish_outcome(Outcome("hangup", None, action.reason, step, self._ms(self.frame + 1)))
            await self.transport.hangup(action.reason)

    async def _transfer_failed(self, action: Transfer, why: str) -> None:
        """Nobody answered at the agent line: the flow decides (the transfer step's `on_fail`, else
        the interpreter's apology and goodbye); never silence, never a loop."""
        self.log.warning("transfer to %s failed: %s", action.target, why)
        self._emit(TransferFailedEvent(**self._now(), target=action.target, why=why))
        self.outcome = Outcome("transfer_failed", action.target, why, self.outcome.step,
                               self._ms(self.frame + 1), dict(action.context))
        self.done, self.pending_end = False, None
        await self._dispatch(TransferError(why))
        if (self.pending_end is None and self.listen is None and self.queued is None and self.fetching is None
                and not self.done):       # the flow went nowhere: never leave the caller in silence
            try:
                text = self.interp.defaults["transfer_failed"]
                self.playback.push(await on_call_thread(self.prompts.get, text), False, text)
                if self.turn is not None:
                    self.turn.said.append(text)
            except Exception:
                self.log.exception("could not synthesise the apology")
            self.pending_end = Hangup("transfer failed")

    def _finish_outcome(self, outcome: Outcome) -> None:
        """How the call ends; `Call.finish` emits it (with the path) once the loop is over."""
        self.outcome = outcome
