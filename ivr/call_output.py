"""The output half of the call loop: actions from the flow become audio, HTTP and call control.

Plays are rendered (prompt cache or recorded WAV, in a worker thread) into the playback
queue; a Fetch runs the HTTP request (a live call keeps playing meanwhile); Transfer and
Hangup wait until the prompts before them have played, then go to the transport.
"""

import asyncio
import time

import numpy as np

from ivr.audio.frames import INTERNAL_RATE_HZ
from ivr.callevents import PromptPlayed, TransferRequested
from ivr.callevents import TransferFailed as TransferFailedEvent
from ivr.events import Action, EngineFailed, Fetch, Fetched, Hangup, Listen, Play, Transfer
from ivr.flow.http import HttpClient, HttpResult
from ivr.trace import Outcome
from ivr.transports.base import TransferFailed


class CallOutput:
    """Mixed into `Call`; uses its interpreter, state, playback, transport, open turn and `_emit`."""

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
            elif isinstance(action, Transfer | Hangup):
                self.pending_end = action
            elif isinstance(action, Fetch):
                await self._fetch(action)
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
        if play.audio_path:
            return self.prompts.load_recorded(play.audio_path)
        if hasattr(self.prompts, "synthesize") and self.redactor.text(play.text) != play.text:
            # It reads back a card number or a sensitive value: synthesised for this call, never cached.
            return self.prompts.synthesize(play.text)
        return self.prompts.get(play.text)

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
        """Nobody answered at the agent line: say so, then hang up (never silence, never a loop)."""
        self.log.warning("transfer to %s failed: %s", action.target, why)
        self._emit(TransferFailedEvent(**self._now(), target=action.target, why=why))
        self.outcome = Outcome("transfer_failed", action.target, why, self.outcome.step,
                               self._ms(self.frame + 1), dict(action.context))
        try:
            apology = await asyncio.to_thread(self.prompts.get, self.interp.defaults["transfer_failed"])
            self.playback.push(apology, False, self.interp.defaults["transfer_failed"])
            if self.turn is not None:
                self.turn.said.append(self.interp.defaults["transfer_failed"])
        except Exception:
            self.log.exception("could not synthesise the apology")
        self.done, self.pending_end = False, Hangup("transfer failed")

    def _finish_outcome(self, outcome: Outcome) -> None:
        """How the call ends; `Call.finish` emits it (with the path) once the loop is over."""
        self.outcome = outcome
