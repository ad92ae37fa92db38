"""The call loop in a flow's `queue` step: hold music, announcements, keys, the agent's answer.

Mixed into `Call`. On `EnterQueue` the call joins through the queue port the service gave it
(`queue_port.join(call_id, request)` -> a ticket, or None when nobody is logged in); the call
loop never imports the service. While it waits, every frame:

- hold music is played from a loop, one second at a time, paced by audio time like any prompt
  (no barge-in); no recognizer runs (speech is ignored) unless the flow listens (the callback
  number's yes/no); keys go to the flow as `Digits` (the callback key);
- every `announce_every_ms` of audio the flow gets `QueueUpdate(position, wait_s, waited_ms)`
  and says it (if nobody is logged in any more: `QueueLeft("empty")`);
- at `max_wait_ms`: `QueueLeft("timeout")`; the ticket's `answered` future done: the caller is
  handed to the agent (`ticket.connect()`: SIP bridge or the bridges' transfer hook) and the
  call loop ends, as after any transfer.
Call events: `QueueJoined`, `QueueLeft`, `CallbackRequested` (the dispatcher emits the agents').
"""

import asyncio
from dataclasses import dataclass

import numpy as np

from ivr.audio.frames import INTERNAL_RATE_HZ, ms_to_frames
from ivr.call_workers import on_call_thread
from ivr.callevents import CallbackRequested, KeysPressed, PromptCut, PromptPlayed, QueueJoined, TransferRequested
from ivr.callevents import QueueLeft as QueueLeftEvent
from ivr.events import Digits, EnterQueue, Play, QueueLeft, QueueUpdate
from ivr.trace import Outcome

MUSIC_CHUNK_SAMPLES = INTERNAL_RATE_HZ       # one second of hold music queued at a time
MUSIC = "(hold music)"


@dataclass(slots=True)
class QueueWait:
    action: EnterQueue
    joined_frame: int
    next_announce: int
    deadline: int
    ticket: object = None
    music: np.ndarray | None = None
    music_pos: int = 0
    joined: bool = False
    rendering: asyncio.Future | None = None   # an announcement being synthesised (music goes on meanwhile)


class CallQueue:
    async def _queue_enter(self, action: EnterQueue) -> None:
        music = None
        if action.hold_music:
            try:
                music = await on_call_thread(self.prompts.load_recorded, action.hold_music)
            except Exception:
                self.log.exception("hold music %s unusable: waiting in silence", action.hold_music)
        start = self.frame + 1
        self.queued = QueueWait(action, start, start + ms_to_frames(action.announce_every_ms),
                                start + ms_to_frames(action.max_wait_ms), music=music)

    def _queue_request(self, action: EnterQueue) -> dict:
        """Everything the agent's screen pop needs, from the flow's context and the call so far."""
        ctx = dict(action.context)
        caller = ctx.get("caller") if isinstance(ctx.get("caller"), dict) else {}
        transcript, faq = [], []
        for turn in [*self.trace.turns, *([self.turn] if self.turn is not None else [])]:   # with the open one
            if turn.kind in ("speech", "dtmf", "no_input", "start"):
                transcript.append({"step": turn.step, "kind": turn.kind, "heard": turn.heard,
                                   "said": list(turn.said), "sentiment": turn.sentiment})
            faq += [dict(c) for c in turn.candidates if c.get("group") == "faq" or c.get("signal") == "faq"]
        return {"queue": action.queue, "t_ms": self._ms(self.frame + 1), "caller": self.caller,
                "caller_name": str(caller.get("name") or ""), "language": self.interp.flow.language,
                "intent": str(ctx.get("intent") or ""), "reason": action.reason, "context": ctx,
                "slots": dict(ctx.get("slots") or {}), "path": list(self.state.path), "transcript": transcript,
                "faq": faq}

    async def _queue_tick(self) -> None:
        q = self.queued
        if q is None:
            return
        if not q.joined:
            q.joined = True
            await self._queue_join(q)
            return
        ticket = q.ticket
        if q.rendering is not None and q.rendering.done():
            self._queue_announce(q)
        if ticket.answered.done():
            await self._queue_answered(q)
        elif self.frame >= q.deadline:
            await self._queue_leave("timeout")
        elif self._queue_speaking() or self.listen is not None:
            # `announce_every` is the music between announcements: counted from the end of the last one
            q.next_announce = self.frame + ms_to_frames(q.action.announce_every_ms)
        elif self.frame >= q.next_announce:
            q.next_announce = self.frame + ms_to_frames(q.action.announce_every_ms)
            if not ticket.staffed():
                await self._queue_leave("empty")
            else:
                await self._queue_update(q, QueueUpdate(ticket.position() or 1, ticket.wait_s(), self._waited_ms(q)))
        if self.queued is not None and q.music is not None and self.listen is None and not self.playback.busy:
            end = q.music_pos + MUSIC_CHUNK_SAMPLES
            chunk = q.music[q.music_pos:end]
            if len(chunk) < MUSIC_CHUNK_SAMPLES:     # the loop: the track's start follows its end
                chunk = np.concatenate([chunk, np.resize(q.music, MUSIC_CHUNK_SAMPLES - len(chunk))])
            q.music_pos = end % len(q.music)
            self.playback.push(chunk, False, MUSIC)

    async def _queue_join(self, q: QueueWait) -> None:
        action = q.action
        request = self._queue_request(action)
        port = getattr(self, "queue_port", None)
        ticket = port.join(self.id, request) if port is not None else None
        if ticket is None:
            self.log.info("queue %s: %s", action.queue, "nobody logged in" if port else "no queue service here")
            await self._queue_leave("empty" if port is not None else "failed")
            return
        q.ticket = ticket
        position, wait_s = ticket.position() or 1, ticket.wait_s()
        self._emit(QueueJoined(**self._now(), queue=action.queue, caller=self.caller,
                               caller_name=request["caller_name"], language=request["language"],
                               intent=request["intent"], reason=action.reason, step=action.step, position=position,
                               wait_s=wait_s, context={k: request[k] for k in ("slots", "path")}))
        await self._queue_update(q, QueueUpdate(position, wait_s, 0))

    async def _queue_update(self, q: QueueWait, update: QueueUpdate) -> None:
        """The flow's announcement, synthesised off the loop while the music keeps playing."""
        self.state, actions = self.interp.handle(self.state, update)
        plays = [a for a in actions if isinstance(a, Play)]
        if plays:
            q.rendering = asyncio.ensure_future(on_call_thread(lambda: [(p, self._render(p)) for p in plays]))
            if not self.config.live:      # a replay waits for it: the same frames every run
                await asyncio.wait([q.rendering])
                self._queue_announce(q)
        rest = [a for a in actions if not isinstance(a, Play)]
        if rest:
            await self._apply(rest)

    def _queue_announce(self, q: QueueWait) -> None:
        task, q.rendering = q.rendering, None
        if self.listen is not None:        # the flow is asking something now: the announcement is stale
            return
        try:
            rendered = task.result()
        except Exception:
            self.log.exception("queue announcement could not be synthesised: the music goes on")
            return
        for play, samples in rendered:
            self.playback.push(samples, False, play.text)
            if self.turn is not None:
                self.turn.said.append(play.text)
            self._emit(PromptPlayed(**self._now(), text=play.text, audio_path=play.audio_path, barge_in=False,
                                    duration_ms=len(samples) * 1000 // INTERNAL_RATE_HZ))

    def _queue_speaking(self) -> bool:
        q = self.queued
        return (q is not None and q.rendering is not None) or any(text != MUSIC for text in self.playback.texts)

    def _waited_ms(self, q: QueueWait) -> int:
        return self._ms(self.frame + 1 - q.joined_frame)

    async def _queue_key(self, key: str) -> None:
        self._emit(KeysPressed(**self._now(), keys=key, step=self.queued.action.step))
        self.queued.rendering = None       # an announcement still being synthesised is not played after the key
        self.mute_until = self.frame + ms_to_frames(self.config.dtmf_mute_ms)   # the tone's tail is not speech
        cut = [t for t in self.playback.clear() if t != MUSIC]     # a key on hold cuts the music and announcement
        if cut:
            self._emit(PromptCut(**self._now(), texts=tuple(cut), by="dtmf"))
        await self.transport.clear()
        turn = self._new_turn("dtmf", heard=key, endpoint="dtmf", t_endpoint_ms=self._ms(self.frame + 1))
        await self._turn(turn, Digits(key))

    async def _queue_leave(self, reason: str, agent: str = "") -> None:
        """Out of the queue for `reason` (not an answer): tell the dispatcher, record it, tell the flow."""
        q, self.queued = self.queued, None
        if q is None:
            return
        self._queue_out(q, reason, agent)
        self.playback.clear()
        await self._dispatch(QueueLeft(reason, agent))

    def _queue_out(self, q: QueueWait, reason: str, agent: str = "") -> None:
        if q.ticket is not None and reason != "answered":
            q.ticket.leave(reason)
        self._emit(QueueLeftEvent(**self._now(), queue=q.action.queue, reason=reason, waited_ms=self._waited_ms(q),
                                  agent=agent))

    async def _queue_answered(self, q: QueueWait) -> None:
        agent = q.ticket.agent
        address = getattr(agent, "address", "")
        self.queued = None
        self.playback.clear()
        await self.transport.clear()
        self._queue_out(q, "answered", getattr(agent, "name", ""))
        step = q.action.step
        context = {**q.action.context, "agent": getattr(agent, "name", "")}
        self._emit(TransferRequested(**self._now(), target=address, reason=q.action.reason, step=step,
                                     context=context))
        self._finish_outcome(Outcome("transfer", address, q.action.reason, step, self._ms(self.frame + 1), context))
        if await q.ticket.connect():
            self.done = True
            await self._dispatch(QueueLeft("answered", getattr(agent, "name", "")))
            return
        self.log.warning("the agent answered but the caller could not be handed over")
        self.outcome = None
        await self._dispatch(QueueLeft("failed"))

    async def _queue_callback(self, number: str) -> None:
        q, self.queued = self.queued, None
        if q is None:
            return
        callback_id = ""
        if q.ticket is not None:
            callback_id = q.ticket.callback(number)
        else:
            self.log.warning("callback to %s asked for, but there is no queue service to keep it", number)
        self.playback.clear()
        self._emit(CallbackRequested(**self._now(), queue=q.action.queue, number=number, callback_id=callback_id,
                                     caller=self.caller, language=self.interp.flow.language, reason=q.action.reason,
                                     waited_ms=self._waited_ms(q)))
        self._emit(QueueLeftEvent(**self._now(), queue=q.action.queue, reason="callback",
                                  waited_ms=self._waited_ms(q)))

    def _queue_gone(self, reason: str) -> None:
        """The call ends while queued (the caller hung up, the service stops): give the place up."""
        q, self.queued = getattr(self, "queued", None), None
        if q is not None and q.joined:
            self._queue_out(q, reason)

