"""Flow authors' commands: validate, schema, chat, test, graph, intents."""

import argparse
import asyncio
import os
import sys
from datetime import datetime
from pathlib import Path

from ivr.errors import UserError


def cmd_validate(args) -> int:
    from ivr.flow.loader import FlowError

    bad = 0
    for path in args.flows:
        try:
            flow, what = _load_any(Path(path))
        except FlowError as exc:
            bad += 1
            for problem in exc.problems:
                print(problem)
            continue
        if what:
            print(f"{path}: ok ({what})")
            for warning in getattr(flow, "warnings", ()):
                print(warning)
            continue
        env = f"; reads env {', '.join(flow.env_names)}" if flow.env_names else ""
        missing = [n for n in flow.env_names if n not in os.environ]
        print(f"{path}: ok ({len(flow.steps)} steps, {len(flow.prompts())} fixed prompts{env})")
        for warning in flow.warnings:
            print(warning)
        for name in missing:
            print(f"{path}: note: environment variable {name} is not set here; HTTP steps that use it "
                  "will take their on_error path")
    return 1 if bad else 0


def _load_any(path: Path):
    """A flow, or (so that `ivr validate flows/**/*.yaml` checks everything) a knowledge base or a
    subflow file, checked as a flow that runs it. Returns (loaded, description or "" for a flow)."""
    import json
    import tempfile

    from ivr.flow.knowledge import load_knowledge
    from ivr.flow.loader import load_flow
    from ivr.flow.yamlsrc import read_yaml

    data = read_yaml(path)
    if isinstance(data, dict) and "faqs" in data and "steps" not in data:
        kb = load_knowledge(path)
        return kb, f"knowledge base, {len(kb.entries)} entries"
    steps = data.get("steps") if isinstance(data, dict) else None
    if isinstance(steps, dict) and any(isinstance(s, dict) and s.get("return") is True for s in steps.values()):
        name = path.stem.replace("/", "_") or "sub"
        with tempfile.TemporaryDirectory() as tmp:
            parent = Path(tmp) / "runs_subflow.yaml"
            spoken = _map_languages(data)   # a subflow written for a flow with several languages
            parent.write_text(json.dumps({
                **({"languages": spoken} if len(spoken) > 1 else {"language": str(data.get("language") or "en-US")}),
                "start": "enter",
                "subflows": {name: str(path.resolve())},
                "steps": {"enter": {"run": name, "next": "end"}, "end": {"hangup": True}}}), encoding="utf-8")
            flow = load_flow(parent)
        return flow, f"subflow, {len(flow.steps) - 2} steps"
    return load_flow(path), ""


def _map_languages(data) -> list[str]:
    """The languages a file's `{en: ..., zh: ...}` maps name (its `languages:` if it declares them)."""
    from ivr import lang
    from ivr.flow.languages import is_language_map

    if isinstance(data, dict) and isinstance(data.get("languages"), list):
        return [str(t) for t in data["languages"]]
    found: dict[str, str] = {}

    def walk(node) -> None:
        if is_language_map(node):
            found.update({lang.base_language(str(k)): lang.canonical(str(k)) for k in node})
        elif isinstance(node, dict | list):
            for child in node.values() if isinstance(node, dict) else node:
                walk(child)
    walk(data.get("steps") if isinstance(data, dict) else None)
    return list(found.values())


def cmd_schema(args) -> int:
    from ivr.flow.schema import schema_text, write_schema

    if args.output:
        print(f"wrote {write_schema(Path(args.output), args.kind, args.draft)}")
    else:
        print(schema_text(args.kind, args.draft), end="")
    return 0


def at_s(value: str | None) -> float:
    if not value:
        return datetime.now().astimezone().timestamp()
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError as exc:
        raise UserError(f"--time {value!r} is not an ISO time", "e.g. 2026-11-24T10:00:00+08:00") from exc


def cmd_chat(args) -> int:
    from ivr.chat import chat
    from ivr.flow.http import HttpClient
    from ivr.flow.http_fake import FakeResponses
    from ivr.flow.loader import load_flow
    from ivr.flow.textcall import TextCall

    flow = load_flow(args.flow)
    for warning in flow.warnings:   # the same as `ivr validate` shows
        print(warning, file=sys.stderr)
    http = FakeResponses(_read_fakes(args.fake_http)) if args.fake_http else HttpClient()
    call = TextCall(flow, http, env=dict(os.environ), caller=args.caller, called=args.called, at_s=at_s(args.time),
                    language=args.language)

    async def run() -> int:
        try:
            return await chat(call)
        finally:
            await call.close()
    return asyncio.run(run())


def _read_fakes(path: str) -> dict:
    from ivr.flow.yamlsrc import read_yaml

    data = read_yaml(Path(path), "fake HTTP responses file")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of 'METHOD url-pattern' to responses")
    return data


def cmd_test(args) -> int:
    from ivr.flow.convtest import find_test_files, format_failure, run_file

    files = find_test_files([Path(p) for p in args.paths])
    if not files:
        raise UserError("no conversation test files found", "they are *.yaml files under the given directories")
    recognizer = _WavRecognizer(args) if any("wav:" in f.read_text(encoding="utf-8") for f in files) else None

    async def run():
        return [r for f in files for r in await run_file(f, recognizer)]
    results = asyncio.run(run())
    failed = [r for r in results if not r.ok]
    for result in results:
        if result.ok and args.verbose:
            print(f"ok   {result.file}:{result.line}: {result.name}")
    for result in failed:
        print(format_failure(result))
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed ({len(files)} files)")
    return 1 if failed else 0


class _WavRecognizer:
    """Turns a caller WAV into text with the flow's recognizer (loaded once per language)."""

    def __init__(self, args) -> None:
        self.args = args
        self.models: dict = {}

    async def __call__(self, wav: Path, flow) -> str:
        from ivr.asr.loader import load_asr
        from ivr.audio.frames import INTERNAL_RATE_HZ
        from ivr.audio.wavio import read_audio

        if flow.language not in self.models:
            models_dir = Path(os.environ.get("IVR_MODELS_DIR") or "models")
            self.models[flow.language] = load_asr(self.args.asr, flow.language, models_dir, None)
        asr = self.models[flow.language]
        samples = read_audio(wav, rate_hz=INTERNAL_RATE_HZ)
        session = asr.session(())
        session.feed(samples)
        return (await asyncio.to_thread(session.finish)).text


def cmd_graph(args) -> int:
    from ivr.flow.graph import render
    from ivr.flow.loader import load_flow

    flow = load_flow(args.flow)
    out = render(flow, Path(args.output), rankdir=args.rankdir)
    print(f"wrote {out}")
    return 0


def cmd_intents(args) -> int:
    """The names `builtin:` accepts in a language: the system intents and the intent library, each with how many
    sentences it brings and a few of them (what an ops person tags a choice with)."""
    from ivr import lang
    from ivr.flow import builtins

    base = lang.parse_language(args.language).base     # an unknown language: UserError with the accepted ones
    system, shelf = builtins.load(base), builtins.library(base)
    if not system and not shelf:
        raise UserError(f"no built-in intents for language '{base}'",
                        "built-in intents exist for " + ", ".join(builtins.languages()))
    rows = [("system", n, b) for n, b in system.items()] + [(n.split(".")[0], n, b) for n, b in shelf.items()]
    if args.domain:
        rows = [r for r in rows if r[0] == args.domain]
        if not rows:
            domains = sorted({n.split(".")[0] for n in shelf})
            raise UserError(f"no domain '{args.domain}' in the intent library", "domains: " + ", ".join(domains))
    for _, name, b in rows:
        said = "; ".join((*b.phrases[:2], *b.examples[: args.examples]))
        print(f"{name:32} {len(b.examples):4} sentences  {said}")
    print(f"\ntag a choice with one: builtin: {rows[-1][1]}  (docs/flows.md)")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check flow files: every problem with file:line:col and a hint")
    p.add_argument("flows", nargs="+")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the JSON Schema of flow files (for editors)")
    p.add_argument("-o", "--output")
    p.add_argument("--kind", choices=["flow", "subflow", "knowledge"], default="flow")
    p.add_argument("--draft", choices=["2020-12", "7"], default="7",
                   help="JSON Schema draft (VS Code's YAML extension reads draft 7)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("chat", help="talk to a flow by typing as the caller")
    p.add_argument("flow")
    p.add_argument("--caller", default="", help="caller ID, e.g. +15550101 (enables the caller lookup)")
    p.add_argument("--called", default="")
    p.add_argument("--time", help="the call's start time, ISO (default: now)")
    p.add_argument("--fake-http", help="YAML of canned HTTP answers instead of calling the services")
    p.add_argument("--language", help="start in this language (a flow with several; default: its language menu)")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("test", help="run YAML conversation tests")
    p.add_argument("paths", nargs="+")
    p.add_argument("--asr", default="auto", help="recognizer for wav: turns")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("graph", help="draw a flow: .svg, .png, .html or .dot")
    p.add_argument("flow")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--rankdir", choices=["TB", "LR", "BT", "RL"], default="TB", help="layout direction")
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser("intents", help="list the built-in and library intents a choice can name with builtin:")
    p.add_argument("--language", default="en-US", help="e.g. en-US, zh-CN (default: en-US)")
    p.add_argument("--domain", help="only this domain of the library (retail, telecom, banking, ...)")
    p.add_argument("--examples", type=int, default=2, help="example sentences shown per intent (default: 2)")
    p.set_defaults(func=cmd_intents)
