"""Mandarin caller audio for tests and benchmarks: espeak-ng reading pinyin with tone numbers.

espeak-ng's `cmn` voice reads the tone digits of its own dictionary aloud on some words, so
the text is turned into pinyin with tone numbers (pypinyin TONE3, "ding4 dan1") and read by
the `cmn-latn-pinyin` voice, which takes the digits as tones. Arabic digits are spelled as
Mandarin digits first (a caller says 四八一, never "four eight one").
"""

import io
import subprocess

import numpy as np
import soundfile as sf

ZH_DIGITS = "零一二三四五六七八九"


class PinyinEspeak:
    """A caller voice for ivr.callgen.render: `synthesize(text)` -> int16 at `rate_hz`."""

    rate_hz = 22050
    name = "espeak:cmn-latn-pinyin"

    def __init__(self, speed_wpm: int = 130, word_gap_10ms: int = 5) -> None:
        self.speed_wpm = speed_wpm
        self.word_gap_10ms = word_gap_10ms   # a short gap between syllables: clearer digits

    def pinyin(self, text: str) -> str:
        from pypinyin import Style, lazy_pinyin

        text = "".join(ZH_DIGITS[int(c)] if c.isascii() and c.isdigit() else c for c in text)
        return " ".join(lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True))

    def synthesize(self, text: str) -> np.ndarray:
        wav = subprocess.run(["espeak-ng", "-v", "cmn-latn-pinyin", "-s", str(self.speed_wpm),
                              "-g", str(self.word_gap_10ms), "--stdout", self.pinyin(text)],
                             capture_output=True, check=True).stdout
        audio, rate = sf.read(io.BytesIO(wav), dtype="int16")
        if rate != self.rate_hz:
            raise RuntimeError(f"espeak-ng wrote {rate} Hz, expected {self.rate_hz}")
        return audio


VOICES = ("espeak", "kokoro")


def caller_voice(name: str = "espeak"):
    """A Mandarin test voice by name: "espeak" (PinyinEspeak) or "kokoro" (the neural voice of
    tests/mandarin_kokoro.py: RuntimeError saying what to install when it is absent)."""
    if name == "espeak":
        return PinyinEspeak()
    if name == "kokoro":
        from tests.mandarin_kokoro import KokoroMandarin

        return KokoroMandarin()
    raise ValueError(f"unknown Mandarin test voice {name!r}: one of {', '.join(VOICES)}")
