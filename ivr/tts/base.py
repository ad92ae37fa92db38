"""The TTS interface: text in, mono int16 PCM out at the engine's own rate.

`synthesize` blocks; callers run it in a worker thread. Resampling to the call's rate
and caching are done around engines (see cache.py), not inside them.
"""

from typing import Protocol

import numpy as np


class TtsEngine(Protocol):
    name: str        # e.g. "piper:en_US-joe-medium", "espeak:cmn"
    rate_hz: int

    def synthesize(self, text: str) -> np.ndarray:
        """Return mono int16 samples at `rate_hz`."""
        ...
