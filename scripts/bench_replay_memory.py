"""Peak memory of feeding a long recording to replay: read whole (as replay did) vs streamed.

    .venv/bin/python scripts/bench_replay_memory.py --minutes 30 --json build/bench/replay_memory.json

Writes a WAV of `--minutes` of line hiss at `--rate` Hz with `--channels` channels (16-bit PCM,
the shape of a desk recorder's file), then, each in a fresh process (peak RSS = ru_maxrss):

- whole: `read_audio` (the whole file as float64, downmixed and resampled to 16 kHz) and every
  20 ms frame kept for both sides, as `ivr replay` did before streaming;
- streamed: `WavReplayTransport(wav_blocks(...), keep_audio=False)`, every frame taken from
  `inbound()`, as `ivr replay` does now without `--out`;
- baseline: the same imports, nothing read.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = {
    "baseline": """
import numpy, soundfile
from ivr.transports.wavfile import WavReplayTransport, wav_blocks
from ivr.audio.wavio import read_audio
""",
    "whole": """
from ivr.audio.frames import split_frames
from ivr.audio.wavio import read_audio
samples = read_audio(PATH)
inbound = list(split_frames(samples))
outbound = [f.copy() for f in inbound]
FRAMES = len(inbound)
""",
    "streamed": """
import asyncio
from ivr.transports.wavfile import WavReplayTransport, wav_blocks
t = WavReplayTransport(wav_blocks(PATH), keep_audio=False)
async def drain():
    async for _ in t.inbound():
        pass
asyncio.run(drain())
FRAMES = t.frames_in
""",
}
TAIL = """
import json, resource
print(json.dumps({"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "frames": globals().get("FRAMES", 0)}))
"""


def make_wav(path: Path, minutes: float, rate_hz: int, channels: int) -> None:
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(3)
    total = int(minutes * 60 * rate_hz)
    with sf.SoundFile(str(path), "w", rate_hz, channels, subtype="PCM_16", format="WAV") as f:
        for start in range(0, total, rate_hz * 10):
            n = min(rate_hz * 10, total - start)
            f.write((rng.normal(0, 30, (n, channels))).astype(np.int16))


def measure(kind: str, path: Path) -> dict:
    code = CHILD[kind].replace("PATH", repr(str(path))) + TAIL
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(time.perf_counter() - started, 2)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=int, default=44100)
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        make_wav(wav, args.minutes, args.rate, args.channels)
        size_mb = round(wav.stat().st_size / 2**20, 1)
        rows = {kind: measure(kind, wav) for kind in ("baseline", "whole", "streamed")}
    print(f"{args.minutes:g} min, {args.rate} Hz, {args.channels} ch, 16-bit PCM: {size_mb} MB file")
    print("| reading | peak RSS (MB) | above baseline (MB) | frames | wall (s) |")
    print("|---|---:|---:|---:|---:|")
    for kind, r in rows.items():
        above = round(r["peak_rss_mb"] - rows["baseline"]["peak_rss_mb"], 1)
        print(f"| {kind} | {r['peak_rss_mb']} | {above} | {r['frames']} | {r['wall_s']} |")
    if args.json:
        from ivr.trace import write_json

        write_json(args.json, {"minutes": args.minutes, "rate_hz": args.rate, "channels": args.channels,
                               "file_mb": size_mb, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
