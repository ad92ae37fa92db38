"""A recognizer for a language menu: whisper's own language id picks which recognizer hears it.

A caller at "For English press 1, 普通话请按2" may say a request instead of a language. Whisper
pinned to Mandarin translates English into Chinese characters ("um can i still return a
jacket" -> "我还能回到一条片子"), and an English-only model turns Mandarin into English-looking
words ("查询订单" -> "Thank you for watching."), so the script of either one's text does not
tell the languages apart (scripts/bench_language_menu.py). Here the multilingual whisper
model first identifies the utterance's language among the menu's (its language-id
probabilities, `WhisperModel.detect_language`), then that language's own recognizer
transcribes it; the flow then reads the language from the words and their script as usual.
"""

import numpy as np

from ivr.asr.base import BufferedSession, Transcript

WHISPER_CODES = {"zh": "zh", "en": "en", "ko": "ko"}   # base language -> whisper's language code


class LanguageIdAsr:
    streams_partials = False
    multilingual = True

    def __init__(self, detector, recognizers: dict) -> None:
        """`detector`: a multilingual WhisperAsr; `recognizers`: base language -> AsrModel (the menu's)."""
        self.detector = detector
        self.recognizers = dict(recognizers)
        self.name = f"{detector.name}+language-id"
        self.language = "mul"

    def identify(self, pcm: np.ndarray) -> str | None:
        """The menu language whisper finds most likely for `pcm` (None for no audio)."""
        if len(pcm) == 0:
            return None
        wanted = {WHISPER_CODES.get(b, b): b for b in self.recognizers}
        model = self.detector._free.get()   # a free copy of the model (WhisperAsr shares them this way)
        try:
            _lang, _p, probs = model.detect_language(audio=pcm.astype(np.float32) / 32768.0)
        finally:
            self.detector._free.put(model)
        return next((wanted[code] for code, _ in probs if code in wanted), None)

    def session(self, phrases: tuple[str, ...] = ()) -> "LanguageIdSession":
        return LanguageIdSession(self, phrases)


class LanguageIdSession(BufferedSession):
    def peek(self) -> Transcript:
        audio = self._audio()
        base = self._model.identify(audio)
        if base is None:
            return Transcript("")
        session = self._model.recognizers[base].session(self._phrases)
        session.feed(audio)
        return session.finish()
