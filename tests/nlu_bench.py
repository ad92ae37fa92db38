"""The NLU benchmark's flows (scripts/bench_nlu.py) for tests: the evaluation hotlines as ops wrote them, their
choices tagged with the built-in intents and the intent library as `--matchers` "chosen + built-ins + intent library"
loads them."""

import importlib
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def script(name: str):
    """scripts/<name>.py as a module (bench_nlu, gather_heard)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(SCRIPTS))


def bench_nlu():
    """scripts/bench_nlu.py as a module."""
    return script("bench_nlu")


def tagged_step(lang: str, step: str) -> tuple[tuple, tuple]:
    """(the step's own intents, the globals) of the evaluation flow in `lang` ("en", "zh"), every answer tagged."""
    return bench_nlu().load_flow(lang, builtin=True, library=True)["steps"][step]
