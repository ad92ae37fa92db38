"""WAV reading of every common flavour, writing, and one-line errors for bad input."""

import numpy as np
import pytest
import soundfile as sf

from ivr.audio.wavio import WavInfo, probe, read_audio, write_stereo, write_wav
from ivr.errors import UserError

SUBTYPES = ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW"]
RATES = [8000, 11025, 22050, 44100, 48000]
LEFT_HZ, RIGHT_HZ = 440.0, 1000.0
SECONDS = 0.5


def _tone(freq_hz: float, rate_hz: int, seconds: float = SECONDS, amp: float = 0.4) -> np.ndarray:
    t = np.arange(round(rate_hz * seconds)) / rate_hz
    return amp * np.sin(2 * np.pi * freq_hz * t)


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    a, b = a[200 : n - 200].astype(np.float64), b[200 : n - 200].astype(np.float64)
    return float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))


def _peak_hz(pcm: np.ndarray, rate_hz: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.argmax(spectrum) * rate_hz / len(pcm))


def _expected(freq_hz: float, amp: float = 0.4) -> np.ndarray:
    return _tone(freq_hz, 16000, amp=amp) * 32767


@pytest.mark.parametrize("rate_hz", RATES)
@pytest.mark.parametrize("subtype", SUBTYPES)
def test_reads_mono_of_every_kind(tmp_path, subtype: str, rate_hz: int) -> None:
    path = tmp_path / "mono.wav"
    sf.write(path, _tone(LEFT_HZ, rate_hz), rate_hz, subtype=subtype)

    info = probe(path)
    assert info == WavInfo(rate_hz, 1, subtype, info.duration_s, round(rate_hz * SECONDS))
    assert info.duration_s == pytest.approx(SECONDS, abs=1e-3)

    pcm = read_audio(path)
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    assert abs(len(pcm) - 16000 * SECONDS) <= 1
    assert _similarity(pcm, _expected(LEFT_HZ)) > 0.99
    rms = np.sqrt(np.mean(pcm[200:-200].astype(np.float64) ** 2))
    assert rms == pytest.approx(0.4 * 32767 / np.sqrt(2), rel=0.03)


@pytest.mark.parametrize("rate_hz", [8000, 44100])
@pytest.mark.parametrize("subtype", SUBTYPES)
def test_stereo_channel_choice_and_average(tmp_path, subtype: str, rate_hz: int) -> None:
    path = tmp_path / "stereo.wav"
    stereo = np.column_stack([_tone(LEFT_HZ, rate_hz), _tone(RIGHT_HZ, rate_hz)])
    sf.write(path, stereo, rate_hz, subtype=subtype)
    assert probe(path).channels == 2

    left, right = read_audio(path, channel=0), read_audio(path, channel=1)
    assert _similarity(left, _expected(LEFT_HZ)) > 0.99
    assert _similarity(right, _expected(RIGHT_HZ)) > 0.99
    assert abs(_similarity(left, _expected(RIGHT_HZ))) < 0.05

    mixed = read_audio(path)
    expected_mix = (_expected(LEFT_HZ) + _expected(RIGHT_HZ)) / 2
    assert _similarity(mixed, expected_mix) > 0.99


def test_multichannel_and_custom_rate(tmp_path) -> None:
    path = tmp_path / "quad.wav"
    freqs = [300.0, 700.0, 1100.0, 1900.0]
    sf.write(path, np.column_stack([_tone(f, 48000) for f in freqs]), 48000, subtype="PCM_24")
    assert probe(path).channels == 4
    for ch, f in enumerate(freqs):
        pcm = read_audio(path, channel=ch, rate_hz=8000)
        assert abs(len(pcm) - 8000 * SECONDS) <= 1
        assert abs(_peak_hz(pcm, 8000) - f) <= 4


def test_float_over_full_scale_is_clipped(tmp_path) -> None:
    path = tmp_path / "hot.wav"
    sf.write(path, _tone(LEFT_HZ, 16000, amp=1.5), 16000, subtype="FLOAT")
    pcm = read_audio(path)
    assert pcm.max() == 32767 and pcm.min() == -32768
    ref = _tone(LEFT_HZ, 16000)
    loud = np.abs(ref) > 0.35
    assert np.all(np.sign(pcm[loud]) == np.sign(ref[loud]))  # clipped, never wrapped
    assert _similarity(pcm, _expected(LEFT_HZ)) > 0.95


def test_write_wav_round_trip_and_parent_dirs(tmp_path) -> None:
    pcm = np.rint(_expected(LEFT_HZ)).astype(np.int16)
    path = tmp_path / "a" / "b" / "out.wav"
    write_wav(path, pcm, 16000)
    assert probe(path) == WavInfo(16000, 1, "PCM_16", SECONDS, len(pcm))
    np.testing.assert_array_equal(read_audio(path), pcm)


def test_write_stereo_pads_shorter_side(tmp_path) -> None:
    left = np.full(800, 1000, dtype=np.int16)
    right = np.full(500, -2000, dtype=np.int16)
    path = tmp_path / "calls" / "rec.wav"
    write_stereo(path, left, right, 8000)
    data, rate = sf.read(path, dtype="int16", always_2d=True)
    assert rate == 8000 and data.shape == (800, 2)
    assert np.all(data[:, 0] == 1000)
    assert np.all(data[:500, 1] == -2000) and np.all(data[500:, 1] == 0)
    write_stereo(path, right, left, 8000)  # the other side shorter
    data, _ = sf.read(path, dtype="int16", always_2d=True)
    assert data.shape == (800, 2) and np.all(data[500:, 0] == 0)


def test_write_rejects_wrong_dtype(tmp_path) -> None:
    with pytest.raises(TypeError):
        write_wav(tmp_path / "x.wav", np.zeros(10), 16000)


def _user_error(path, **kwargs) -> UserError:
    with pytest.raises(UserError) as info:
        read_audio(path, **kwargs)
    err = info.value
    assert "\n" not in str(err)
    return err


def test_missing_file(tmp_path) -> None:
    err = _user_error(tmp_path / "nope.wav")
    assert err.message == f"no such file: {tmp_path / 'nope.wav'}"
    with pytest.raises(UserError, match="no such file"):
        probe(tmp_path / "nope.wav")


def test_not_a_wav(tmp_path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is plain text, not audio\n" * 20)
    err = _user_error(path)
    assert err.message.startswith(f"cannot read {path}: not a WAV file or corrupt (")
    assert "sox in.ext -r 16000 -c 1 out.wav" in err.hint


def test_truncated_header(tmp_path) -> None:
    good = tmp_path / "good.wav"
    write_wav(good, np.zeros(1600, dtype=np.int16), 16000)
    bad = tmp_path / "cut.wav"
    bad.write_bytes(good.read_bytes()[:30])
    assert "not a WAV file or corrupt" in _user_error(bad).message


def test_other_container_is_refused(tmp_path) -> None:
    path = tmp_path / "tone.flac"
    sf.write(path, _tone(LEFT_HZ, 16000), 16000)
    assert "FLAC file, not a WAV file" in _user_error(path).message


def test_empty_file_and_no_audio(tmp_path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert "empty" in _user_error(empty).message
    silent = tmp_path / "zero.wav"
    sf.write(silent, np.zeros(0, dtype=np.int16), 16000)
    assert "contains no audio" in _user_error(silent).message


def test_directory(tmp_path) -> None:
    assert "directory" in _user_error(tmp_path).message


def test_channel_out_of_range(tmp_path) -> None:
    path = tmp_path / "stereo.wav"
    write_stereo(path, np.zeros(100, dtype=np.int16), np.zeros(100, dtype=np.int16), 8000)
    err = _user_error(path, channel=2)
    assert "channel 2 out of range, the file has 2 channels" in err.message
    assert "0 to 1" in err.hint
    assert "channel -1 out of range" in _user_error(path, channel=-1).message


def test_unsupported_subtype(tmp_path) -> None:
    path = tmp_path / "adpcm.wav"
    sf.write(path, _tone(LEFT_HZ, 8000), 8000, subtype="IMA_ADPCM")
    err = _user_error(path)
    assert "unsupported sample format IMA_ADPCM" in err.message
    assert "sox" in err.hint
