"""WAV files in and out, via libsndfile (soundfile).

Reading accepts the WAV flavours people actually have (8/16/24/32-bit PCM, float, mu-law,
A-law; any channel count and rate) and always returns the internal format: mono int16 at the
requested rate. Every failure becomes a one-line UserError with a sox command to fix the file,
because a libsndfile traceback tells a caller nothing about what to do.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ivr.audio.frames import INTERNAL_RATE_HZ
from ivr.audio.resample import resample
from ivr.errors import UserError

# RIFF-based containers libsndfile reads the same way as plain WAV.
_WAV_FORMATS = {"WAV", "WAVEX", "RF64", "W64"}
# Sample formats that decode exactly and are tested; compressed ones (ADPCM, GSM, MP3) are refused
# rather than half-supported.
_SUBTYPES = {"PCM_U8", "PCM_S8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW"}
_CONVERT_HINT = "convert it with: sox in.ext -r 16000 -c 1 out.wav"
_SOUNDFILE_ERRORS = (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError)

PathLike = str | os.PathLike[str]


@dataclass(frozen=True, slots=True)
class WavInfo:
    """What a WAV file holds, before any conversion."""

    rate_hz: int
    channels: int
    subtype: str  # libsndfile name: PCM_16, PCM_24, FLOAT, ULAW, ...
    duration_s: float
    frames: int = 0  # samples per channel


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "error_string", None) or str(exc) or type(exc).__name__
    return " ".join(text.split()).rstrip(".")


def _check_readable(path: Path) -> None:
    """Turn the common file-system problems into clear messages before libsndfile sees them."""
    if not path.exists():
        raise UserError(f"no such file: {path}", "check the path")
    if path.is_dir():
        raise UserError(f"cannot read {path}: it is a directory, not a WAV file")
    try:
        with path.open("rb") as fh:
            head = fh.read(12)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not head:
        raise UserError(f"cannot read {path}: the file is empty (0 bytes)", _CONVERT_HINT)


def probe(path: PathLike) -> WavInfo:
    """Describe a WAV file without decoding it; raises UserError for anything unusable."""
    p = Path(path)
    _check_readable(p)
    try:
        info = sf.info(str(p))
    except _SOUNDFILE_ERRORS as exc:
        raise UserError(
            f"cannot read {p}: not a WAV file or corrupt ({_reason(exc)})", _CONVERT_HINT
        ) from None
    if info.format not in _WAV_FORMATS:
        raise UserError(
            f"cannot read {p}: it is a {info.format} file, not a WAV file", _CONVERT_HINT
        )
    if info.subtype not in _SUBTYPES:
        raise UserError(
            f"cannot read {p}: unsupported sample format {info.subtype} ({info.subtype_info})",
            _CONVERT_HINT,
        )
    if info.samplerate <= 0 or info.channels <= 0:
        raise UserError(f"cannot read {p}: corrupt WAV header", _CONVERT_HINT)
    return WavInfo(
        rate_hz=int(info.samplerate),
        channels=int(info.channels),
        subtype=info.subtype,
        duration_s=info.frames / info.samplerate,
        frames=int(info.frames),
    )


def read_audio(
    path: PathLike, channel: int | None = None, rate_hz: int = INTERNAL_RATE_HZ
) -> np.ndarray:
    """Read a WAV file as mono int16 at `rate_hz`.

    `channel` (0-based) picks one channel; without it all channels are averaged, which is the
    usual downmix but cancels content that is out of phase between channels (pick a channel
    for such recordings, or for two-party call recordings with one speaker per side).
    """
    p = Path(path)
    info = probe(p)
    if channel is not None and not 0 <= channel < info.channels:
        raise UserError(
            f"cannot read {p}: channel {channel} out of range, the file has {info.channels} "
            f"channel{'s' if info.channels != 1 else ''}",
            f"use a channel from 0 to {info.channels - 1}",
        )
    if info.frames == 0:
        raise UserError(f"cannot read {p}: the file contains no audio", _CONVERT_HINT)
    try:
        data, _ = sf.read(str(p), dtype="float64", always_2d=True)
    except _SOUNDFILE_ERRORS as exc:
        raise UserError(
            f"cannot read {p}: not a WAV file or corrupt ({_reason(exc)})", _CONVERT_HINT
        ) from None
    if data.shape[0] == 0:
        raise UserError(f"cannot read {p}: the file contains no audio", _CONVERT_HINT)
    mono = data[:, channel] if channel is not None else data.mean(axis=1)
    # Float files may exceed full scale; clip rather than wrap.
    pcm = np.clip(np.rint(mono * 32768.0), -32768, 32767).astype(np.int16)
    return resample(pcm, info.rate_hz, rate_hz)


def _as_mono_int16(pcm: np.ndarray, what: str) -> np.ndarray:
    samples = np.asarray(pcm)
    if samples.dtype != np.int16:
        raise TypeError(f"{what} must be int16 samples, got {samples.dtype}")
    if samples.ndim != 1:
        raise ValueError(f"{what} must be mono (1-D), got shape {samples.shape}")
    return samples


def _write(path: PathLike, data: np.ndarray, rate_hz: int) -> None:
    if rate_hz <= 0:
        raise ValueError(f"sample rate must be positive, got {rate_hz}")
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(p), data, rate_hz, subtype="PCM_16", format="WAV")
    except _SOUNDFILE_ERRORS as exc:
        raise UserError(f"cannot write {p}: {_reason(exc)}", "check the directory") from None


def write_wav(path: PathLike, pcm: np.ndarray, rate_hz: int) -> None:
    """Write mono int16 samples as a 16-bit PCM WAV, creating parent directories."""
    _write(path, _as_mono_int16(pcm, "pcm"), rate_hz)


def write_stereo(path: PathLike, left: np.ndarray, right: np.ndarray, rate_hz: int) -> None:
    """Write two int16 channels as a stereo 16-bit WAV (e.g. caller left, IVR right).

    The shorter side is padded with silence at the end.
    """
    left = _as_mono_int16(left, "left")
    right = _as_mono_int16(right, "right")
    n = max(len(left), len(right))
    data = np.zeros((n, 2), dtype=np.int16)
    data[: len(left), 0] = left
    data[: len(right), 1] = right
    _write(path, data, rate_hz)
