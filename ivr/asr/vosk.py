"""vosk (Kaldi) streaming recognition: one shared Model, one KaldiRecognizer per utterance.

With phrases, the recognizer is limited to them (a grammar, the vosk-server IVR pattern):
fast and robust for menus. Words missing from the model's vocabulary are left out of the
grammar (vosk would drop them with a warning, turning "track order" into "track").
"""

import json
import threading
from pathlib import Path

import numpy as np

from ivr.asr.base import Transcript, Word
from ivr.asr.registry import is_vosk_model
from ivr.errors import UserError

UNKNOWN_WORD_TOKENS = ("[unk]", "<UNK>", "<unk>")
MAX_ALTERNATIVES = 3


class VoskAsr:
    streams_partials = True

    def __init__(self, path: Path, language: str, name: str | None = None) -> None:
        import vosk

        if not is_vosk_model(path):
            raise UserError(
                f"{path} holds no vosk model (expected am/final.mdl and conf/model.conf)",
                "run `ivr models list`, or `ivr models pull NAME` to download one",
            )
        vosk.SetLogLevel(-1)
        self._vosk = vosk
        self.name = f"vosk:{name or path.name}"
        self.language = language
        self._model = vosk.Model(str(path))
        self._unk = next((t for t in UNKNOWN_WORD_TOKENS if self._model.vosk_model_find_word(t) >= 0), None)
        self._vocab_lock = threading.Lock()
        self._known: dict[str, bool] = {}

    def in_vocabulary(self, phrase: str) -> bool:
        with self._vocab_lock:
            for word in phrase.split():
                if word not in self._known:
                    self._known[word] = self._model.vosk_model_find_word(word) >= 0
            return all(self._known[w] for w in phrase.split())

    def grammar(self, phrases: tuple[str, ...]) -> list[str]:
        usable = [p for p in dict.fromkeys(phrases) if p and self.in_vocabulary(p)]
        if usable and self._unk:
            usable.append(self._unk)  # lets out-of-grammar speech come out as "no match"
        return usable

    def session(self, phrases: tuple[str, ...] = ()) -> "VoskSession":
        grammar = self.grammar(phrases) if phrases else []
        if grammar:
            rec = self._vosk.KaldiRecognizer(
                self._model, 16000, json.dumps(grammar, ensure_ascii=False)  # vosk's JSON
            )  # parser does not decode \\u escapes, so non-ASCII must go in as UTF-8
        else:
            rec = self._vosk.KaldiRecognizer(self._model, 16000)
        rec.SetWords(True)
        rec.SetMaxAlternatives(MAX_ALTERNATIVES)
        return VoskSession(rec, self._unk)


class VoskSession:
    def __init__(self, recognizer, unk: str | None) -> None:
        self._rec = recognizer
        self._unk = unk
        self._done: list[Transcript] = []  # results vosk finalised at its own endpoints
        self._partial = ""

    def feed(self, pcm: np.ndarray) -> str | None:
        if self._rec.AcceptWaveform(pcm.astype(np.int16).tobytes()):
            result = self._parse(self._rec.Result())
            if result.text:
                self._done.append(result)
            self._partial = ""
        else:
            self._partial = self._clean(json.loads(self._rec.PartialResult()).get("partial", ""))
        return self._joined_partial()

    def peek(self) -> Transcript:
        return Transcript(self._joined_partial(), confidence=0.0)

    def finish(self) -> Transcript:
        last = self._parse(self._rec.FinalResult())
        parts = [*self._done, last] if last.text else self._done
        if not parts:
            return Transcript("")
        if len(parts) == 1:
            return parts[0]
        return Transcript(
            text=" ".join(p.text for p in parts),
            confidence=min(p.confidence for p in parts),
            words=tuple(w for p in parts for w in p.words),
        )

    def _joined_partial(self) -> str:
        return " ".join([*(d.text for d in self._done), self._partial]).strip()

    def _clean(self, text: str) -> str:
        return " ".join(w for w in text.split() if w not in UNKNOWN_WORD_TOKENS)

    def _parse(self, raw: str) -> Transcript:
        data = json.loads(raw)
        alts = data.get("alternatives")
        if alts is None:  # SetMaxAlternatives(0) format
            alts = [{"text": data.get("text", ""), "confidence": 1.0, "result": data.get("result")}]
        if not alts:
            return Transcript("")
        best = alts[0]
        words = tuple(
            Word(w["word"], w["start"], w["end"], w.get("conf", 1.0))
            for w in best.get("result") or []
            if w["word"] not in UNKNOWN_WORD_TOKENS
        )
        others = tuple(
            t for t in (self._clean(a.get("text", "")) for a in alts[1:]) if t
        )
        text = self._clean(best.get("text", ""))
        # vosk's n-best "confidence" is a total lattice score, not a probability: map each
        # alternative's gap to the best into 0..1 so 1.0 means a clear winner.
        confidence = 1.0
        if len(alts) > 1:
            gap = float(best.get("confidence", 0.0)) - float(alts[1].get("confidence", 0.0))
            confidence = round(1.0 - 1.0 / (1.0 + max(gap, 0.0)), 3)
        return Transcript(text=text, confidence=confidence, alternatives=others, words=words)
