"""`ivr serve` (the service) and `ivr call --mic` (talk to a flow through the sound card)."""

import argparse
import asyncio
import logging
import os
import signal
import uuid
from pathlib import Path

from ivr.errors import UserError

log = logging.getLogger("ivr.serve")


def cmd_serve(args) -> int:
    from ivr.service.config import load_config, parse_address
    from ivr.service.service import Service

    cfg = load_config(Path(args.config) if args.config else None)
    if args.flow:
        cfg.default_flow = Path(args.flow)
    for name in ("sip", "ws", "audiosocket", "http"):
        value = getattr(args, name)
        if value:
            old = cfg.listeners.get(name)
            cfg.listeners[name] = parse_address(value, name)
            cfg.listeners[name].options = old.options if old else {}
    if args.max_calls:
        cfg.max_calls = args.max_calls
    if args.asr:
        cfg.asr = args.asr
    if args.records:
        cfg.records_dir = Path(args.records)
    if not cfg.listeners:
        raise UserError("no listener configured", "add e.g. --sip 127.0.0.1:5060 --ws 127.0.0.1:8080")
    service = Service(cfg, dict(os.environ))
    return asyncio.run(_serve(service))


async def _serve(service) -> int:
    stop = service.stop_requested   # SIGTERM/SIGINT, or POST /drain on the HTTP listener
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, service.drain)
    bound = await service.start()
    if "ws" in bound and not service.cfg.ws_token:
        print("ivr: the WebSocket bridge has no IVR_WS_TOKEN: it accepts unauthenticated streams, "
              "on loopback only", flush=True)
    print("ivr: ready: " + ", ".join(f"{k} {h}:{p}" for k, (h, p) in bound.items()), flush=True)
    await stop.wait()
    print(f"ivr: stopping; {len(service.calls)} call(s) in progress get up to "
          f"{service.cfg.shutdown_grace_ms // 1000} s to finish", flush=True)
    await service.stop()
    print("ivr: stopped", flush=True)
    return 0


def cmd_call(args) -> int:
    from ivr.call import Call, CallConfig
    from ivr.cli import _engines
    from ivr.flow.interpreter import Interpreter
    from ivr.flow.loader import load_flow
    from ivr.transports.mic import MicTransport

    if not args.mic:
        raise UserError("say where the audio comes from", "use `ivr call --mic FLOW`")
    transport = MicTransport(device=args.device)   # fails here, before models load, without a sound card
    flow = load_flow(args.flow)
    asr, tts, prompts = _engines(flow, args)

    async def run():
        call = Call(f"mic-{uuid.uuid4().hex[:8]}", Interpreter(flow, dict(os.environ)), asr, prompts, transport,
                    CallConfig(live=True), caller="mic", tts_name=tts.name)
        trace = await call.run()
        outcome = trace.outcome
        print(f"call ended: {outcome.kind if outcome else 'unknown'} {outcome.reason if outcome else ''}")

    asyncio.run(run())
    return 0


def add_commands(sub: argparse._SubParsersAction, engine_args) -> None:
    p = sub.add_parser("serve", help="answer calls: SIP, WebSocket media bridge, AudioSocket")
    p.add_argument("--config", help="YAML or TOML settings (see docs/serve.md)")
    p.add_argument("--flow", help="the flow answering calls no route names")
    p.add_argument("--sip", metavar="HOST:PORT", help="SIP over UDP, e.g. 127.0.0.1:5060")
    p.add_argument("--ws", metavar="HOST:PORT", help="Twilio Media Streams bridge at /media")
    p.add_argument("--audiosocket", metavar="HOST:PORT", help="Asterisk AudioSocket (TCP)")
    p.add_argument("--http", metavar="HOST:PORT", help="health endpoint GET /health")
    p.add_argument("--max-calls", type=int, help="concurrent calls; beyond it callers hear busy")
    p.add_argument("--asr", choices=["auto", "vosk", "whisper"])
    p.add_argument("--records", help="folder for per-call JSON records (default: records)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("call", help="talk to a flow through the microphone and speaker")
    p.add_argument("flow")
    p.add_argument("--mic", action="store_true", required=True)
    p.add_argument("--device", help="sounddevice device name or index")
    p.add_argument("--voice")
    engine_args(p)
    p.set_defaults(func=cmd_call)
