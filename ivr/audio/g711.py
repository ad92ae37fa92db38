"""G.711 mu-law and A-law, bit-exact with the reference coder (Sun g711.c, as used by audioop).

Telephone wires carry 8-bit G.711 codes; the call loop wants int16. Both directions are table
lookups: 256 entries to decode, 65536 entries (one per int16 value) to encode. The tables are
built once at import with vectorised numpy, so encoding and decoding never loop per sample.

16-bit input is reduced to 14 (mu-law) or 13 (A-law) bits with an arithmetic shift, exactly as
the reference does. libsndfile truncates negative values towards zero instead, so for up to ~1.2%
of negative inputs (those on a decision boundary) it picks the neighbouring code; decoding
agrees everywhere.
"""

import numpy as np

# Upper bounds of the 8 segments for the magnitudes the reference encoders work on.
_MULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)
_MULAW_BIAS = 0x84
_MULAW_CLIP = 8159  # largest 14-bit magnitude before the bias is added


def _all_int16() -> np.ndarray:
    """Every int16 value, ordered so that index == value viewed as uint16."""
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


def _build_mulaw_encode() -> np.ndarray:
    pcm = _all_int16() >> 2  # 14-bit, arithmetic shift (floor) as in the reference
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), _MULAW_CLIP) + (_MULAW_BIAS >> 2)
    seg = np.searchsorted(_MULAW_SEG_END, mag)  # first segment whose end >= mag
    # Magnitudes past the last segment saturate to the largest code.
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | ((mag >> (seg + 1)) & 0x0F))
    return (code ^ mask).astype(np.uint8)


def _build_mulaw_decode() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + _MULAW_BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _MULAW_BIAS - t, t - _MULAW_BIAS).astype(np.int16)


def _build_alaw_encode() -> np.ndarray:
    pcm = _all_int16() >> 3  # 13-bit
    negative = pcm < 0
    mask = np.where(negative, 0x55, 0xD5)
    mag = np.where(negative, -pcm - 1, pcm)
    seg = np.searchsorted(_ALAW_SEG_END, mag)
    shift = np.maximum(seg, 1)  # segments 0 and 1 share the same step size
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | ((mag >> shift) & 0x0F))
    return (code ^ mask).astype(np.uint8)


def _build_alaw_decode() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)


_MULAW_ENC = _build_mulaw_encode()
_MULAW_DEC = _build_mulaw_decode()
_ALAW_ENC = _build_alaw_encode()
_ALAW_DEC = _build_alaw_decode()
for _table in (_MULAW_ENC, _MULAW_DEC, _ALAW_ENC, _ALAW_DEC):
    _table.flags.writeable = False


def _as_uint16_index(pcm: np.ndarray) -> np.ndarray:
    samples = np.asarray(pcm)
    if samples.dtype != np.int16:
        raise TypeError(f"G.711 encoding needs int16 samples, got {samples.dtype}")
    return np.ascontiguousarray(samples).reshape(-1).view(np.uint16)


def _as_codes(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data.astype(np.uint8, copy=False).reshape(-1)
    return np.frombuffer(data, dtype=np.uint8)


def mulaw_encode(pcm: np.ndarray) -> bytes:
    """int16 samples -> G.711 mu-law bytes (one byte per sample)."""
    return _MULAW_ENC[_as_uint16_index(pcm)].tobytes()


def mulaw_decode(data: bytes) -> np.ndarray:
    """G.711 mu-law bytes -> int16 samples."""
    return _MULAW_DEC[_as_codes(data)]


def alaw_encode(pcm: np.ndarray) -> bytes:
    """int16 samples -> G.711 A-law bytes (one byte per sample)."""
    return _ALAW_ENC[_as_uint16_index(pcm)].tobytes()


def alaw_decode(data: bytes) -> np.ndarray:
    """G.711 A-law bytes -> int16 samples."""
    return _ALAW_DEC[_as_codes(data)]
