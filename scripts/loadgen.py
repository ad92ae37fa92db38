"""Load generator: N concurrent calls against `ivr serve`, real caller audio, real engines.

Starts `ivr serve` (a subprocess, so its CPU and memory are measured alone) on loopback,
renders a caller with piper through an 8 kHz mu-law line, then places N simultaneous calls
over the Twilio Media Streams bridge (`--via ws`) or SIP (`--via sip`), each paced in real
time, and reports per-turn latency percentiles (last voiced caller frame -> first reply
frame heard, endpoint silence included), turns answered, replies right (the server's call
records: the expected path), CPU seconds per call and memory per added call.

    .venv/bin/python scripts/loadgen.py --calls 1 4 8 16 --via ws --preset en --json build/bench/load.json
    .venv/bin/python scripts/loadgen.py --calls 1 16 --wording varied   # the same requests, reworded

`--wording exact` (the default): the callers say the menu's own phrases ("track my order"), which the
sound-alike matcher takes word for word, so intent matching never embeds the sentence. `--wording varied`
(en only): the same three requests of the same path reworded ("my parcel never arrived", VARIED), which
only the meaning (e5 sentence embeddings, ivr.flow.understand) takes: every turn embeds the caller's
sentence; they end at the 200 ms early endpoint because the flow takes them at once by meaning
(ivr/call_early.py; before that, they waited for the full 600 ms end-of-speech silence).
Each caller opens every sentence with words of their own
("so ...", "hi there ...": OPENERS, 24) so that no two callers say the same sentence (the server's e5
sentence cache would otherwise embed each sentence once and answer every other caller from it); the warm-up
caller says them bare, and the callers' sentences are lined up to end at the same instants, as in the exact
wording. The replies are checked as always (the recorded path).
Embedding ahead of matching (ivr/call_workers.py) can be turned off for A/B runs with IVR_EMBED_AHEAD=0 in
the environment (the server inherits it).

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
# --wording varied: the same requests reworded, each taken right at once by meaning only (with the demo flow's
# matcher: 0.91, 0.88, 0.97 against the 0.8 accept threshold; not word for word, so matching embeds them).
VARIED = {"en": ["my parcel never arrived", "please start from the beginning", "what time do you open tomorrow"]}
# ... each measured caller opening every sentence with their own words (every one checked with the demo flow: still
# taken right at once, by meaning), so that no caller's sentence is the cached vector of another's (callers say
# different things; e5's sentence cache would otherwise embed each sentence once per server). The warm-up caller
# says the sentences bare.
OPENERS = ("so", "well", "okay", "hi", "hello", "alright", "right", "oh", "hey", "hi there", "good morning",
           "hello there", "okay so", "well then", "excuse me", "sorry", "listen", "hey there", "good afternoon",
           "good evening", "oh hi", "actually", "now", "look")
EXPECTED_PATH = ["greet", "main", "track", "anything_else", "main", "hours", "anything_else"]
MAX_CALLS = 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def caller_script(preset: str = "en", wording: str = "exact", opener: str = "") -> list[tuple[str, object]]:
    """The caller's script: the preset's, its sentences reworded (VARIED) for `wording` "varied", each opened with
    `opener`."""
    script = PRESETS[preset]["script"]
    if wording == "exact":
        return script
    if preset not in VARIED:
        raise SystemExit(f"loadgen: --wording {wording} has sentences for the presets {', '.join(VARIED)} only")
    said = iter(VARIED[preset])
    return [("say", f"{opener} {next(said)}".strip()) if kind == "say" else (kind, value) for kind, value in script]


class _SaidOnce:
    """The caller's voice, each sentence synthesised once (the script is rendered twice: to line the callers up)."""

    def __init__(self, tts) -> None:
        self.tts, self.rate_hz, self.said = tts, tts.rate_hz, {}

    def synthesize(self, text: str) -> np.ndarray:
        if text not in self.said:
            self.said[text] = self.tts.synthesize(text)
        return self.said[text]


def callers_audio(preset: str, wording: str, n: int) -> tuple[list[tuple[np.ndarray, list[int]]], tuple]:
    """16 kHz caller audio as it arrives from a phone line, and where each utterance ends (ms): for each of `n`
    callers, and for the warm-up caller. `exact`: one script for all. `varied`: caller i opens each sentence
    with OPENERS[i] (repeating after 24 callers); the pause before each sentence is lengthened to the longest
    caller's sentence, so that every caller still stops talking at the same instants (a lockstep burst)."""
    from ivr.tts.registry import load_tts

    tts = _SaidOnce(load_tts(PRESETS[preset]["voice"], "ko-KR" if preset == "ko" else "en-US"))
    if wording == "exact":
        one = _audio(caller_script(preset), tts)
        return [one] * n, one
    scripts = [caller_script(preset, wording, OPENERS[i % len(OPENERS)]) for i in range(n)]
    scripts.append(caller_script(preset, wording))   # the warm-up's
    said_ms = [[len(render([seg], tts, noise_dbfs=None)) * 1000 // LINE_RATE_HZ if seg[0] == "say" else 0
                for seg in script] for script in scripts]
    longest = [max(column) for column in zip(*said_ms, strict=True)]
    lined_up = []
    for script, ms in zip(scripts, said_ms, strict=True):
        out = []
        for j, seg in enumerate(script):
            if seg[0] == "say" and longest[j] > ms[j]:
                out.append(("pause", longest[j] - ms[j]))
            out.append(seg)
        lined_up.append(_audio(out, tts))
    return lined_up[:-1], lined_up[-1]


def _audio(script, tts) -> tuple[np.ndarray, list[int]]:
    parts, ends, t_ms = [], [], 0
    for segment in script:
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


async def run_level(server: Server, via: str, callers: list[tuple[np.ndarray, list[int]]], peak_rss: list[float],
                    stagger_ms: int = 0):
    """Each of `callers` (audio, utterance ends) in a call of its own, all at once (or spread over `stagger_ms`)."""
    n = len(callers)

    async def sample_rss():
        while True:
            peak_rss.append(server.rss_mb())
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample_rss())
    try:
        # stagger_ms spreads the call starts evenly (0: all callers speak at the same instants,
        # the worst case for a shared recognizer).
        return await asyncio.gather(*(staggered(i * stagger_ms / max(n, 1) / 1000,
                                                one_call(via, server.port, *callers[i], i)) for i in range(n)),
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
    ap.add_argument("--wording", choices=["exact", "varied"], default="exact",
                    help="exact: the flow's own phrases (matched word for word); varied: the same requests reworded, "
                         "taken by meaning (e5), en only")
    ap.add_argument("--json", help="write the report here")
    args = ap.parse_args()
    if max(args.calls) > MAX_CALLS:
        raise SystemExit(f"loadgen: at most {MAX_CALLS} calls")
    preset = PRESETS[args.preset]
    args.asr = preset["asr"]
    callers, warmup = callers_audio(args.preset, args.wording, max(args.calls))
    ends = warmup[1]
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
                asyncio.run(asyncio.wait_for(one_call(args.via, server.port, *warmup, 9000 + i), args.timeout))
            idle_rss, cpu0 = server.rss_mb(), server.cpu_s()
            peak: list[float] = []
            results = asyncio.run(asyncio.wait_for(run_level(server, args.via, callers[:n], peak, args.stagger_ms),
                                                   args.timeout))
            cpu = server.cpu_s() - cpu0
        finally:
            server.stop()
        ok = [r for r in results if not isinstance(r, BaseException)]
        errors = [repr(r) for r in results if isinstance(r, BaseException)]
        lat = [x for r in ok for x in r.reply_latencies_ms if x is not None]
        turns = len(ends) * n
        right, recorded = replies_right(records)
        row = {"calls": n, "via": args.via, "asr": args.asr, "wording": args.wording,
               "embed_ahead": os.environ.get("IVR_EMBED_AHEAD", "1") != "0",
               "stagger_ms": args.stagger_ms, "warmup": args.warmup,
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
    report = {"bench": "load", "flow": preset["flow"], "script": caller_script(args.preset, args.wording),
              "utterance_ends_ms": ends,
              "openers": list(OPENERS[:max(args.calls)]) if args.wording == "varied" else [],
              "latency": "last voiced caller frame -> first reply frame heard; includes the endpoint silence "
                         "(200 ms early match or 600 ms)", "machine": machine_info(), "levels": rows,
              "date": time.strftime("%Y-%m-%d")}
    if args.json:
        write_json(args.json, report)
    return 0 if rows and all(r["answered"] == r["turns"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
