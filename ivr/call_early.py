"""Grammar-aware endpointing for the call loop: at the first short pause, end the turn early if
the words so far already answer (an expected phrase, a slot value that cannot go on, or words the flow
would take at once by meaning), instead of waiting for the full end-of-speech silence. Mixed into `Call`.

"By meaning": a caller who words a request their own way ("my parcel never arrived") matches no
expected phrase, and used to wait the full end-of-speech silence (600 ms against 200: p50 677 ms
from the last word to the reply against 260 for the phrase itself, docs/BENCHMARKS.md). At the
early pause the interpreter is asked, as a pure function, what it would do with the words: if it
takes a choice, a global or an FAQ answer at once (no "did you mean", no no-match), the turn ends
there. The e5 vector it computed is cached, so the turn itself does not embed again. A caller
who goes on after such a pause barges in on the reply, as after an expected phrase.

Speculative decode (whisper, which has no partials): at `speculate_ms` of trailing silence the
utterance so far is decoded in the background while the loop goes on confirming the pause; at
`early_silence_ms` the loop takes that hypothesis (usually ready by then) instead of starting a
decode, so the caller waits for the silence, not silence + decode. Speech that resumes before the
pause is confirmed discards it. The hypothesis depends only on the frames before it started, so a
replay gets the same words as the live call. A hypothesis that does not answer yet is kept: when
the normal endpoint follows with no voiced frame since, it is the final transcript (same audio,
only more silence), so that turn does not wait for a second decode either.

Recognizer work runs on its own queue (`RECOGNIZER`, ivr/asr/scheduler.py: one worker per core, first
come first served), not the default executor that prompt rendering and intent matching share: a burst
of decodes must not hold the threads the finished callers' matching and prompts need. A speculation
is queued behind every confirmed decode and moved up, in its place of arrival, when its pause is
confirmed: in a burst of callers who stop together the decodes start 100 ms sooner (at the pause,
not at the early endpoint) and a guess never delays a turn that has ended.
"""

import asyncio
import time
from datetime import date

from ivr.asr.base import Transcript
from ivr.asr.scheduler import Job, RecognizerQueue
from ivr.audio.vad import EndReason
from ivr.call_workers import on_call_thread
from ivr.events import Heard
from ivr.flow.nlu import Intent, match
from ivr.flow.slots import fills, hint_phrases

# One worker per core: whisper runs one single-threaded model copy per core (ivr/asr/whisper.py).
RECOGNIZER = RecognizerQueue()


async def on_asr_thread(fn, *args):
    """Run recognizer work (session start, feed, decode) on the recognizer's own threads, in turn."""
    return await asyncio.wrap_future(RECOGNIZER.submit(fn, *args).future)


def decode_job(session, fn=None, speculative: bool = False) -> Job:
    """Queue a decode of `session` (`fn`: its peek, or finish) on the recognizer; one whisper can run in a single
    pass with other calls' at the same step (`session.batch()`: ivr.asr.scheduler.Batch)."""
    batch = getattr(session, "batch", None)
    return RECOGNIZER.submit(fn or session.peek, speculative=speculative, batch=batch() if batch else None)


async def decode(session, fn=None) -> Transcript:
    """`decode_job`, awaited."""
    return await asyncio.wrap_future(decode_job(session, fn).future)


def _forget(future: asyncio.Future) -> None:
    """A discarded speculation: fetch its outcome so a failure is not reported as never retrieved."""
    if not future.cancelled():
        future.exception()


def _discard(job: Job) -> None:
    """Speech went on: a decode still queued is dropped (it would delay other callers' decodes)."""
    job.future.cancel()
    job.future.add_done_callback(_forget)


class CallEarlyEnd:
    # (last voiced frame, the recognizer job decoding the audio up to the pause)
    _speculation: tuple[int, Job] | None = None
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
                # the words of the audio up to speculate_ms: decoded ahead, or now in its place in the queue
                RECOGNIZER.promote(speculation[1])
                hypothesis = await asyncio.wrap_future(speculation[1].future)
            else:
                if speculation is not None:
                    _discard(speculation[1])
                hypothesis = await decode(self.session)
        except Exception:   # only an optimisation: the normal endpoint (and finish) still follow
            self.log.warning("speculative decode failed; waiting for the endpoint", exc_info=True)
            return
        if not self._hypothesis_complete(hypothesis.text) and not await self._taken_by_meaning(hypothesis):
            if not self.asr.streams_partials:
                self._hypothesis = (self.endpointer.last_voiced_frame, hypothesis)
            return
        self.endpointer.force_end()
        # Whisper's peek is a full decode: keep it as the final; vosk's partial is re-finalised.
        final = None if self.asr.streams_partials else hypothesis
        await self._speech_ended(EndReason.EARLY_MATCH, final, (time.perf_counter() - t0) * 1000)

    def _speculate(self) -> None:
        """Queue a decode of what was said so far (whisper: a copy of the buffered audio) behind every
        confirmed decode. It depends only on the frames before the pause, so the words never depend on
        the machine's load; if speech resumes before it starts it is dropped unrun."""
        fork = getattr(self.session, "fork", None)
        if self.asr.streams_partials or fork is None:
            return
        if self._speculation is not None:
            _discard(self._speculation[1])
        self._speculation = (self.endpointer.last_voiced_frame, decode_job(fork(), speculative=True))

    def _kept_hypothesis(self, reason: EndReason) -> Transcript | None:
        """At the normal endpoint: the pause's hypothesis if nothing was said after it."""
        kept, self._hypothesis = self._hypothesis, None
        if self._speculation is not None:
            _discard(self._speculation[1])
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

    async def _taken_by_meaning(self, hypothesis: Transcript) -> bool:
        """Whether the flow would take `text` at once (a choice, a global, an FAQ answer: not a "did you mean"
        or a no-match) at a step offering choices. Asks the pure interpreter on a call worker; its answer
        is thrown away, the vector it computed stays cached for the turn."""
        text = hypothesis.text
        if not self.config.early_meaning or not text.strip() or self.listen.slot is not None:
            return False
        try:
            after, _actions = await on_call_thread(self.interp.handle, self.state,
                                                   Heard(text, hypothesis.confidence, doubt=hypothesis.doubt))
        except Exception:   # only an optimisation: the turn itself will meet the error and handle it
            self.log.warning("early endpoint: the flow could not be asked", exc_info=True)
            return False
        last = after.last   # a new Understood: the words were weighed at this turn (not the previous turn's)
        return last is not None and last is not self.state.last and last.kind == "speech" and \
            last.choice is not None and last.via in ("step", "global", "faq") and after.confirming is None

    def _slot_words(self) -> set[str]:
        return set(hint_phrases(self.listen.slot, self.listen.language))
