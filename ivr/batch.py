"""`ivr replay CALLS... --flow F`: many recorded calls through one flow, models loaded once.

Each WAV is streamed through the call loop (no audio kept), its trace checked against its
sidecar expectations (`ivr.replay_expect`), and the batch summed up: a pass/fail table, turn
latency and the no-match rate over all calls, and JUnit XML for CI.
"""

import asyncio
import logging
import statistics
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ivr.errors import UserError
from ivr.replay_expect import check, load_expect, sidecar_of

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CallCheck:
    wav: Path
    status: str                       # pass | fail | error | ran (no expectations file)
    failures: list[str] = field(default_factory=list)
    trace: dict | None = None
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("pass", "ran")


def find_calls(paths: Iterable[str | Path]) -> list[Path]:
    """WAV files named, and every *.wav under the folders named (sorted, recursively)."""
    calls: list[Path] = []
    for given in paths:
        p = Path(given)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() == ".wav")
            if not found:
                raise UserError(f"no .wav files under {p}", "name WAV files or folders that hold them")
            calls += found
        elif p.exists():
            calls.append(p)
        else:
            raise UserError(f"no such file or folder: {p}", "check the path")
    return list(dict.fromkeys(calls))


def check_call(wav: Path, run: Callable[[Path], tuple[dict, dict, frozenset]]) -> CallCheck:
    """Replay one call with `run(wav) -> (trace, slots, sensitive slot names)` and check it.
    A bad WAV or sidecar is this call's error, not the batch's end."""
    from ivr.privacy import redact_with_slots

    started = time.perf_counter()
    try:
        sidecar = sidecar_of(wav)
        expect = load_expect(sidecar) if sidecar else None
        trace, slots, sensitive = run(wav)
    except UserError as exc:
        return CallCheck(wav, "error", [str(exc)], wall_s=time.perf_counter() - started)
    trace.setdefault("input", {})["path"] = str(wav)
    if expect is None:
        return CallCheck(wav, "ran", [], trace, time.perf_counter() - started)
    failures = redact_with_slots(check(expect, trace, slots), slots, sensitive)   # PINs never in a CI log
    return CallCheck(wav, "fail" if failures else "pass", failures, trace, time.perf_counter() - started)


def run_batch(calls: list[Path], run: Callable[[Path], tuple[dict, dict, frozenset]],
              progress: bool | None = None) -> list[CallCheck]:
    """Every call in turn, with a progress bar on a terminal (tqdm; `progress=None`: when stderr is one)."""
    from tqdm import tqdm

    results: list[CallCheck] = []
    bar = tqdm(calls, unit="call", disable=None if progress is None else not progress, leave=False)
    for wav in bar:
        bar.set_postfix_str(wav.name)
        results.append(check_call(wav, run))
        log.info("replay %s: %s", wav, results[-1].status)
    bar.close()
    return results


def replay_runner(flow, asr, prompts, config, tts_name: str, caller: str, env: dict, at_s: float | None,
                  channel: int | None, language: str | None = None) -> Callable[[Path], tuple[dict, dict, frozenset]]:
    """`run(wav)` for `run_batch`: one streamed replay with the models given (loaded once)."""
    from ivr.replay import replay_samples
    from ivr.transports.wavfile import WavReplayTransport, wav_blocks

    def run(wav: Path) -> tuple[dict, dict, frozenset]:
        transport = WavReplayTransport(wav_blocks(wav, channel), keep_audio=False)
        result = asyncio.run(replay_samples(transport, flow, asr, prompts, config, f"replay-{wav.stem}", tts_name,
                                            caller, env, at_s, language=language))
        state = result.state
        return result.trace.to_dict(), dict(state.slots) if state else {}, frozenset(state.sensitive if state else ())
    return run


def summary(results: list[CallCheck]) -> dict:
    """Counts, turn latency (speech turns, ms) and the no-match rate over all caller turns."""
    turns = [t for r in results if r.trace for t in r.trace.get("turns", []) if t.get("kind") in ("speech", "dtmf")]
    latencies = sorted(t["latency_ms"] for t in turns if t.get("kind") == "speech" and t.get("latency_ms") is not None)
    no_match = sum(1 for t in turns if t.get("match") is None)
    no_input = sum(1 for r in results if r.trace for t in r.trace.get("turns", []) if t.get("kind") == "no_input")
    def count(status: str) -> int:
        return sum(r.status == status for r in results)
    return {"calls": len(results), "passed": count("pass"), "failed": count("fail"), "errors": count("error"),
            "without_expectations": count("ran"),
            "caller_turns": len(turns), "no_match": no_match, "no_input": no_input,
            "no_match_rate": round(no_match / len(turns), 4) if turns else None,
            "latency_ms": {"turns": len(latencies), "p50": _pct(latencies, 50), "p95": _pct(latencies, 95),
                           "max": round(latencies[-1], 1) if latencies else None}}


def _pct(values: list[float], pct: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[pct - 1], 1)


def format_report(results: list[CallCheck], totals: dict) -> str:
    width = max([len(str(r.wav)) for r in results] + [4])
    lines = [f"{'call':<{width}}  result  turns  no-match  path"]
    for r in results:
        turns = [t for t in (r.trace or {}).get("turns", []) if t.get("kind") in ("speech", "dtmf")]
        path = " > ".join((r.trace or {}).get("path", []))
        label = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "ran": "ran"}[r.status]
        missed = sum(t.get("match") is None for t in turns)
        lines.append(f"{r.wav!s:<{width}}  {label:<6}  {len(turns):>5}  {missed:>8}  {path}")
        lines += [f"{'':<{width}}    - {f}" for f in r.failures]
    lat = totals["latency_ms"]
    rate = "-" if totals["no_match_rate"] is None else f"{totals['no_match_rate']:.1%}"
    lines.append(f"\n{totals['calls']} calls: {totals['passed']} passed, {totals['failed']} failed, "
                 f"{totals['errors']} errors, {totals['without_expectations']} without expectations")
    lines.append(f"caller turns {totals['caller_turns']}, no match {totals['no_match']} ({rate}), "
                 f"no input {totals['no_input']}; turn latency p50 {_ms(lat['p50'])}, p95 {_ms(lat['p95'])}, "
                 f"max {_ms(lat['max'])} over {lat['turns']} speech turns")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def write_junit(path: str | Path, results: list[CallCheck], flow_name: str) -> None:
    """JUnit XML (the format CI servers read): one testcase per call, failures and errors with their reasons."""
    suite = ET.Element("testsuite", name=f"ivr replay {flow_name}", tests=str(len(results)),
                       failures=str(sum(r.status == "fail" for r in results)),
                       errors=str(sum(r.status == "error" for r in results)), skipped="0",
                       time=f"{sum(r.wall_s for r in results):.3f}")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=str(r.wav.parent).strip("/").replace("/", ".") or ".",
                             name=r.wav.name, file=str(r.wav), time=f"{r.wall_s:.3f}")
        if r.status in ("fail", "error"):
            tag = "failure" if r.status == "fail" else "error"
            item = ET.SubElement(case, tag, message=r.failures[0] if r.failures else r.status,
                                 type="expectation" if tag == "failure" else "replay")
            item.text = "\n".join(r.failures)
        if r.trace:
            ET.SubElement(case, "system-out").text = "path: " + " > ".join(r.trace.get("path", []))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tree = ET.ElementTree(ET.Element("testsuites", name="ivr replay"))
    tree.getroot().append(suite)
    ET.indent(tree)
    tree.write(out, encoding="utf-8", xml_declaration=True)


def main(args, engines, call_config, start_s: float | None) -> int:
    """The CLI's batch mode: exit 0 when every call met its expectations, 1 otherwise."""
    import os

    from ivr.audio.wavio import probe
    from ivr.flow.loader import load_flow

    if args.out:
        raise UserError("--out writes one call's stereo recording", "replay that call on its own to get it")
    calls = find_calls(args.calls)
    language = getattr(args, "language", None)   # a flow with several: the calls' language (no menu)
    flow = load_flow(args.flow, language)
    if len(calls) == 1:
        probe(calls[0])        # one bad WAV fails before the models load; in a batch it is that call's error
    asr, tts, prompts = engines(flow, args)
    run = replay_runner(flow, asr, prompts, call_config(args), tts.name, args.caller, dict(os.environ), start_s,
                        args.channel, language)
    results = run_batch(calls, run)
    totals = summary(results)
    print(format_report(results, totals))
    if args.junit:
        write_junit(args.junit, results, flow.name)
        print(f"JUnit XML: {args.junit}")
    if args.json:
        from ivr.trace import write_json

        write_json(args.json, {"flow": str(args.flow), "summary": totals,
                               "calls": [{"wav": str(r.wav), "status": r.status, "failures": r.failures,
                                          "trace": r.trace} for r in results]})
    return 0 if all(r.ok for r in results) else 1


def check_one(wav: Path, trace: dict, state) -> tuple[str, int]:
    """Single-file replay with a sidecar: the check's lines for the screen and the exit status."""
    from ivr.privacy import redact_with_slots

    sidecar = sidecar_of(wav)
    if sidecar is None:
        return "", 0
    slots = dict(state.slots) if state else {}
    failures = redact_with_slots(check(load_expect(sidecar), trace, slots), slots, state.sensitive if state else ())
    if not failures:
        return f"expectations ({sidecar}): PASS", 0
    return "\n".join([f"expectations ({sidecar}): FAIL", *(f"  - {f}" for f in failures)]), 1
