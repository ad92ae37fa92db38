"""Make caller audio from a script: speech, pauses and key presses, as a phone line carries it.

For tests, demos and benchmarks: a script like
    [("pause", 7000), ("say", "where is my order"), ("pause", 3000), ("keys", "1")]
becomes 8 kHz mu-law audio (what a telephone line delivers), with optional line noise.
"""

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from ivr.audio.dtmf import generate_dtmf
from ivr.audio.g711 import mulaw_decode, mulaw_encode
from ivr.audio.resample import resample
from ivr.tts.base import TtsEngine

LINE_RATE_HZ = 8000
Segment = tuple[str, int | str]


def render(script: Iterable[Segment], tts: TtsEngine, noise_dbfs: float | None = -60.0,
           seed: int = 7, speech_gain: float = 0.5) -> np.ndarray:
    """The script as 8 kHz int16 samples after a mu-law round trip (a phone line)."""
    parts: list[np.ndarray] = []
    for kind, value in script:
        if kind == "pause":
            parts.append(np.zeros(int(value) * LINE_RATE_HZ // 1000, np.int16))
        elif kind == "say":
            speech = resample(tts.synthesize(str(value)), tts.rate_hz, LINE_RATE_HZ)
            parts.append((speech.astype(np.float32) * speech_gain).astype(np.int16))
        elif kind == "keys":
            parts.append(generate_dtmf(str(value), rate_hz=LINE_RATE_HZ, tone_ms=100, gap_ms=100,
                                       level_dbfs=-12.0))
        else:
            raise ValueError(f"unknown call script segment {kind!r}: use pause, say or keys")
    audio = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
    if noise_dbfs is not None:   # a quiet line hiss, so silence is not digital zero
        rng = np.random.default_rng(seed)
        audio += rng.normal(0.0, 32768 * 10 ** (noise_dbfs / 20), len(audio)).astype(np.float32)
    pcm = np.clip(audio, -32768, 32767).astype(np.int16)
    return mulaw_decode(mulaw_encode(pcm))


def write_mulaw_wav(path: Path, pcm_8k: np.ndarray) -> None:
    """Write 8 kHz audio as a mu-law WAV, the way call recorders often store calls."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), pcm_8k, LINE_RATE_HZ, subtype="ULAW", format="WAV")
