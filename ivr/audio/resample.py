"""Sample-rate conversion with libsoxr (quality 'HQ').

Files and transports arrive at 8, 22.05, 44.1, 48 kHz and so on; the call loop runs at 16 kHz.
`resample` converts a whole buffer; `Resampler` converts a stream chunk by chunk (e.g. 20 ms
frames from an 8 kHz wire), keeping filter state between chunks so there are no clicks at
chunk boundaries; `FrameResampler` is the streaming variant that returns a fixed number of
samples per chunk, for a clocked line such as RTP. soxr works in float32 here so that overshoot
from the filter can be clipped back into int16 instead of wrapping.
"""

import numpy as np
import soxr

QUALITY = "HQ"


def _to_float(pcm: np.ndarray) -> np.ndarray:
    samples = np.asarray(pcm)
    if samples.ndim != 1:
        raise ValueError(f"resampling needs mono (1-D) samples, got shape {samples.shape}")
    if samples.dtype != np.int16:
        raise TypeError(f"resampling needs int16 samples, got {samples.dtype}")
    return samples.astype(np.float32) / 32768.0


def _to_int16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(samples * 32768.0), -32768, 32767).astype(np.int16)


def _check_rate(rate_hz: int) -> None:
    if rate_hz <= 0:
        raise ValueError(f"sample rate must be positive, got {rate_hz}")


def resample(pcm: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Convert mono int16 `pcm` from `from_hz` to `to_hz` (a copy when the rates are equal)."""
    _check_rate(from_hz)
    _check_rate(to_hz)
    samples = _to_float(pcm)
    if from_hz == to_hz:
        return np.array(pcm, dtype=np.int16, copy=True)
    if samples.size == 0:
        return np.zeros(0, dtype=np.int16)
    return _to_int16(soxr.resample(samples, from_hz, to_hz, quality=QUALITY))


class Resampler:
    """Streaming converter: feed chunks with `process`, call `flush` once at the end.

    soxr delays its output by the filter length, so early chunks may return fewer samples
    (even none) and `flush` returns the tail. Over a whole stream the total length matches
    `resample` to within a sample or two.
    """

    def __init__(self, from_hz: int, to_hz: int, low_latency: bool = False) -> None:
        """`low_latency`: soxr's variable-rate engine at a fixed ratio answers every 20 ms chunk
        (~30 ms delay at 8 <-> 16 kHz); the default block mode releases ~100 ms blocks. Live calls."""
        _check_rate(from_hz)
        _check_rate(to_hz)
        self.from_hz = from_hz
        self.to_hz = to_hz
        self._stream = (
            None
            if from_hz == to_hz
            else soxr.ResampleStream(from_hz, to_hz, 1, dtype="float32", quality=QUALITY, vr=low_latency)
        )

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Convert the next chunk of int16 samples; returns whatever output is ready."""
        samples = _to_float(chunk)
        if self._stream is None:
            return np.array(chunk, dtype=np.int16, copy=True)
        return _to_int16(self._stream.resample_chunk(samples, last=False))

    def flush(self) -> np.ndarray:
        """Drain the filter at end of stream; the resampler is ready for a new stream after."""
        if self._stream is None:
            return np.zeros(0, dtype=np.int16)
        tail = _to_int16(self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        self._stream.clear()
        return tail


class FrameResampler:
    """Streaming soxr that returns exactly `out_samples` for each chunk (no `flush`: a live line has no end).

    Like `Resampler(low_latency=True)`, soxr's variable-rate engine at a fixed ratio answers every
    20 ms chunk (≈30 ms delay at 8 <-> 16 kHz, where the block mode would add ~100 ms each way),
    flat to 3.4 kHz, aliases < -110 dB. Until the filter fills, the output starts with silence;
    surplus output waits for the next chunk.
    """

    def __init__(self, from_hz: int, to_hz: int, out_samples: int) -> None:
        self.out_samples = out_samples
        self._resampler = Resampler(from_hz, to_hz, low_latency=True)
        self._fifo = np.zeros(0, dtype=np.int16)

    def process(self, pcm: np.ndarray) -> np.ndarray:
        fifo = np.concatenate((self._fifo, self._resampler.process(np.asarray(pcm, dtype=np.int16))))
        if fifo.size < self.out_samples:     # only while the filter fills, at the start
            fifo = np.concatenate((np.zeros(self.out_samples - fifo.size, dtype=np.int16), fifo))
        out, self._fifo = fifo[: self.out_samples], fifo[self.out_samples :]
        return out
