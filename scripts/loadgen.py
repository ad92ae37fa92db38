"""Load generator: N concurrent calls against `ivr serve`, real caller audio, real engines.

Starts `ivr serve` (a subprocess, so its CPU and memory are measured alone) on loopback,
renders a caller with piper through an 8 kHz mu-law line, then places N simultaneous calls
over the Twilio Media Streams bridge (`--via ws`) or SIP (`--via sip`), each paced in real
time, and reports per-turn latency percentiles (last voiced caller frame -> first reply
frame heard, endpoint silence included), turns answered, replies right (the server's call
records: the expected path), CPU seconds per call and memory per added call.

    .venv/bin/python scripts/loadgen.py --calls 1 4 8 16 --via ws --preset en --json build/bench/load.json

Every loop is bounded: N <= 64 calls, each call ends after its script, the run after --timeout.
"""

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine_info

from ivr.audio.resample import resample
from ivr.callgen import LINE_RATE_HZ, render
from ivr.trace import write_json

# Three caller turns (as in ../shared/design/TARGETS.md), ~21 s a call. English runs the demo
# hotline with a piper caller (whisper); Korean a flow of the same shape with an espeak-ng
# caller (vosk: the registry's only vosk model is Korean).
PRESETS = {
    "en": {"flow": "flows/demo.yaml", "voice": "piper", "asr": "whisper",
           "script": [("pause", 3000), ("say", "track my order"),      # barges in on the menu
                      ("pause", 6500), ("say", "main menu"),
                      ("pause", 3000), ("say", "opening hours"),       # barges in on the menu again
                      ("pause", 6000)]},
    "ko": {"flow": "scripts/bench_flows/ko_menu.yaml", "voice": "espeak:ko", "asr": "vosk",
           "script": [("pause", 2500), ("say", "주문 조회"),
                      ("pause", 5000), ("say", "메뉴"),
                      ("pause", 2500), ("say", "영업 시간"),
                      ("pause", 6000)]},
}
EXPECTED_PATH = ["greet", "main", "track", "anything_else", "main", "hours", "anything_else"]
MAX_CALLS = 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def caller_audio(preset: str = "en") -> tuple[np.ndarray, list[int]]:
    """16 kHz caller audio as it arrives from a phone line, and where each utterance ends (ms)."""
    from ivr.tts.registry import load_tts

    tts = load_tts(PRESETS[preset]["voice"], "ko-KR" if preset == "ko" else "en-US")
    parts, ends, t_ms = [], [], 0
    for segment in PRESETS[preset]["script"]:
        audio = resample(render([segment], tts, noise_dbfs=None), LINE_RATE_HZ, 16000)
        parts.append(audio)
        t_ms += len(audio) * 1000 // 16000
        if segment[0] == "say":
            ends.append(t_ms)
    return np.concatenate(parts), ends


class Server:
    """`ivr serve` in a subprocess, with /proc-based CPU and memory readings."""

    def __init__(self, via: str, max_calls: int, records: Path, asr: str, flow: str) -> None:
        self.port, self.http_port = free_port(), free_port()
        listen = {"ws": ["--ws", f"127.0.0.1:{self.port}"], "sip": ["--sip", f"127.0.0.1:{self.port}"]}[via]
        cmd = [str(Path(sys.executable).parent / "ivr"), "serve", "--flow", flow, *listen,
               "--http", f"127.0.0.1:{self.http_port}", "--max-calls", str(max_calls), "--records", str(records),
               "--asr", asr]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                raise SystemExit(f"loadgen: ivr serve exited ({self.proc.returncode})")
            if line.startswith("ivr: ready"):
                return
        raise SystemExit("loadgen: ivr serve was not ready within 180 s")

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def health(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/health", timeout=5) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def one_call(via: str, port: int, audio: np.ndarray, ends: list[int], index: int):
    if via == "ws":
        from ivr.clients.twilio_ws import run_ws_call

        return await run_ws_call(f"ws://127.0.0.1:{port}/media", audio, utterance_ends_ms=ends,
                                 call_sid=f"CAload{index:04d}", tail_ms=2000)
    from ivr.clients.sip import run_sip_call

    return await run_sip_call("127.0.0.1", port, audio, utterance_ends_ms=ends, tail_ms=2000)


async def staggered(delay_s: float, coro):
    await asyncio.sleep(delay_s)
    return await coro


async def run_level(server: Server, via: str, n: int, audio, ends, peak_rss: list[float], stagger_ms: int = 0):
    async def sample_rss():
        while True:
            peak_rss.append(server.rss_mb())
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample_rss())
    try:
        # stagger_ms spreads the call starts evenly (0: all callers speak at the same instants,
        # the worst case for a shared recognizer).
        return await asyncio.gather(*(staggered(i * stagger_ms / max(n, 1) / 1000,
                                                one_call(via, server.port, audio, ends, i)) for i in range(n)),
                                    return_exceptions=True)
    finally:
        sampler.cancel()


def replies_right(records: Path) -> tuple[int, int]:
    """(right, recorded) over the measured calls' records (not the warm-up's: call sids CAload9xxx)."""
    docs = [json.loads(f.read_text()) for f in sorted(records.rglob("*.json"))]
    docs = [d for d in docs if not d.get("call", {}).get("transport_id", "").startswith("CAload9")]
    right = sum(1 for d in docs if d["path"][:len(EXPECTED_PATH)] == EXPECTED_PATH)
    return right, len(docs)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(float(np.percentile(values, q)), 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--via", choices=["ws", "sip"], default="ws")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="en", help="en: whisper; ko: vosk")
    ap.add_argument("--timeout", type=float, default=900, help="seconds for the whole run")
    ap.add_argument("--stagger-ms", type=int, default=0, help="spread call starts over this many ms")
    ap.add_argument("--warmup", type=int, default=1, choices=range(0, 3),
                    help="untimed calls placed first on each server (first-use costs: model pages, caches)")
    ap.add_argument("--json", help="write the report here")
    args = ap.parse_args()
    if max(args.calls) > MAX_CALLS:
        raise SystemExit(f"loadgen: at most {MAX_CALLS} calls")
    preset = PRESETS[args.preset]
    args.asr = preset["asr"]
    audio, ends = caller_audio(args.preset)
    started = time.monotonic()
    rows = []
    for n in args.calls:
        if time.monotonic() - started > args.timeout:
            print(f"loadgen: --timeout reached before N={n}")
            break
        records = Path("build/bench/records") / f"{args.via}-{n}"
        shutil.rmtree(records, ignore_errors=True)
        server = Server(args.via, n, records, args.asr, preset["flow"])
        try:
            for i in range(args.warmup):   # not measured: the first caller after a start pays first-use costs
                asyncio.run(asyncio.wait_for(one_call(args.via, server.port, audio, ends, 9000 + i), args.timeout))
            idle_rss, cpu0 = server.rss_mb(), server.cpu_s()
            peak: list[float] = []
            results = asyncio.run(asyncio.wait_for(run_level(server, args.via, n, audio, ends, peak, args.stagger_ms),
                                                   args.timeout))
            cpu = server.cpu_s() - cpu0
        finally:
            server.stop()
        ok = [r for r in results if not isinstance(r, BaseException)]
        errors = [repr(r) for r in results if isinstance(r, BaseException)]
        lat = [x for r in ok for x in r.reply_latencies_ms if x is not None]
        turns = len(ends) * n
        right, recorded = replies_right(records)
        row = {"calls": n, "via": args.via, "asr": args.asr, "stagger_ms": args.stagger_ms, "warmup": args.warmup,
               "load_avg": [round(x, 2) for x in os.getloadavg()], "turns": turns,
               "answered": len(lat),
               "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "max_ms": pct(lat, 100),
               "replies_right": right, "records": recorded, "errors": errors[:3],
               "cpu_s_per_call": round(cpu / n, 2), "idle_rss_mb": round(idle_rss, 1),
               "peak_rss_mb": round(max(peak or [idle_rss]), 1),
               "mb_per_added_call": round((max(peak or [idle_rss]) - idle_rss) / n, 1)}
        rows.append(row)
        print(f"N={n:3d} {args.via}: p50 {row['p50_ms']} ms  p95 {row['p95_ms']} ms  answered {len(lat)}/{turns}"
              f"  right {right}/{recorded}  cpu {row['cpu_s_per_call']} s/call  +{row['mb_per_added_call']} MB/call"
              + (f"  errors: {errors[:1]}" if errors else ""), flush=True)
    report = {"bench": "load", "flow": preset["flow"], "script": preset["script"], "utterance_ends_ms": ends,
              "latency": "last voiced caller frame -> first reply frame heard; includes the endpoint silence "
                         "(200 ms early match or 600 ms)", "machine": machine_info(), "levels": rows,
              "date": time.strftime("%Y-%m-%d")}
    if args.json:
        write_json(args.json, report)
    return 0 if rows and all(r["answered"] == r["turns"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
