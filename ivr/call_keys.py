"""The call loop's keys and timers: DTMF entry (max digits, terminator, inter-digit timeout),
barge-in by key, the no-input timer. Mixed into `Call`; time is frames, as everywhere there.
"""

from ivr.audio.frames import ms_to_frames
from ivr.callevents import KeysPressed, PromptCut
from ivr.events import Digits, NoInput


class CallKeys:
    async def _key(self, key: str) -> None:
        if self.queued is not None and self.listen is None:   # on hold: keys go to the queue step
            await self._queue_key(key)
            return
        if self.listen is None or not (self.listening or self.playback.bargeable):
            return
        self._emit(KeysPressed(**self._now(), keys=key, step=self.listen.step))
        self.mute_until = self.frame + ms_to_frames(self.config.dtmf_mute_ms)
        if self.endpointer.in_speech or self.session:   # keys win over speech
            self.endpointer.reset()
            self.session, self.unfed, self.ignoring_speech = None, [], False
        if not self.listening:
            self.barged = True
            self._emit(PromptCut(**self._now(), texts=tuple(self.playback.clear()), by="dtmf"))
            await self.transport.clear()
            self._start_listening()
        self.no_input_at = None
        listen = self.listen
        if listen.max_digits > 1 and key == listen.terminator:
            if self.digits:       # the terminator ends the entry and is not part of it
                await self._submit_digits("terminator")
            return
        self.digits += key
        if len(self.digits) >= listen.max_digits or (key == "#" and listen.max_digits == 1):
            await self._submit_digits("dtmf")
        else:
            self.digit_deadline = self.frame + ms_to_frames(listen.inter_digit_ms or self.config.inter_digit_ms)

    async def _submit_digits(self, endpoint: str) -> None:
        digits, self.digits, self.digit_deadline = self.digits, "", None
        turn = self._new_turn("dtmf", heard=digits, endpoint=endpoint, barge_in=self.barged,
                    t_speech_end_ms=self._ms(self.frame + 1), t_endpoint_ms=self._ms(self.frame + 1))
        await self._turn(turn, Digits(digits))

    async def _check_timers(self) -> None:
        if self.digit_deadline is not None and self.frame >= self.digit_deadline:
            await self._submit_digits("inter_digit_timeout")
        elif (self.no_input_at is not None and self.frame >= self.no_input_at
              and not self.endpointer.in_speech):
            self.no_input_at = None
            turn = self._new_turn("no_input", endpoint="timeout", t_endpoint_ms=self._ms(self.frame + 1))
            await self._turn(turn, NoInput())

    def _start_listening(self) -> None:
        self._close_turn()    # the reply is done (or cut): the turn is complete
        self.listening = True
        self._restart_no_input()

    def _restart_no_input(self) -> None:
        if self.listen and self.listening and not self.digits:
            self.no_input_at = self.frame + ms_to_frames(self.listen.no_input_ms)
