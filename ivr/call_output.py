"""The output half of the call loop: actions from the flow become audio, HTTP and call control.

Plays are rendered (prompt cache or recorded WAV, in a worker thread) into the playback
queue; a Fetch runs the HTTP request (a live call keeps playing meanwhile); Transfer and
Hangup wait until the prompts before them have played, then go to the transport.
"""

import asyncio
import time
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from ivr.audio.frames import INTERNAL_RATE_HZ
from ivr.callevents import PromptPlayed, TransferRequested
from ivr.callevents import TransferFailed as TransferFailedEvent
from ivr.events import (
    Action,
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


class CallOutput:
    """Mixed into `Call`; uses its interpreter, state, playback, transport, open turn and `_emit`.

    A flow with several languages: `voices` and `recognizers` map each base language to its prompt
    source and ASR model (the service fills them); a Play names its language, a Listen its own."""

    voices: Mapping[str, object] = MappingProxyType({})
    recognizers: Mapping[str, object] = MappingProxyType({})

    async def _apply(self, actions: list[Action]) -> None:
        t0 = time.perf_counter()
        for action in actions:
            if isinstance(action, Play):
                try:
                    samples = await asyncio.to_thread(self._render, action)
                except Exception as exc:
                    self.log.exception("prompt synthesis failed: %r", action.text)
                    if not isinstance(self.pending_end, Transfer):
                        self.state, fallback = self.interp.handle(self.state, EngineFailed(f"tts: {exc}"))
                        await self._apply([a for a in fallback if not isinstance(a, Play)])
                    return
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

    def _render(self, play: Play) -> np.ndarray:
        prompts = self._voice(play)
        if play.audio_path:
            return prompts.load_recorded(play.audio_path)
        if hasattr(prompts, "synthesize") and self.redactor.text(play.text) != play.text:
            # It reads back a card number or a sensitive value: synthesised for this call, never cached.
            return prompts.synthesize(play.text)
        return prompts.get(play.text)

    def _recognizer(self, listen: Listen):
        """A language menu (`languages`) hears with a multilingual recognizer when one serves any of
        them (whisper base writes Mandarin in characters and English in Latin letters, so the script
        tells them apart; an English-only model turns Mandarin into English-looking words)."""
        own = self.recognizers.get(base_language(listen.language, ""), self.asr)
        if len(listen.languages) > 1 and not getattr(own, "multilingual", False):
            for tag in listen.languages:
                asr = self.recognizers.get(base_language(tag, ""))
                if getattr(asr, "multilingual", False):
                    return asr
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
                self.playback.push(await asyncio.to_thread(self.prompts.get, text), False, text)
                if self.turn is not None:
                    self.turn.said.append(text)
            except Exception:
                self.log.exception("could not synthesise the apology")
            self.pending_end = Hangup("transfer failed")

    def _finish_outcome(self, outcome: Outcome) -> None:
        """How the call ends; `Call.finish` emits it (with the path) once the loop is over."""
        self.outcome = outcome
