"""G.711 against Python's reference coder (audioop) and libsndfile."""

import warnings

import numpy as np
import pytest
import soundfile as sf

from ivr.audio.g711 import alaw_decode, alaw_encode, mulaw_decode, mulaw_encode

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # removed in Python 3.13; the reference while it exists

ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))
CODECS = {
    "ULAW": (mulaw_encode, mulaw_decode, audioop.lin2ulaw, audioop.ulaw2lin),
    "ALAW": (alaw_encode, alaw_decode, audioop.lin2alaw, audioop.alaw2lin),
}


@pytest.mark.parametrize("name", CODECS)
def test_encode_matches_audioop_for_every_int16(name: str) -> None:
    encode, _, ref_encode, _ = CODECS[name]
    ours = np.frombuffer(encode(ALL_PCM), dtype=np.uint8)
    ref = np.frombuffer(ref_encode(ALL_PCM.tobytes(), 2), dtype=np.uint8)
    assert len(ours) == 65536
    mismatches = ALL_PCM[ours != ref]
    assert mismatches.size == 0, f"first differing inputs: {mismatches[:10]}"


@pytest.mark.parametrize("name", CODECS)
def test_decode_matches_audioop_for_every_code(name: str) -> None:
    _, decode, _, ref_decode = CODECS[name]
    ours = decode(ALL_CODES)
    assert ours.dtype == np.int16
    np.testing.assert_array_equal(ours, np.frombuffer(ref_decode(ALL_CODES, 2), dtype=np.int16))


def test_known_table_values() -> None:
    np.testing.assert_array_equal(mulaw_decode(b"\xff\x00\x7f\x80"), [0, -32124, 0, 32124])
    np.testing.assert_array_equal(alaw_decode(b"\xd5\x55"), [8, -8])
    assert mulaw_encode(np.array([0, 32767, -32768], dtype=np.int16)) == b"\xff\x80\x00"
    assert alaw_encode(np.array([0, -1, 32767, -32768], dtype=np.int16)) == b"\xd5\x55\xaa\x2a"


@pytest.mark.parametrize("name", CODECS)
def test_round_trip_error_is_small(name: str) -> None:
    encode, decode, _, _ = CODECS[name]
    x = ALL_PCM.astype(np.int64)
    y = decode(encode(ALL_PCM)).astype(np.int64)
    # Relative error of G.711 stays under 3.6% above the small segments, up to mu-law's clip level.
    big = (np.abs(x) > 1024) & (np.abs(x) <= 32124)
    assert np.max(np.abs(y[big] - x[big]) / np.abs(x[big])) < 0.036
    small = np.abs(x) <= 1024
    assert np.max(np.abs(y[small] - x[small])) <= 36


def _data_chunk(wav: bytes) -> bytes:
    pos = wav.index(b"data")
    size = int.from_bytes(wav[pos + 4 : pos + 8], "little")
    return wav[pos + 8 : pos + 8 + size]


@pytest.mark.parametrize("name", CODECS)
def test_against_libsndfile_wav(name: str, tmp_path) -> None:
    encode, decode, _, _ = CODECS[name]
    path = tmp_path / f"{name}.wav"
    sf.write(path, ALL_PCM, 8000, subtype=name)
    theirs = np.frombuffer(_data_chunk(path.read_bytes()), dtype=np.uint8)
    ours = np.frombuffer(encode(ALL_PCM), dtype=np.uint8)
    assert len(theirs) == len(ours)

    # Bit-exact for all non-negative input.
    differ = ours != theirs
    assert not differ[ALL_PCM >= 0].any()
    # libsndfile rounds some negative boundary values towards zero: then both codes must be the
    # two quantisation levels that bracket the input, and such cases must be rare.
    assert differ.sum() < 0.012 * len(ALL_PCM)
    x = ALL_PCM[differ].astype(np.int64)
    a = decode(ours[differ]).astype(np.int64)
    b = decode(theirs[differ]).astype(np.int64)
    assert np.all((np.minimum(a, b) <= x) & (x <= np.maximum(a, b)))

    # Decoding agrees everywhere: libsndfile's reading of our bytes equals ours.
    raw = tmp_path / f"{name}.raw"
    raw.write_bytes(ALL_CODES)
    read, _ = sf.read(raw, format="RAW", subtype=name, samplerate=8000, channels=1, dtype="int16")
    np.testing.assert_array_equal(read, decode(ALL_CODES))


def test_accepts_views_and_arrays() -> None:
    pcm = ALL_PCM[::7]  # non-contiguous view
    assert mulaw_encode(pcm) == mulaw_encode(pcm.copy())
    codes = np.frombuffer(b"\x00\x10\xff", dtype=np.uint8)
    np.testing.assert_array_equal(alaw_decode(codes), alaw_decode(b"\x00\x10\xff"))
    assert mulaw_decode(b"").shape == (0,)
    assert alaw_encode(np.zeros(0, dtype=np.int16)) == b""


def test_rejects_non_int16() -> None:
    with pytest.raises(TypeError):
        mulaw_encode(np.zeros(4, dtype=np.float32))
