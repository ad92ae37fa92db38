"""In-band DTMF: generating key tones and detecting key presses in call audio.

Detection runs Goertzel filters at the 8 DTMF frequencies over fixed analysis blocks of
12.75 ms (102 samples at 8 kHz, 204 at 16 kHz, as in spandsp): short enough that a 40 ms tone
and a 40 ms gap each cover two whole blocks at any alignment, long enough that neighbouring
DTMF frequencies (73 Hz apart at worst) are separated by ~20 dB. All blocks waiting in the
buffer are analysed at once: each Goertzel output is the DFT term at one exact frequency, so it
is computed as a (blocks x samples) @ (samples x 8) product instead of a per-sample recursion.

The call loop runs the detector on every 20 ms frame of every call, and almost every block holds
silence, line noise or speech. A block too weak to hold a key is skipped before any filter runs:
by Cauchy-Schwarz a Goertzel output is at most the block's (mean-removed) energy times its length,
so a block with less energy than `A_min^2 * block / 4` (A_min: the weakest accepted tone) cannot
pass the level check, and it is classified '' without the rest. The decisions are exactly those of
the full analysis; only the work is saved.

A block counts as a key only if it passes ITU-T Q.24-style checks (see `_classify`), and a key
is reported once it is seen on two consecutive blocks; it must then be absent (or another key)
for two blocks before it can be reported again.
"""

import numpy as np

ROW_HZ = (697.0, 770.0, 852.0, 941.0)
COL_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")  # KEYS[row][col]
_KEY_POS = {key: (r, c) for r, row in enumerate(KEYS) for c, key in enumerate(row)}

BLOCK_MS = 12.75
MIN_TONE_DBFS = -42.0  # each tone, as a sine relative to a full-scale sine
MAX_NORMAL_TWIST_DB = 8.0  # low-group tone louder than the high-group tone
MAX_REVERSE_TWIST_DB = 4.0  # high-group tone louder than the low-group tone
MIN_PEAK_RATIO_DB = 8.0  # best tone over the next best in the same group
MIN_TONE_FRACTION = 0.8  # share of block energy in the two tones; speech and noise fall short


def generate_dtmf(
    digits: str,
    rate_hz: int = 16000,
    tone_ms: int = 100,
    gap_ms: int = 100,
    level_dbfs: float = -10.0,
) -> np.ndarray:
    """Key tones for `digits` (0-9 * # A-D) as int16, with `gap_ms` of silence between keys.

    `level_dbfs` is the peak level of the two-tone signal (each tone is 6 dB lower), so any
    level up to 0 dBFS is free of clipping. Tones get 2 ms raised-cosine edges to avoid clicks.
    """
    n_tone = round(rate_hz * tone_ms / 1000)
    n_gap = round(rate_hz * gap_ms / 1000)
    amp = 32767 * 10 ** (level_dbfs / 20) / 2
    t = np.arange(n_tone) / rate_hz
    ramp = np.ones(n_tone)
    n_ramp = min(round(rate_hz * 0.002), n_tone // 2)
    if n_ramp:
        edge = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n_ramp) + 0.5) / n_ramp)
        ramp[:n_ramp], ramp[n_tone - n_ramp :] = edge, edge[::-1]
    parts: list[np.ndarray] = []
    for i, key in enumerate(digits.upper()):
        if key not in _KEY_POS:
            raise ValueError(f"not a DTMF key: {key!r} (use 0-9 * # A-D)")
        r, c = _KEY_POS[key]
        tone = np.sin(2 * np.pi * ROW_HZ[r] * t) + np.sin(2 * np.pi * COL_HZ[c] * t)
        if i:
            parts.append(np.zeros(n_gap))
        parts.append(amp * ramp * tone)
    if not parts:
        return np.zeros(0, dtype=np.int16)
    return np.clip(np.rint(np.concatenate(parts)), -32768, 32767).astype(np.int16)


class DtmfDetector:
    """Feed audio with `process` (20 ms frames or any length); get each key press once."""

    def __init__(self, rate_hz: int = 16000) -> None:
        self.rate_hz = rate_hz
        self.block = round(rate_hz * BLOCK_MS / 1000)
        n = np.arange(self.block)
        freqs = np.array(ROW_HZ + COL_HZ)
        phase = 2 * np.pi * np.outer(n, freqs) / rate_hz
        # Samples are normalised to full scale = 1.0 before this basis is applied.
        self._basis = np.concatenate([np.cos(phase), np.sin(phase)], axis=1)
        # Energy a sine of amplitude A leaves in a block is A^2 * block / 2; |X|^2 = (A*block/2)^2.
        self._min_tone_power = (10 ** (MIN_TONE_DBFS / 20) * self.block / 2) ** 2
        # Below this mean-removed energy no tone reaches _min_tone_power (half of the bound: rounding margin).
        self._min_block_energy = 0.5 * 10 ** (MIN_TONE_DBFS / 10) * self.block / 4
        self.reset()

    def reset(self) -> None:
        """Forget buffered audio and key state (e.g. at the start of a call)."""
        self._pending = np.zeros(0, dtype=np.float64)
        self._last_hit = ""
        self._current = ""

    def process(self, frame: np.ndarray) -> str | None:
        """Analyse the next chunk; return the key confirmed in it, or None.

        With 20 ms frames at most one key can be confirmed per call; a long chunk holding
        several presses returns them all, in order, as one string.
        """
        samples = np.asarray(frame, dtype=np.float64).reshape(-1) / 32768.0
        buf = np.concatenate([self._pending, samples]) if self._pending.size else samples
        n_blocks = len(buf) // self.block
        self._pending = buf[n_blocks * self.block :].copy()
        if n_blocks == 0:
            return None
        blocks = buf[: n_blocks * self.block].reshape(n_blocks, self.block)
        sums = blocks.sum(axis=1)
        loud = np.einsum("ij,ij->i", blocks, blocks) - sums * sums / self.block >= self._min_block_energy
        if not loud.any():
            if self._last_hit or self._current:   # a key (or a first hit) ends: the debounce must see it
                self._debounce([""] * n_blocks)
            return None
        if loud.all():
            hits = self._classify(blocks)
        else:
            hits = [""] * n_blocks
            for i, hit in zip(np.flatnonzero(loud), self._classify(blocks[loud]), strict=True):
                hits[i] = hit
        return self._debounce(hits)

    def _debounce(self, hits: list[str]) -> str | None:
        found = []
        for hit in hits:
            # Debounce: a value must repeat on two blocks to become the current state.
            if hit == self._last_hit and hit != self._current:
                self._current = hit
                if hit:
                    found.append(hit)
            self._last_hit = hit
        return "".join(found) or None

    def _classify(self, blocks: np.ndarray) -> list[str]:
        """The key each block holds ('' for none), after Q.24-style validity checks."""
        blocks = blocks - blocks.mean(axis=1, keepdims=True)  # a DC offset is not signal
        xy = blocks @ self._basis
        power = xy[:, :8] ** 2 + xy[:, 8:] ** 2  # Goertzel |X(f)|^2 for each block x tone
        rows, cols = power[:, :4], power[:, 4:]
        row_p, col_p = rows.max(axis=1), cols.max(axis=1)
        total = np.sum(blocks**2, axis=1)
        # The level and energy-share checks first: speech and noise fail them, and nothing else is computed.
        ok = (
            # Loud enough: each tone above the minimum level.
            (row_p >= self._min_tone_power)
            & (col_p >= self._min_tone_power)
            # Nearly all the block's energy is in the two tones (converted from |X|^2).
            & (2 * (row_p + col_p) / self.block >= MIN_TONE_FRACTION * total)
        )
        if not ok.any():
            return [""] * len(blocks)
        r = np.argmax(rows, axis=1)
        c = np.argmax(cols, axis=1)
        next_row = np.sort(rows, axis=1)[:, -2]
        next_col = np.sort(cols, axis=1)[:, -2]
        peak = 10 ** (MIN_PEAK_RATIO_DB / 10)
        ok &= (
            # Twist: the two tones have comparable levels.
            (row_p <= col_p * 10 ** (MAX_NORMAL_TWIST_DB / 10))
            & (col_p <= row_p * 10 ** (MAX_REVERSE_TWIST_DB / 10))
            # Each tone clearly dominates the other frequencies of its group.
            & (row_p >= next_row * peak)
            & (col_p >= next_col * peak)
        )
        return [KEYS[ri][ci] if k else "" for ri, ci, k in zip(r, c, ok, strict=True)]


def detect_dtmf(pcm: np.ndarray, rate_hz: int = 16000) -> str:
    """All key presses in a whole buffer, e.g. a recorded prompt or a test signal."""
    detector = DtmfDetector(rate_hz)
    return detector.process(pcm) or ""
