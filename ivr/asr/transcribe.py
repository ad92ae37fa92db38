"""A whole recording to text, one line per utterance: what `ivr transcribe` prints.

The endpointer cuts the recording into utterances as the call loop would, but with no length
cap (a call's 15 s turn limit would cut a long sentence in half mid-word); each utterance is
decoded whole by one ASR session, the same session API a live call uses.
"""

import dataclasses
from collections.abc import Iterator

import numpy as np

from ivr.asr.base import AsrModel
from ivr.audio.vad import VadConfig, utterances

MAX_UTTERANCE_MS = 10 * 60_000   # a recording's utterance is never cut below ten minutes


def transcribe_samples(asr: AsrModel, samples: np.ndarray, vad: VadConfig | None = None,
                       ) -> Iterator[tuple[int, int, str]]:
    """Yield (start_ms, end_ms, text) for each utterance of 16 kHz int16 `samples` with words in it."""
    vad = dataclasses.replace(vad or VadConfig(), max_utterance_ms=MAX_UTTERANCE_MS)
    for start_ms, end_ms, audio in utterances(samples, vad):
        session = asr.session()
        session.feed(audio)
        text = session.finish().text
        if text:
            yield start_ms, end_ms, text
