"""DTMF generation and detection: levels, short tones, noise, G.711 lines, talk-off."""

import shutil
import subprocess

import numpy as np
import pytest

from ivr.audio.dtmf import COL_HZ, ROW_HZ, DtmfDetector, detect_dtmf, generate_dtmf
from ivr.audio.frames import split_frames
from ivr.audio.g711 import mulaw_decode, mulaw_encode
from ivr.audio.resample import resample

ALL_KEYS = "123A456B789C*0#D"
RATE = 16000


def _ms(ms: float, rate_hz: int = RATE) -> int:
    return round(rate_hz * ms / 1000)


def _frames(pcm: np.ndarray, detector: DtmfDetector, frame: int = 320) -> str:
    """Run the detector the way the call loop does: one frame per call."""
    keys = ""
    for chunk in split_frames(pcm, frame):
        keys += detector.process(chunk) or ""
    return keys


def _pad(pcm: np.ndarray, lead: int, tail_ms: float = 100) -> np.ndarray:
    return np.concatenate([np.zeros(lead, np.int16), pcm, np.zeros(_ms(tail_ms), np.int16)])


def _add_noise(pcm: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    signal = pcm.astype(np.float64)
    power = np.mean(signal[signal != 0] ** 2)
    noisy = signal + rng.normal(0, np.sqrt(power / 10 ** (snr_db / 10)), len(signal))
    return np.clip(np.rint(noisy), -32768, 32767).astype(np.int16)


def _sine(hz: float, dbfs: float, ms: float) -> np.ndarray:
    t = np.arange(_ms(ms)) / RATE
    return 32767 * 10 ** (dbfs / 20) * np.sin(2 * np.pi * hz * t)


def _two_tones(row_hz: float, col_hz: float, row_db: float, col_db: float, ms: float) -> np.ndarray:
    return np.rint(_sine(row_hz, row_db, ms) + _sine(col_hz, col_db, ms)).astype(np.int16)


def test_generate_shape_level_and_errors() -> None:
    pcm = generate_dtmf("12", tone_ms=100, gap_ms=50, level_dbfs=-6.0)
    assert pcm.dtype == np.int16
    assert len(pcm) == _ms(250)
    assert np.all(pcm[_ms(100) : _ms(150)] == 0)
    assert abs(np.abs(pcm).max() / 32767 - 10 ** (-6 / 20)) < 0.02  # peak of the two tones
    spectrum = np.abs(np.fft.rfft(pcm[: _ms(100)], n=RATE))
    top_two = sorted(np.argsort(spectrum)[-2:])
    assert top_two == [697, 1209]
    assert generate_dtmf("").size == 0
    assert np.array_equal(generate_dtmf("a"), generate_dtmf("A"))
    with pytest.raises(ValueError):
        generate_dtmf("1x")


@pytest.mark.parametrize("level", [-25.0, -20.0, -15.0, -10.0, -6.0, -3.0])
def test_all_keys_at_each_level_with_40ms_tones(level: float) -> None:
    detector = DtmfDetector()
    for i, key in enumerate(ALL_KEYS):
        pcm = _pad(generate_dtmf(key, tone_ms=40, level_dbfs=level), lead=37 * i)  # shift phase
        assert _frames(pcm, detector) == key, f"key {key} at {level} dBFS"


@pytest.mark.parametrize("level", [-25.0, -10.0, -3.0])
def test_all_keys_with_noise_at_20db_snr(level: float) -> None:
    rng = np.random.default_rng(int(-level))
    detector = DtmfDetector()
    for i, key in enumerate(ALL_KEYS):
        clean = _pad(generate_dtmf(key, tone_ms=40, level_dbfs=level), lead=53 * i)
        noisy = _add_noise(clean, 20.0, rng)
        assert _frames(noisy, detector) == key, f"key {key} at {level} dBFS, 20 dB SNR"


@pytest.mark.parametrize("level", [-25.0, -10.0, -3.0])
def test_through_mulaw_8k_line(level: float) -> None:
    wire = generate_dtmf(ALL_KEYS, rate_hz=8000, tone_ms=40, gap_ms=50, level_dbfs=level)
    wire = np.concatenate([np.zeros(123, np.int16), wire, np.zeros(800, np.int16)])
    decoded = mulaw_decode(mulaw_encode(wire))
    assert _frames(resample(decoded, 8000, RATE), DtmfDetector()) == ALL_KEYS
    assert _frames(decoded, DtmfDetector(8000), frame=160) == ALL_KEYS  # native 8 kHz too


def test_sequences_with_short_gaps() -> None:
    detector = DtmfDetector()
    for lead in range(0, 320, 41):  # every alignment against frames and analysis blocks
        pcm = _pad(generate_dtmf("1234#", tone_ms=50, gap_ms=50), lead)
        assert _frames(pcm, detector) == "1234#"
        # Repeated keys need the gap: 40 ms tones and 40 ms gaps still count every press.
        pcm = _pad(generate_dtmf("1100999", tone_ms=40, gap_ms=40), lead)
        assert _frames(pcm, detector) == "1100999"


def test_long_press_reported_once_and_chunk_size_does_not_matter() -> None:
    pcm = _pad(generate_dtmf("5", tone_ms=2000), lead=100)
    assert _frames(pcm, DtmfDetector()) == "5"
    seq = _pad(generate_dtmf("2580*#", tone_ms=60, gap_ms=60), lead=7)
    for frame in (1, 7, 160, 320, 1000):
        assert _frames(seq, DtmfDetector(), frame=frame) == "2580*#"
    assert detect_dtmf(seq) == "2580*#"  # one call, several keys


def test_key_reported_on_the_confirming_frame() -> None:
    detector = DtmfDetector()
    pcm = _pad(generate_dtmf("7", tone_ms=100), lead=0)
    results = [detector.process(f) for f in split_frames(pcm)]
    hits = [i for i, r in enumerate(results) if r]
    assert [results[i] for i in hits] == ["7"]
    assert hits[0] == 1  # two 12.75 ms blocks of tone end inside the second 20 ms frame


def test_tone_shorter_than_two_blocks_is_ignored() -> None:
    for lead in range(0, 204, 29):
        pcm = _pad(generate_dtmf("8", tone_ms=20), lead)
        assert _frames(pcm, DtmfDetector()) == ""


def test_reset_forgets_a_press_in_progress() -> None:
    detector = DtmfDetector()
    tone = generate_dtmf("3", tone_ms=200)
    assert detector.process(tone[:3000]) == "3"
    assert detector.process(tone[3000:]) is None  # same press
    detector.reset()
    assert detector.process(tone[:3000]) == "3"  # a new call


def test_small_frequency_error_is_accepted() -> None:
    for r, c in [(0, 0), (3, 3), (1, 2)]:
        for dev in (-0.015, 0.015):
            pcm = _two_tones(ROW_HZ[r] * (1 + dev), COL_HZ[c] * (1 - dev), -12, -12, 60)
            assert detect_dtmf(_pad(pcm, 11)) == "123A456B789C*0#D"[4 * r + c]


@pytest.mark.parametrize(
    ("row_db", "col_db", "expected"),
    [
        (-10, -16, "5"),  # low group 6 dB louder: normal twist within 8 dB
        (-13, -10, "5"),  # high group 3 dB louder: reverse twist within 4 dB
        (-10, -22, ""),  # low group 12 dB louder
        (-22, -10, ""),  # high group 12 dB louder
        (-10, -60, ""),  # a single tone is not a key
    ],
)
def test_twist_limits(row_db: float, col_db: float, expected: str) -> None:
    pcm = _two_tones(ROW_HZ[1], COL_HZ[1], row_db, col_db, 100)
    assert detect_dtmf(_pad(pcm, 50)) == expected


def test_too_quiet_is_ignored() -> None:
    assert detect_dtmf(_pad(generate_dtmf("159", level_dbfs=-45.0), 0)) == ""
    assert detect_dtmf(_pad(generate_dtmf("159", level_dbfs=-30.0), 0)) == "159"


@pytest.mark.parametrize(
    ("extra_hz", "extra_db", "expected"),
    [
        (ROW_HZ[2], -17, ""),  # a second row tone only 5 dB down: no row dominates
        (COL_HZ[3], -17, ""),  # the same in the column group
        (ROW_HZ[2], -30, "5"),  # 18 dB down is just interference
        (COL_HZ[3], -30, "5"),
    ],
)
def test_group_dominance(extra_hz: float, extra_db: float, expected: str) -> None:
    pcm = _two_tones(ROW_HZ[1], COL_HZ[1], -12, -12, 100) + _sine(extra_hz, extra_db, 100)
    assert detect_dtmf(_pad(np.rint(pcm).astype(np.int16), 0)) == expected


def test_white_noise_never_fires() -> None:
    rng = np.random.default_rng(1)
    for level in (0.003, 0.03, 0.3):
        noise = rng.normal(0, level * 32767, RATE * 5)
        pcm = np.clip(np.rint(noise), -32768, 32767).astype(np.int16)
        assert _frames(pcm, DtmfDetector()) == ""


SPEECH = [
    "Thank you for calling. Press one for sales, two for support, or stay on the line.",
    "The quick brown fox jumps over the lazy dog while she sells sea shells by the shore.",
    "Your balance is one thousand two hundred and thirty four dollars and fifty six cents.",
    "Please hold. Eeeeee, ooooooh, aaaaaah, mmmmmm, nnnnnn, the music will continue.",
]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_speech_never_fires(tmp_path) -> None:
    from ivr.audio.wavio import read_audio

    for i, text in enumerate(SPEECH):
        for voice in ("en", "en-us+f3"):
            path = tmp_path / f"speech{i}.wav"
            wav = subprocess.run(
                ["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True
            ).stdout
            path.write_bytes(wav)
            speech = read_audio(path)
            assert len(speech) > RATE  # really got speech
            for gain in (0.3, 1.0, 3.0):
                pcm = np.clip(speech * gain, -32768, 32767).astype(np.int16)
                assert _frames(pcm, DtmfDetector()) == "", f"{voice}: {text!r} x{gain}"
            # Keys pressed over speech (speech 20 dB down) are still found.
            keys = generate_dtmf("90#", tone_ms=80, gap_ms=80, level_dbfs=-6.0)
            mixed = speech[: len(keys)].astype(np.int32) // 10 + keys
            assert detect_dtmf(_pad(mixed.astype(np.int16), 0)) == "90#"


def _ungated() -> DtmfDetector:
    """The detector with its weak-block skip turned off: every block through the full analysis."""
    detector = DtmfDetector()
    detector._min_block_energy = -np.inf
    return detector


def test_weak_block_skip_decides_exactly_as_the_full_analysis() -> None:
    # Tones around the level limit (each tone 6 dB under the peak level), noise around the skip's own
    # limit, and loud noise, at several alignments: every frame's result must be the full analysis's.
    rng = np.random.default_rng(7)
    parts = []
    for level in (-30.0, -34.0, -36.0, -37.0, -38.0, -40.0):
        for lead in (0, 51, 133):
            parts.append(_pad(generate_dtmf("5#", tone_ms=45, gap_ms=45, level_dbfs=level), lead))
    for rms in (2.0, 20.0, 60.0, 120.0, 400.0, 3000.0):
        parts.append(np.clip(np.rint(rng.normal(0, rms, RATE // 4)), -32768, 32767).astype(np.int16))
    pcm = np.concatenate(parts)
    gated, full = DtmfDetector(), _ungated()
    got = [gated.process(f) for f in split_frames(pcm)]
    assert got == [full.process(f) for f in split_frames(pcm)]
    assert "".join(k for k in got if k).startswith("5#5#")   # the loud keys are there


def test_tone_straddling_blocks_and_frames_after_silence() -> None:
    # A 40 ms key right after digital silence (every frame before it skipped), starting anywhere inside a
    # frame and an analysis block, near the level limit: still one key, on the same frame as the full analysis.
    for level in (-10.0, -35.0):
        for lead in range(0, 320, 17):
            pcm = _pad(generate_dtmf("9", tone_ms=40, level_dbfs=level), RATE // 2 + lead)
            detector, full = DtmfDetector(), _ungated()
            gated = [detector.process(f) for f in split_frames(pcm)]
            assert gated == [full.process(f) for f in split_frames(pcm)]
            assert "".join(k for k in gated if k) == "9", f"lead {lead} at {level} dBFS"
