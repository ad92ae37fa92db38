"""Replay benchmark: a ~60 s synthesized call through flows/demo.yaml, timed end to end.

    .venv/bin/python scripts/bench_replay.py [--runs 5] [--json build/bench/replay.json]

The caller (piper en_US-joe-medium on an 8 kHz mu-law line, made with ivr.callgen) answers
eight turns: speech answers after the prompts, one barge-in over the menu, one DTMF key, and
finally asks for a person, which transfers the call. The pauses are computed from the real
prompt durations (with the full 600 ms endpoint silence allowed for), so every turn lands
while the flow is listening, with and without early endpointing.

Engines are loaded once (bundled whisper tiny.en, piper), the prompt cache (a temporary
IVR_CACHE_DIR) is warmed before timing, and each mode gets one untimed warm-up replay. Runs of
the two modes are interleaved so that a change in machine load hits both alike.

vosk is not measured: the only installed vosk model is Korean and this flow is English.
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from benchlib import machine_info

from ivr.asr.whisper import WhisperAsr, bundled_model_path
from ivr.audio.frames import INTERNAL_RATE_HZ
from ivr.audio.resample import resample
from ivr.audio.vad import VadConfig
from ivr.call import CallConfig
from ivr.callgen import LINE_RATE_HZ, render, write_mulaw_wav
from ivr.events import CallStarted, Digits, Hangup, Heard, Play, Transfer
from ivr.flow.interpreter import CallState, Interpreter
from ivr.flow.loader import load_flow
from ivr.replay import replay_samples
from ivr.trace import write_json
from ivr.tts.cache import PromptCache
from ivr.tts.piper import PiperTts

ROOT = Path(__file__).resolve().parent.parent
FLOW = ROOT / "flows" / "demo.yaml"
ENDPOINT_MS = VadConfig().endpoint_silence_ms   # the worst case before a reply starts
MARGIN_MS = 700          # the caller answers this long after the last prompt ends
BARGE_AFTER_MS = 1500    # ... or this far into the first prompt that allows barge-in
TAIL_MS = 1500

# (segment kind, what the caller says or keys, the choice it must match, is it a barge-in)
TURNS = [
    ("say", "Where is my order?", "track", False),
    ("say", "main menu", "menu", False),
    ("say", "opening hours", "hours", True),          # over "You can say track an order, ..."
    ("say", "start over", "menu", False),
    ("keys", "1", "track", False),
    ("say", "yes please", "menu", False),
    ("say", "what are your opening hours", "hours", False),
    ("say", "I want to talk to a real person", "agent", False),   # -> transfer
]


def plan_call(flow, prompts: PromptCache) -> tuple[list, dict]:
    """The caller script, timed from the prompts the flow will actually play, and what to expect."""
    def seconds_ms(play: Play) -> int:
        return round(len(prompts.get(play.text)) * 1000 / prompts.rate_hz)

    interp = Interpreter(flow)
    state, actions = interp.handle(CallState(), CallStarted())
    script: list[tuple[str, int | str]] = []
    for i, (kind, value, choice, barge) in enumerate(TURNS):
        plays = [a for a in actions if isinstance(a, Play)]
        if barge:
            before = 0
            for play in plays:
                if play.barge_in:
                    break
                before += seconds_ms(play)
            wait = before + BARGE_AFTER_MS
        else:
            wait = sum(seconds_ms(p) for p in plays) + MARGIN_MS
        if i:
            wait += ENDPOINT_MS   # the reply starts only once the previous turn has ended
        script += [("pause", wait), (kind, value)]
        state, actions = interp.handle(state, Heard(value) if kind == "say" else Digits(value))
        if not state.last or state.last.choice != choice:
            raise SystemExit(f"bench_replay: the flow no longer takes {value!r} as {choice!r}; update TURNS")
    end = next((a for a in actions if isinstance(a, Transfer | Hangup)), None)
    script.append(("pause", ENDPOINT_MS + sum(seconds_ms(a) for a in actions if isinstance(a, Play)) + TAIL_MS))
    expect = {
        "turns": [("speech" if kind == "say" else "dtmf", choice, barge) for kind, _, choice, barge in TURNS],
        "path": list(state.path),
        "outcome": "transfer" if isinstance(end, Transfer) else "hangup" if end else None,
    }
    return script, expect


def check(trace: dict, expect: dict) -> list[str]:
    """What differs from the planned call (empty: every turn was answered as intended)."""
    problems = []
    got = [(t["kind"], (t["match"] or {}).get("choice"), t["barge_in"])
           for t in trace["turns"] if t["kind"] != "start"]
    if got != [tuple(e) for e in expect["turns"]]:
        heard = [(t["kind"], t["heard"], (t["match"] or {}).get("choice"), t["barge_in"])
                 for t in trace["turns"] if t["kind"] != "start"]
        problems.append(f"turns {heard} != expected {expect['turns']}")
    if trace["path"] != expect["path"]:
        problems.append(f"path {trace['path']} != expected {expect['path']}")
    kind = (trace["outcome"] or {}).get("kind")
    if kind != expect["outcome"]:
        problems.append(f"outcome {kind} != expected {expect['outcome']}")
    return problems


def is_repeat(text: str) -> bool:
    """Two or more runs of the same unit: "main menu main menu", "yes yes"."""
    words = [w.strip(".,?!").lower() for w in text.split()]
    return any(all(w == words[i % period] for i, w in enumerate(words))
               for period in range(1, len(words) // 2 + 1))


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def summarize(runs: list[dict]) -> dict:
    speech = [t for r in runs for t in r["turns"] if t["kind"] == "speech"]
    dtmf = [t for r in runs for t in r["turns"] if t["kind"] == "dtmf"]
    latency = [t["latency_ms"] for t in speech]
    silence = [t["timing"]["endpoint_silence_ms"] for t in speech]
    processing = [t["latency_ms"] - t["timing"]["endpoint_silence_ms"] for t in speech]
    speeds = [r["speed_x"] for r in runs]
    return {
        "runs": len(runs),
        "audio_s": runs[0]["audio_s"],
        "wall_s_median": round(statistics.median(r["wall_s"] for r in runs), 2),
        "speed_x_median": round(statistics.median(speeds), 1),
        "speed_x_min": round(min(speeds), 1),
        "speed_x_max": round(max(speeds), 1),
        "speech_turns_per_run": len(speech) // len(runs),
        "latency_ms_median": median(latency),
        "latency_ms_p95": pct(latency, 95),
        "endpoint_silence_ms_median": median(silence),
        "processing_ms_median": median(processing),
        "processing_ms_p95": pct(processing, 95),
        "asr_ms_median": median([t["timing"]["asr_ms"] for t in speech]),
        "dtmf_latency_ms_median": median([t["latency_ms"] for t in dtmf]),
        "endpoints": {e: sum(t["endpoint"] == e for t in speech) for e in sorted({t["endpoint"] for t in speech})},
        "runs_off_script": sum(bool(r["problems"]) for r in runs),
        # whisper sometimes writes an answer twice ("main menu main menu"); none of TURNS repeats itself
        "repeated_transcripts": sum(is_repeat(t["heard"]) for t in speech),
    }


async def replay_once(samples, flow, asr, prompts, config, call_id, tts_name, expect) -> dict:
    t0 = time.perf_counter()
    result = await replay_samples(samples, flow, asr, prompts, config, call_id, tts_name)
    wall_s = time.perf_counter() - t0
    trace = result.trace.to_dict()
    audio_s = trace["stats"]["audio_ms"] / 1000
    turns = [{k: t[k] for k in ("kind", "step", "heard", "match", "endpoint", "barge_in", "t_speech_end_ms",
                                "t_endpoint_ms", "t_reply_ms", "latency_ms", "timing")}
             for t in trace["turns"] if t["kind"] != "start"]
    return {"wall_s": round(wall_s, 3), "audio_s": audio_s, "speed_x": round(audio_s / wall_s, 1),
            "turns": turns, "outcome": trace["outcome"], "path": trace["path"], "problems": check(trace, expect)}


def table(summaries: dict) -> str:
    rows = [
        "| endpointing | runs | call audio (s) | wall (s, median) | speed (x real time, median [min-max]) "
        "| speech turns/run | latency median / p95 (ms) | endpoint silence median (ms) "
        "| processing median / p95 (ms) | ASR median (ms) | DTMF turn latency median (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summaries.items():
        rows.append(
            f"| {name} | {s['runs']} | {s['audio_s']:.1f} | {s['wall_s_median']:.2f} "
            f"| {s['speed_x_median']} [{s['speed_x_min']}-{s['speed_x_max']}] | {s['speech_turns_per_run']} "
            f"| {s['latency_ms_median']} / {s['latency_ms_p95']} | {s['endpoint_silence_ms_median']} "
            f"| {s['processing_ms_median']} / {s['processing_ms_p95']} | {s['asr_ms_median']} "
            f"| {s['dtmf_latency_ms_median']} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed replays per endpointing mode (default 5)")
    parser.add_argument("--json", help="write the raw numbers here")
    parser.add_argument("--save-call", help="also write the caller audio as an 8 kHz mu-law WAV")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ivr-bench-cache-") as cache_dir:
        os.environ["IVR_CACHE_DIR"] = cache_dir
        flow = load_flow(FLOW)
        t0 = time.perf_counter()
        asr = WhisperAsr(bundled_model_path(), language="en", cpu_threads=2)
        tts = PiperTts()
        prompts = PromptCache(tts, Path(cache_dir) / "prompts")
        prompts.warm(flow.prompts())
        setup_s = time.perf_counter() - t0

        script, expect = plan_call(flow, prompts)
        line = render(script, tts)                         # 8 kHz mu-law round trip
        if args.save_call:
            write_mulaw_wav(Path(args.save_call), line)
        samples = resample(line, LINE_RATE_HZ, INTERNAL_RATE_HZ)
        print(f"caller audio: {len(line) / LINE_RATE_HZ:.1f} s, {len(TURNS)} turns; engines + prompt cache "
              f"ready in {setup_s:.1f} s; load average before: {' '.join(f'{x:.2f}' for x in load_before)}",
              flush=True)

        modes = {"early (default)": CallConfig(), "off (full 600 ms)": CallConfig(early_endpoint=False)}
        runs: dict[str, list[dict]] = {name: [] for name in modes}
        for name, config in modes.items():   # untimed warm-up, one per mode
            warm = asyncio.run(replay_once(samples, flow, asr, prompts, config, "bench-warmup", tts.name, expect))
            for problem in warm["problems"]:
                print(f"WARNING: warm-up ({name}) went off script: {problem}", file=sys.stderr)
        for i in range(args.runs):
            for name, config in modes.items():
                run = asyncio.run(replay_once(samples, flow, asr, prompts, config, f"bench-{i}", tts.name, expect))
                runs[name].append(run)
                for problem in run["problems"]:
                    print(f"WARNING: run {i + 1} ({name}) went off script: {problem}", file=sys.stderr)
                print(f"  run {i + 1} {name}: {run['wall_s']:.2f} s wall, {run['speed_x']}x", flush=True)
        stats = prompts.stats()
    load_after = os.getloadavg()

    summaries = {name: summarize(r) for name, r in runs.items()}
    print()
    print(table(summaries))
    print()
    heard = [f"{'keys ' if t['kind'] == 'dtmf' else ''}{t['heard']!r} -> {(t['match'] or {}).get('choice')}"
             f"{' (barge-in)' if t['barge_in'] else ''}" for t in runs["early (default)"][0]["turns"]]
    print("turns (first early run): " + "; ".join(heard))
    for name, s in summaries.items():
        print(f"{name}: endpoints {s['endpoints']}; {s['repeated_transcripts']} of "
              f"{s['speech_turns_per_run'] * s['runs']} speech transcripts were a phrase said twice")
    print(f"outcome: {runs['early (default)'][0]['outcome']['kind']}; prompt cache: {stats['misses']} syntheses "
          f"(all during warm-up), {stats['hits']} hits")
    print("latency = last voiced caller frame -> first reply frame (trace latency_ms: endpoint silence + ASR "
          "+ flow + prompt fetch); processing = latency - endpoint silence. Medians/p95 pool all speech "
          "turns of all runs.")
    print("vosk: skipped - the only installed vosk model is Korean and flows/demo.yaml is English.")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_after)}")
    off_script = sum(s["runs_off_script"] for s in summaries.values())
    if off_script:
        print(f"WARNING: {off_script} run(s) did not follow the planned call; see the warnings above",
              file=sys.stderr)

    if args.json:
        out = {"benchmark": "replay", "flow": str(FLOW.relative_to(ROOT)), "asr": asr.name, "tts": tts.name,
               "machine": machine_info(), "load_before": load_before, "load_after": load_after,
               "setup_s": round(setup_s, 2), "script": script, "expect": expect,
               "summary": summaries, "runs": runs,
               "vosk": "skipped: the only installed vosk model is Korean; the flow is English"}
        write_json(args.json, out)
        print(f"raw numbers: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
