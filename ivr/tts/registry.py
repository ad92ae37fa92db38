"""Pick a TTS engine from a spec string and the call's language.

Specs:
  auto (or None)        piper with the bundled joe voice for English, espeak otherwise
                        (Mandarin voice for zh*/cmn languages)
  piper                 the bundled en_US-joe-medium piper voice (also piper:joe)
  piper:/path/v.onnx    another piper voice (its .onnx.json next to it)
  espeak                espeak-ng in the call's language
  espeak:<voice>        espeak-ng with a voice/language: en-us, cmn, zh-CN, de, fr, ...
"""

from __future__ import annotations

from pathlib import Path

from ivr.errors import UserError
from ivr.lang import is_english, is_mandarin
from ivr.tts.base import TtsEngine

VALID_SPECS = ("auto", "piper", "piper:/path/to/voice.onnx", "espeak", "espeak:<voice>")

_BUNDLED_PIPER = ("joe", "en_US-joe-medium")


def load_tts(spec: str | None, language: str = "en-US") -> TtsEngine:
    """Build the engine `spec` names (see module doc); UserError for an unknown spec."""
    from ivr.tts.espeak import EspeakTts
    from ivr.tts.piper import PiperTts

    raw = (spec or "auto").strip()
    kind, _, arg = raw.partition(":")
    kind = kind.strip().lower()
    arg = arg.strip()

    if kind == "auto" and not arg:
        if is_english(language):
            return PiperTts()
        if is_mandarin(language):
            return EspeakTts("cmn")
        return EspeakTts(language)
    if kind == "piper":
        if not arg or arg in _BUNDLED_PIPER:
            return PiperTts()
        return PiperTts(Path(arg))
    if kind == "espeak":
        if not arg:
            return EspeakTts("cmn" if is_mandarin(language) else language)
        return EspeakTts(arg)
    raise UserError(
        f"unknown TTS engine {raw!r}",
        "valid: " + ", ".join(VALID_SPECS),
    )
