"""TTS synthesis time per prompt, uncached: piper (in-process) and espeak-ng (a child process per prompt).

    .venv/bin/python scripts/bench_tts.py [--rounds 10] [--threads 4] [--json build/bench/tts.json]

Prompts: three a hotline speaks after a caller's turn (a confirmation with an order number, a menu, a goodbye) in
English and in Mandarin, each made unique per round (a digit appended) so nothing is cached. Figures: wall time per
prompt, p50 and p95, one at a time; then with `--threads` prompts at once (calls that need a prompt at the same
moment), the wall time per prompt as each call sees it. Wall time, so a busy machine shows in the numbers: run it on
a quiet one and say which.
"""

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchlib import machine_info

from ivr.trace import write_json
from ivr.tts.espeak import EspeakTts
from ivr.tts.piper import PiperTts

PROMPTS = {
    "en": ["Your order 12345 ships tomorrow. Is that right?",
           "For your order, say track. For store hours, say hours. To speak to someone, say agent.",
           "Thanks for calling. Goodbye."],
    "zh": ["您的订单 12345 明天发货，对吗？", "查订单请说查订单，营业时间请说营业时间，转人工请说人工。",
           "感谢来电，再见。"],
}


def timed(engine, text: str) -> float:
    start = time.perf_counter()
    pcm = engine.synthesize(text)
    if len(pcm) == 0:
        raise RuntimeError(f"{engine.name} said nothing for {text!r}")
    return (time.perf_counter() - start) * 1000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    engines = [("piper joe", PiperTts(), "en"), ("espeak-ng en-us", EspeakTts("en-us"), "en"),
               ("espeak-ng cmn", EspeakTts("cmn"), "zh")]
    results = {"machine": machine_info(), "rounds": args.rounds, "threads": args.threads, "engines": {}}
    print(f"{'engine':18} {'alone p50':>10} {'alone p95':>10} {f'{args.threads} at once p50':>16} {'p95':>8}  (ms)")
    for name, engine, lang in engines:
        texts = [f"{p} {r}" for r in range(args.rounds) for p in PROMPTS[lang]]
        timed(engine, "warm up")
        alone = [timed(engine, t) for t in texts]
        with ThreadPoolExecutor(args.threads) as pool:
            together = list(pool.map(timed, [engine] * len(texts), [t + " x" for t in texts]))
        row = {"alone_p50_ms": round(statistics.median(alone), 1), "alone_p95_ms": round(pct(alone, 0.95), 1),
               "together_p50_ms": round(statistics.median(together), 1),
               "together_p95_ms": round(pct(together, 0.95), 1), "prompts": len(texts)}
        results["engines"][name] = row
        print(f"{name:18} {row['alone_p50_ms']:>10} {row['alone_p95_ms']:>10} {row['together_p50_ms']:>16} "
              f"{row['together_p95_ms']:>8}")
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
