"""Grammar-aware endpointing for the call loop: at the first short pause, end the turn early if
the words so far already answer (an expected phrase, or a slot value that cannot go on), instead
of waiting for the full end-of-speech silence. Mixed into `Call`.
"""

import asyncio
import time
from datetime import date

from ivr.audio.vad import EndReason
from ivr.flow.nlu import Intent, match
from ivr.flow.slots import fills, hint_phrases


class CallEarlyEnd:
    async def _maybe_end_early(self) -> None:
        cfg = self.config
        if not cfg.early_endpoint or not self.listen or not self.listen.expect:
            return
        if self.endpointer.trailing_silence_ms != cfg.vad.early_silence_ms:
            return   # look once per pause, when it reaches the early threshold
        await self._feed()
        t0 = time.perf_counter()
        try:
            hypothesis = await asyncio.to_thread(self.session.peek)
        except Exception:   # only an optimisation: the normal endpoint (and finish) still follow
            self.log.warning("speculative decode failed; waiting for the endpoint", exc_info=True)
            return
        if not self._hypothesis_complete(hypothesis.text):
            return
        self.endpointer.force_end()
        # Whisper's peek is a full decode: keep it as the final; vosk's partial is re-finalised.
        final = None if self.asr.streams_partials else hypothesis
        await self._speech_ended(EndReason.EARLY_MATCH, final, (time.perf_counter() - t0) * 1000)

    def _hypothesis_complete(self, text: str) -> bool:
        """Words that already answer: an expected phrase, or (collecting a slot) a value that
        cannot go on. Digit words alone must not end "four ... eight ... one" at the first pause."""
        listen = self.listen
        if listen.slot is not None:
            globals_ = (Intent("globals", tuple(p for p in listen.expect if p not in self._slot_words())),)
            return fills(listen.slot, text, listen.language, date.today()) or \
                match(text, globals_, threshold=self.config.early_match_score) is not None
        found = match(text, (Intent("expected", listen.expect),), threshold=self.config.early_match_score)
        return found is not None

    def _slot_words(self) -> set[str]:
        return set(hint_phrases(self.listen.slot, self.listen.language))
