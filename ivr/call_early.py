"""Grammar-aware endpointing for the call loop: at the first short pause, end the turn early if
the words so far already answer (an expected phrase, or a slot value that cannot go on), instead
of waiting for the full end-of-speech silence. Mixed into `Call`.

Speculative decode (whisper, which has no partials): at `speculate_ms` of trailing silence the
utterance so far is decoded in the background while the loop goes on confirming the pause; at
`early_silence_ms` the loop takes that hypothesis (usually ready by then) instead of starting a
decode, so the caller waits for the silence, not silence + decode. Speech that resumes before the
pause is confirmed discards it. The hypothesis depends only on the frames before it started, so a
replay gets the same words as the live call. A hypothesis that does not answer yet is kept: when
the normal endpoint follows with no voiced frame since, it is the final transcript (same audio,
only more silence), so that turn does not wait for a second decode either.

Recognizer work runs on its own thread pool (`ASR_POOL`), not the default executor that prompt
rendering and intent matching share: a burst of decodes waiting for a free model copy must not
hold the threads the finished callers' matching and prompts need.
"""

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date

from ivr.asr.base import Transcript
from ivr.audio.vad import EndReason
from ivr.flow.nlu import Intent, match
from ivr.flow.slots import fills, hint_phrases

# One worker per core: whisper runs one single-threaded model copy per core (ivr/asr/whisper.py).
ASR_POOL = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="ivr-asr")


_asr_jobs = 0   # recognizer jobs submitted and not finished (this process, all calls)


async def on_asr_thread(fn, *args):
    """Run recognizer work (session start, feed, decode) on the recognizer's own threads."""
    global _asr_jobs
    _asr_jobs += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(ASR_POOL, fn, *args)
    finally:
        _asr_jobs -= 1


def _asr_backlog() -> bool:
    """Every recognizer thread is taken: work started now would only queue."""
    return _asr_jobs >= ASR_POOL._max_workers


def _forget(future: asyncio.Future) -> None:
    """A discarded speculation: fetch its outcome so a failure is not reported as never retrieved."""
    if not future.cancelled():
        future.exception()


def _discard(future: asyncio.Future | None) -> None:
    """Speech went on: a decode still queued is dropped (it would delay other callers' decodes)."""
    if future is not None:
        future.cancel()
        future.add_done_callback(_forget)


class CallEarlyEnd:
    # (last voiced frame, the audio up to the pause, its decode or None while the recognizer is busy)
    _speculation: tuple[int, object, asyncio.Future | None] | None = None
    _hypothesis: tuple[int, Transcript] | None = None               # a peek that did not answer yet

    async def _maybe_end_early(self) -> None:
        cfg = self.config
        if not cfg.early_endpoint or not self.listen or not self.listen.expect:
            return
        silence_ms = self.endpointer.trailing_silence_ms
        if silence_ms == cfg.speculate_ms and silence_ms < cfg.vad.early_silence_ms:
            await self._feed()
            self._speculate()
            return
        if silence_ms != cfg.vad.early_silence_ms:
            return   # look once per pause, when it reaches the early threshold
        await self._feed()
        t0 = time.perf_counter()
        speculation, self._speculation = self._speculation, None
        try:
            if speculation is not None and speculation[0] == self.endpointer.last_voiced_frame:
                # the words of the audio up to speculate_ms, whether decoded ahead or only now
                hypothesis = await (speculation[2] or on_asr_thread(speculation[1].peek))
            else:
                if speculation is not None:
                    _discard(speculation[2])
                hypothesis = await on_asr_thread(self.session.peek)
        except Exception:   # only an optimisation: the normal endpoint (and finish) still follow
            self.log.warning("speculative decode failed; waiting for the endpoint", exc_info=True)
            return
        if not self._hypothesis_complete(hypothesis.text):
            if not self.asr.streams_partials:
                self._hypothesis = (self.endpointer.last_voiced_frame, hypothesis)
            return
        self.endpointer.force_end()
        # Whisper's peek is a full decode: keep it as the final; vosk's partial is re-finalised.
        final = None if self.asr.streams_partials else hypothesis
        await self._speech_ended(EndReason.EARLY_MATCH, final, (time.perf_counter() - t0) * 1000)

    def _speculate(self) -> None:
        """Decode what was said so far in the background (whisper: a copy of the buffered audio).
        With every recognizer thread taken it only keeps the copy: a decode started now would wait
        in the queue anyway, and one discarded when speech resumes would delay other callers. The
        early endpoint decodes that copy then, so the words never depend on the machine's load."""
        fork = getattr(self.session, "fork", None)
        if self.asr.streams_partials or fork is None:
            return
        if self._speculation is not None:
            _discard(self._speculation[2])
        snapshot = fork()
        future = None if _asr_backlog() else asyncio.ensure_future(on_asr_thread(snapshot.peek))
        self._speculation = (self.endpointer.last_voiced_frame, snapshot, future)

    def _kept_hypothesis(self, reason: EndReason) -> Transcript | None:
        """At the normal endpoint: the pause's hypothesis if nothing was said after it."""
        kept, self._hypothesis = self._hypothesis, None
        if self._speculation is not None:
            _discard(self._speculation[2])
            self._speculation = None
        if kept is not None and reason is EndReason.SILENCE and kept[0] == self.endpointer.last_voiced_frame:
            return kept[1]
        return None

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
