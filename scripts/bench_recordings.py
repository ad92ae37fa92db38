"""Call recordings (ivr/recordings.py): what the audio tap costs the call loop per frame, and how
fast the one writer thread turns frames into WAV files.

    .venv/bin/python scripts/bench_recordings.py [--calls 16] [--seconds 60]

Frames are fed as fast as the CPU allows (not in real time), with a queue large enough that
nothing is turned into silence; figures are for docs/BENCHMARKS.md.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ivr.audio.frames import FRAME_MS, FRAME_SAMPLES
from ivr.recordings import Recorder, RecordingPolicy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=60, help="audio per call")
    args = parser.parse_args()
    frames = args.seconds * 1000 // FRAME_MS
    rng = np.random.default_rng(0)
    inbound = (rng.standard_normal(FRAME_SAMPLES) * 3000).astype(np.int16)
    with tempfile.TemporaryDirectory() as folder:
        recorder = Recorder(Path(folder), RecordingPolicy(default=True), queue_batches=10**6).start()
        taps = [recorder.open(f"bench-{i}", "bench") for i in range(args.calls)]
        tap_s = 0.0
        t0 = time.perf_counter()
        for _ in range(frames):
            t1 = time.perf_counter()
            for tap in taps:
                tap(inbound, inbound, False)
            tap_s += time.perf_counter() - t1
        for tap in taps:
            tap.close()
        recorder.close(timeout_s=600)
        wall_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in Path(folder).rglob("*.wav"))
    audio_s = args.calls * args.seconds
    print(f"{args.calls} calls x {args.seconds} s: tap {tap_s / (frames * args.calls) * 1e6:.1f} us per frame "
          f"(call loop side); all written in {wall_s:.2f} s = {audio_s / wall_s:.0f}x real time; "
          f"{size / 1e6:.0f} MB of WAV; saved {recorder.saved}, dropped "
          f"{sum(t.dropped_ms for t in taps)} ms")


if __name__ == "__main__":
    main()
