"""Queue measurements (docs/BENCHMARKS.md, "Queue: a waiting caller, and the wait estimate").

1. `hold`: N callers wait in a queue at once (real call loops, real prompts, hold music, live
   pacing: one 20 ms frame per 20 ms), nobody logged in to answer: the process's CPU time and
   resident memory over the wait, per caller.
2. `estimate`: a simulated day of calls through the real `QueueManager`/`AgentDirectory` (a
   discrete-event simulation on a fake clock): the wait each caller was told at entry against the
   wait they really had; for exponential and for lognormal handle times.

    .venv/bin/python scripts/bench_queue.py hold --callers 20 --seconds 30
    .venv/bin/python scripts/bench_queue.py estimate --seed 1
"""

import argparse
import asyncio
import heapq
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ivr.agents import AgentDirectory, QueueManager

FLOW = """\
name: bench_queue
language: en-US
start: wait
steps:
  wait:
    queue: {name: support, hold_music: hold.wav, announce_every: 20s, max_wait: 10m, on_empty: bye}
  bye:
    say: Goodbye.
    hangup: true
"""


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def hold(callers: int, seconds: float) -> dict:
    import soundfile as sf

    from ivr.agents.dispatch import Dispatcher
    from ivr.asr.whisper import WhisperAsr, bundled_model_path
    from ivr.call import Call, CallConfig
    from ivr.flow.interpreter import Interpreter
    from ivr.flow.loader import load_flow
    from ivr.transports.wavfile import WavReplayTransport
    from ivr.tts.cache import PromptCache
    from ivr.tts.piper import PiperTts

    folder = Path(tempfile.mkdtemp(prefix="bench_queue_"))
    t = np.arange(16000 * 8) / 16000
    music = (np.sin(2 * np.pi * 440 * t) * np.sin(2 * np.pi * 0.5 * t) * 6000).astype(np.int16)
    sf.write(str(folder / "hold.wav"), music, 16000, subtype="PCM_16")
    (folder / "flow.yaml").write_text(FLOW)
    flow = load_flow(folder / "flow.yaml")
    asr, prompts = WhisperAsr(bundled_model_path()), PromptCache(PiperTts(), folder / "prompts")
    directory = AgentDirectory()
    directory.add("busy", "sip:busy@127.0.0.1:5999", status="available")
    directory.ring("busy", "elsewhere")
    directory.answered("busy", "elsewhere")          # one agent, on another call all along
    dispatcher = Dispatcher(directory, QueueManager(directory, default_handle_s=30), lambda e: None)
    frames = int(seconds * 50)

    class Paced(WavReplayTransport):
        async def inbound(self):
            start = time.monotonic()
            for n in range(frames):
                delay = start + n * 0.02 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                yield self._take(np.zeros(320, np.int16))

    # warm up: the announcements synthesised once, as a running service has them cached (disk and memory)
    await asyncio.to_thread(prompts.warm, [*(f"You are number {n} in the queue." for n in range(1, callers + 1)),
                                           *(f"The wait is about {m} minutes." for m in range(1, callers // 2 + 2)),
                                           "The wait is less than a minute.", "Goodbye."])
    warm = Paced(np.zeros(0, np.int16), keep_audio=False)
    frames, saved = 150, frames
    await Call("warm", Interpreter(flow), asr, prompts, warm, CallConfig(live=True),
               queue_port=dispatcher.port(warm)).run()
    frames = saved
    rss0, cpu0, wall0 = rss_mb(), time.process_time(), time.monotonic()
    calls = []
    for n in range(callers):
        transport = Paced(np.zeros(0, np.int16), keep_audio=False)
        calls.append(Call(f"c{n}", Interpreter(flow), asr, prompts, transport, CallConfig(live=True),
                          caller=f"+1555000{n:04d}", queue_port=dispatcher.port(transport)))
    peak = [rss0]
    steady: list = []

    async def sample():
        while True:
            peak[0] = max(peak[0], rss_mb())
            if not steady and time.monotonic() - wall0 >= 5:   # all joined and first announcements done
                steady.append((time.process_time(), time.monotonic()))
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    traces = await asyncio.gather(*(c.run() for c in calls))
    sampler.cancel()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    steady_cpu = time.process_time() - steady[0][0] if steady else cpu
    steady_wall = time.monotonic() - steady[0][1] if steady else wall
    await dispatcher.close()
    waited = sum(1 for tr in traces if tr.path == ["wait"])
    return {"callers": callers, "seconds": seconds, "still_waiting_at_end": waited,
            "cpu_s": round(cpu, 2), "wall_s": round(wall, 1),
            "cpu_percent_of_one_core_per_caller": round(100 * cpu / wall / callers, 2),
            "steady_cpu_percent_per_caller (after 5 s)": round(100 * steady_cpu / steady_wall / callers, 2),
            "rss_before_mb": round(rss0, 1), "rss_peak_mb": round(peak[0], 1),
            "rss_per_caller_kb": round((peak[0] - rss0) * 1024 / callers, 1)}


def simulate(seed: int, handle: str, agents: int = 6, wrap_up_s: float = 30.0, mean_talk_s: float = 240.0) -> dict:
    """One day (8:00-20:00) of Poisson arrivals with a lunch and an afternoon peak."""
    rng = random.Random(seed)
    clock = [0.0]
    directory = AgentDirectory(wrap_up_s=wrap_up_s, clock=lambda: clock[0])
    for n in range(agents):
        directory.add(f"a{n}", f"sip:a{n}@127.0.0.1:5070", status="available")
    queues = QueueManager(directory, default_handle_s=mean_talk_s + wrap_up_s, recent_calls=20,
                          clock=lambda: clock[0])

    def rate_per_h(hour: float) -> float:     # calls per hour: busy late morning and afternoon
        return 50 + 40 * np.exp(-((hour - 11) ** 2) / 2) + 35 * np.exp(-((hour - 15.5) ** 2) / 1.5)

    def talk_s() -> float:
        if handle == "exponential":
            return rng.expovariate(1 / mean_talk_s)
        sigma = 0.8                            # lognormal with the same mean
        return rng.lognormvariate(np.log(mean_talk_s) - sigma ** 2 / 2, sigma)

    events: list = []       # (time, seq, kind, data)
    seq = 0

    def push(at, kind, data=None):
        nonlocal seq
        seq += 1
        heapq.heappush(events, (at, seq, kind, data))

    t = 8 * 3600.0
    while t < 20 * 3600:      # thinning: arrivals of a time-varying Poisson process
        t += rng.expovariate(130 / 3600)
        if rng.random() < rate_per_h(t / 3600) / 130:
            push(t, "arrive")
    told: dict[str, float] = {}
    joined: dict[str, float] = {}
    results: list[tuple[float, float]] = []
    n_call = 0

    def dispatch():
        while True:
            call = queues.next_waiting()
            agent = directory.pick() if call else None
            if call is None or agent is None:
                return
            directory.ring(agent.name, call.call_id)
            directory.answered(agent.name, call.call_id)
            queues.answered(call.call_id, agent.name)
            queues.leave(call.call_id, "answered")
            results.append((told[call.call_id], clock[0] - joined[call.call_id]))
            talk = talk_s()
            push(clock[0] + talk, "end", (agent.name, call.call_id, talk))

    while events:
        at, _, kind, data = heapq.heappop(events)
        clock[0] = at
        if kind == "arrive":
            n_call += 1
            call_id = f"c{n_call}"
            queues.join(call_id, "support")
            told[call_id] = queues.estimated_wait_s(call_id) or 0.0
            joined[call_id] = at
        elif kind == "end":
            name, call_id, talk = data
            directory.call_ended(name, call_id)
            queues.record_handle("support", talk)
            push(at + wrap_up_s, "wrap_end")
        dispatch()
    errors = [told - real for told, real in results]
    abs_err = [abs(e) for e in errors]
    waited = [real for _, real in results if real > 0]
    return {"handle_times": handle, "calls": len(results), "agents": agents,
            "callers_who_waited": len(waited), "mean_real_wait_s": round(statistics.fmean(r for _, r in results), 1),
            "mean_abs_error_s": round(statistics.fmean(abs_err), 1),
            "median_abs_error_s": round(statistics.median(abs_err), 1),
            "p90_abs_error_s": round(sorted(abs_err)[int(0.9 * len(abs_err))], 1),
            "bias_s (told - real)": round(statistics.fmean(errors), 1),
            "within_60s": f"{100 * sum(e <= 60 for e in abs_err) / len(abs_err):.0f}%",
            "waiters_mean_abs_error_s": round(statistics.fmean(
                abs(t - r) for t, r in results if r > 0), 1) if waited else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    h = sub.add_parser("hold")
    h.add_argument("--callers", type=int, default=20)
    h.add_argument("--seconds", type=float, default=30)
    e = sub.add_parser("estimate")
    e.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.what == "hold":
        if args.callers < 1 or args.callers > 200 or not 1 <= args.seconds <= 600:
            parser.error("--callers 1..200, --seconds 1..600")
        print(asyncio.run(hold(args.callers, args.seconds)))
        print("max RSS of the process (MB):", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    else:
        for handle in ("exponential", "lognormal"):
            print(simulate(args.seed, handle))


if __name__ == "__main__":
    main()
