"""Jitter buffer for one inbound RTP stream: packets in, in any order; fixed-size frames out.

`put` files a packet by its sequence number (16-bit, unwrapped) and places its audio on the
timeline by its RTP timestamp (32-bit, unwrapped). `pop`, called once per frame by a playout
clock, returns the audio for the next `frame_samples` of the timeline; missing audio (lost or
late packets, gaps in the timestamps) comes back as zeros, or as None when the whole frame is
empty. Playout runs `jitter_ms` behind the first packet, so packets up to that late still play.

Adaptation, kept simple and explicit:
- a gap with later packets already buffered is loss: it plays as silence and playout moves on;
- when the buffer runs dry, playout waits (silence, timeline held): a slow sender clock or a
  delay spike stretches the audio instead of losing packets;
- a packet that starts a talkspurt (marker bit) or follows a few empty frames re-anchors
  playout `jitter_ms` behind it, so pauses reset the delay;
- a packet behind the playout point is late and dropped; three late in a row re-anchor;
- when the buffer stays deeper than it should for half a second, playout drops quiet frames
  (any frame after five seconds) until the delay is back near its target;
- a new SSRC, or a sequence jump confirmed by a second packet (RFC 3550 A.1), starts over.
"""

from collections import deque
from dataclasses import dataclass

import numpy as np

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
MAX_DROPOUT = 3000       # RFC 3550 A.1: a forward jump this big is a restart, not loss
MAX_MISORDER = 100       # ... and a backward one this big too
LATE_RESYNC = 3          # consecutive late packets that re-anchor playout
REANCHOR_EMPTY_FRAMES = 3
DEEP_FRAMES = 25         # frames the buffer must stay too deep before playout skips (500 ms)
FORCE_SKIP_FRAMES = 250  # ... and after this long it skips loud frames too (a line never quiet)
QUIET_LEVEL = 200        # mean |sample| (about -44 dBFS) below which a frame is skippable
SEEN_WINDOW = 512        # recent sequence numbers remembered to spot duplicates
MAX_PACKETS = 200        # buffered packets at most (a second of 5 ms packets)


@dataclass
class JitterStats:
    received: int = 0      # unique packets (audio and others) from the current stream
    expected: int = 0      # highest minus first sequence number + 1, current stream
    lost_before: int = 0   # lost in streams before the last resync
    duplicates: int = 0
    late: int = 0
    reordered: int = 0
    resyncs: int = 0
    skipped_frames: int = 0  # dropped to bring an over-deep buffer back to its target

    @property
    def lost(self) -> int:
        """RFC 3550 cumulative loss: sequence numbers never received (late ones were received)."""
        return self.lost_before + max(0, self.expected - self.received)


class JitterBuffer:
    def __init__(self, jitter_ms: int = 60, rate_hz: int = 8000, frame_ms: int = 20,
                 max_ms: int = 1000) -> None:
        if jitter_ms < 0 or rate_hz <= 0 or frame_ms <= 0:
            raise ValueError(f"bad jitter buffer settings: jitter_ms={jitter_ms} rate_hz={rate_hz} frame_ms={frame_ms}")
        self.frame_samples = rate_hz * frame_ms // 1000
        self.target = rate_hz * jitter_ms // 1000
        self.max_depth = max(rate_hz * max_ms // 1000, self.target + 4 * self.frame_samples)
        self.high_water = self.target + max(self.target, 2 * self.frame_samples)
        self.stats = JitterStats()
        self._ssrc: int | None = None
        self._reset_stream()

    def _reset_stream(self) -> None:
        self._packets: dict[int, tuple[int, np.ndarray]] = {}   # ext seq -> (ext ts, samples)
        self._first_seq: int | None = None
        self._max_seq = 0
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()
        self._ts_raw = 0
        self._ts_ext = 0
        self._play_ts: int | None = None
        self._played_end = 0        # end of the last real audio played (ext ts)
        self._late_streak = 0
        self._empty_frames = 0
        self._deep_frames = 0
        self._jump: tuple[int, int, np.ndarray | None, bool] | None = None  # probation packet

    def _resync(self) -> None:
        s = self.stats
        s.lost_before += max(0, s.expected - s.received)
        s.received = s.expected = 0
        s.resyncs += 1
        self._reset_stream()

    @property
    def depth(self) -> int:
        """Samples buffered ahead of the playout point."""
        if self._play_ts is None or not self._packets:
            return 0
        return max(ts + len(pcm) for ts, pcm in self._packets.values()) - self._play_ts

    def put(self, seq: int, ts: int, samples: np.ndarray | None, *, ssrc: int = 0, marker: bool = False) -> str:
        """File one packet; `samples` None for packets without audio (DTMF events, comfort noise),
        which count for loss and order only. Returns what happened:
        ok | duplicate | late | probation (sequence jump, waiting for a second packet)."""
        if self._ssrc is not None and ssrc != self._ssrc:
            self._resync()
        self._ssrc = ssrc
        seq &= SEQ_MOD - 1
        ts &= TS_MOD - 1
        if self._first_seq is None:
            return self._start(seq, ts, samples, marker)
        delta = (seq - self._max_seq) % SEQ_MOD
        if delta < MAX_DROPOUT:
            ext = self._max_seq + delta
        elif delta > SEQ_MOD - MAX_MISORDER:
            ext = self._max_seq - (SEQ_MOD - delta)
        else:
            return self._jumped(seq, ts, samples, marker)
        self._jump = None
        return self._file(ext, ts, samples, marker)

    def _start(self, seq: int, ts: int, samples: np.ndarray | None, marker: bool) -> str:
        self._first_seq = self._max_seq = seq
        self._ts_raw = self._ts_ext = ts
        return self._file(seq, ts, samples, marker)

    def _jumped(self, seq: int, ts: int, samples: np.ndarray | None, marker: bool) -> str:
        pending = self._jump
        if pending is not None and seq == (pending[0] + 1) % SEQ_MOD:
            self._resync()
            self._start(*pending)
            return self.put(seq, ts, samples, ssrc=self._ssrc or 0, marker=marker)
        self._jump = (seq, ts, samples, marker)
        return "probation"

    def _file(self, ext: int, ts: int, samples: np.ndarray | None, marker: bool) -> str:
        s = self.stats
        if ext in self._seen:
            s.duplicates += 1
            return "duplicate"
        self._remember(ext)
        s.received += 1
        if ext < self._max_seq:
            s.reordered += 1
        else:
            self._max_seq = ext
        s.expected = self._max_seq - (self._first_seq or 0) + 1
        if samples is None or len(samples) == 0:
            return "ok"
        return self._place(ext, self._extend_ts(ts), samples, marker)

    def _remember(self, ext: int) -> None:
        self._seen.add(ext)
        self._seen_order.append(ext)
        if len(self._seen_order) > SEEN_WINDOW:
            self._seen.discard(self._seen_order.popleft())

    def _extend_ts(self, ts: int) -> int:
        diff = (ts - self._ts_raw) % TS_MOD
        if diff >= TS_MOD // 2:
            diff -= TS_MOD
        ext = self._ts_ext + diff
        if diff > 0:
            self._ts_raw, self._ts_ext = ts, ext
        return ext

    def _anchor(self, ext_ts: int) -> None:
        self._play_ts = max(self._played_end, ext_ts - self.target)
        self._late_streak = self._empty_frames = self._deep_frames = 0

    def _place(self, ext: int, ext_ts: int, samples: np.ndarray, marker: bool) -> str:
        if self._play_ts is None:
            self._play_ts = self._played_end = ext_ts - self.target
        elif not self._packets and (marker or self._empty_frames >= REANCHOR_EMPTY_FRAMES):
            self._anchor(ext_ts)
        elif ext_ts - self._play_ts > self.max_depth:   # timestamps leapt forward
            self.stats.resyncs += 1
            self._packets.clear()
            self._anchor(ext_ts)
        if ext_ts < self._play_ts:
            self.stats.late += 1
            self._late_streak += 1
            if self._late_streak < LATE_RESYNC:
                return "late"
            self.stats.resyncs += 1   # consistently late: play them, later
            self._played_end = min(self._played_end, ext_ts - self.target)
            self._anchor(ext_ts)
        self._late_streak = 0
        self._packets[ext] = (ext_ts, samples)
        if len(self._packets) > MAX_PACKETS:       # tiny packets from a broken peer: bound the work
            del self._packets[min(self._packets)]
            self.stats.skipped_frames += 1
        return "ok"

    def pop(self) -> np.ndarray | None:
        """The next frame of audio (zeros where packets are missing), or None if it is all gap."""
        if self._play_ts is None:
            return None
        if not self._packets:        # ran dry: wait for the stream instead of running past it
            self._empty_frames += 1
            return None
        self._empty_frames = 0
        out = self._take()
        if self._shrinking() and self._packets and (
                out is None or _quiet(out) or self._deep_frames > FORCE_SKIP_FRAMES):
            self.stats.skipped_frames += 1     # too much delay: play the next frame instead of this one
            out = self._take()
        return out

    def _take(self) -> np.ndarray | None:
        assert self._play_ts is not None
        start = self._play_ts
        end = start + self.frame_samples
        out: np.ndarray | None = None
        for ext in sorted(self._packets):
            ts, pcm = self._packets[ext]
            p_end = ts + len(pcm)
            if p_end <= start:           # stale (behind a re-anchor or skip)
                del self._packets[ext]
                continue
            if ts >= end:
                continue
            if out is None:
                out = np.zeros(self.frame_samples, dtype=pcm.dtype)
            lo, hi = max(ts, start), min(p_end, end)
            out[lo - start : hi - start] = pcm[lo - ts : hi - ts]
            self._played_end = max(self._played_end, hi)
            if p_end <= end:
                del self._packets[ext]
        self._play_ts = end
        return out

    def _shrinking(self) -> bool:
        """Too deep for DEEP_FRAMES in a row (over high water, then until back near the target)."""
        depth = self.depth
        if depth <= self.target + self.frame_samples:
            self._deep_frames = 0
        elif depth > self.high_water or self._deep_frames:
            self._deep_frames += 1
        return self._deep_frames >= DEEP_FRAMES


def _quiet(pcm: np.ndarray) -> bool:
    return float(np.abs(pcm.astype(np.int32)).mean()) < QUIET_LEVEL
