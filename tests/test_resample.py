"""Resampling: frequency, length and level survive; streaming matches one-shot."""

import numpy as np
import pytest

from ivr.audio.resample import Resampler, resample

RATES = [8000, 16000, 22050, 24000, 44100, 48000]
PAIRS = [(a, b) for a in RATES for b in RATES if a != b]


def _sine(rate_hz: int, seconds: float = 0.37, freq_hz: float = 1000.0) -> np.ndarray:
    t = np.arange(round(rate_hz * seconds)) / rate_hz
    return np.rint(0.5 * 32767 * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def _peak_hz(pcm: np.ndarray, rate_hz: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm)), n=8 * len(pcm)))
    return float(np.argmax(spectrum) * rate_hz / (8 * len(pcm)))


def _rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))


@pytest.mark.parametrize(("from_hz", "to_hz"), PAIRS)
def test_sine_keeps_frequency_length_and_level(from_hz: int, to_hz: int) -> None:
    x = _sine(from_hz)
    y = resample(x, from_hz, to_hz)
    assert y.dtype == np.int16
    assert abs(len(y) - len(x) * to_hz / from_hz) <= 1
    assert abs(_peak_hz(y, to_hz) - 1000.0) < 3.0
    assert abs(_rms(y[200:-200]) / _rms(x[200:-200]) - 1.0) < 0.01


@pytest.mark.parametrize(("from_hz", "to_hz"), PAIRS)
def test_streaming_matches_one_shot(from_hz: int, to_hz: int) -> None:
    x = _sine(from_hz)
    frame = from_hz * 20 // 1000
    stream = Resampler(from_hz, to_hz)
    parts = [stream.process(x[i : i + frame]) for i in range(0, len(x), frame)]
    parts.append(stream.flush())
    y = np.concatenate(parts)
    expected = resample(x, from_hz, to_hz)
    assert abs(len(y) - len(expected)) <= 3
    n = min(len(y), len(expected))
    err = y[:n].astype(np.int64) - expected[:n]
    assert np.max(np.abs(err[50:-50])) <= 2  # same filter, same alignment
    assert abs(_peak_hz(y, to_hz) - 1000.0) < 3.0


def test_streaming_with_odd_chunk_sizes_and_reuse() -> None:
    x = _sine(8000)
    stream = Resampler(8000, 16000)
    for _ in range(2):  # flush makes it ready for a second stream
        sizes = [1, 7, 160, 33, 500]
        parts, pos, k = [], 0, 0
        while pos < len(x):
            parts.append(stream.process(x[pos : pos + sizes[k % len(sizes)]]))
            pos += sizes[k % len(sizes)]
            k += 1
        parts.append(stream.flush())
        y = np.concatenate(parts)
        assert abs(len(y) - 2 * len(x)) <= 3
        assert abs(_peak_hz(y, 16000) - 1000.0) < 3.0


def test_equal_rates_is_identity_copy() -> None:
    x = _sine(16000)
    y = resample(x, 16000, 16000)
    np.testing.assert_array_equal(x, y)
    assert y is not x
    stream = Resampler(16000, 16000)
    np.testing.assert_array_equal(stream.process(x[:320]), x[:320])
    assert stream.flush().size == 0


def test_full_scale_square_wave_clips_instead_of_wrapping() -> None:
    period = 80
    x = np.tile(np.r_[np.full(period // 2, 32767), np.full(period // 2, -32768)], 100)
    x = x.astype(np.int16)
    y = resample(x, 8000, 48000).astype(np.int64)
    assert y.max() == 32767 and y.min() == -32768  # filter overshoot reached the rails
    # A wrap would put large negative values where the input sits at +full scale.
    centres = np.arange(period // 4, len(x) - period, period) * 6
    assert np.all(y[centres[2:-2]] > 20000)


def test_empty_and_bad_input() -> None:
    assert resample(np.zeros(0, dtype=np.int16), 8000, 16000).size == 0
    with pytest.raises(TypeError):
        resample(np.zeros(10, dtype=np.float32), 8000, 16000)
    with pytest.raises(ValueError):
        resample(np.zeros((10, 2), dtype=np.int16), 8000, 16000)
    with pytest.raises(ValueError):
        Resampler(0, 16000)
