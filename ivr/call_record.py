"""The call's record half: turns opened and closed, call events emitted, the end of the call.

Mixed into `Call`. The call loop never writes its trace: it emits call events
(`ivr/callevents.py`) through `_emit`, which folds them into the call's own trace
(`TraceBuilder`) and hands them to the service's hub. A turn is emitted (`TurnEnded`) once it
is complete: its reply played (listening again), or the call over.
"""

import time

from ivr.callevents import CallEnded, CallEvent
from ivr.trace import CallTrace, Outcome, Turn


class CallRecord:
    @property
    def trace(self) -> CallTrace:
        """The call's trace so far: a fold over the events it emitted."""
        return self._builder.trace

    def _emit(self, event: CallEvent) -> None:
        try:   # ivr.privacy: the trace, the hub and every subscriber only ever see redacted events
            event = self.redactor.event(event)
        except Exception:
            self.log.exception("redacting %s failed: event dropped", type(event).__name__)
            return
        self._builder.apply(event)
        if self._emit_out is not None:
            try:
                self._emit_out(event)
            except Exception:   # a listener's bug must not end the call
                self.log.exception("emitting %s failed", type(event).__name__)

    def _now(self) -> dict:
        return {"call_id": self.id, "t_ms": self._ms(max(self.frame + 1, 0)), "at_s": time.time()}

    def _new_turn(self, kind: str, **fields_) -> Turn:
        turn = Turn(self.turn_count, kind, self.listen.step if self.listen else None, **fields_)
        self.turn_count += 1
        return turn

    def _close_turn(self) -> None:
        """The open turn is complete (its reply is done): tell everyone."""
        if self.turn is not None:
            turn, self.turn = self.turn, None
            now = self._now()
            self._emit(turn.event(now["call_id"], now["t_ms"], now["at_s"]))

    def finish(self, kind: str = "caller_hangup", reason: str = "") -> None:
        """Emit CallEnded once (the open turn first). `kind`/`reason` count only if the call had
        not decided how it ends: the service ends calls it had to stop (shutdown, error) this way."""
        if self.ended:
            return
        self._queue_gone("caller_hangup" if kind == "caller_hangup" else kind)
        if self.outcome is None:
            self.outcome = Outcome(kind, reason=reason, step=self.listen.step if self.listen else None,
                                   t_ms=self._ms(self.frame + 1))
        self._close_turn()
        self.ended = True
        o = self.outcome
        self._emit(CallEnded(call_id=self.id, t_ms=o.t_ms, at_s=time.time(), kind=o.kind, target=o.target,
                             reason=o.reason, step=o.step, context=dict(o.context), why=o.why,
                             path=tuple(self.state.path), stats=self._stats()))
        self.redactor.close()

    def _stats(self) -> dict:
        wall_s = time.perf_counter() - self._started_perf if self._started_perf else 0.0
        audio_ms = self._ms(self.frame + 1)
        return {"frames": self.frame + 1, "audio_ms": audio_ms, "wall_ms": round(wall_s * 1000, 1),
                "speed_x": round(audio_ms / 1000 / wall_s, 1) if wall_s else None}
