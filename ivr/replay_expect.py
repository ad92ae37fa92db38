"""What a recorded call must do: the sidecar file next to a replayed WAV (`call.wav` ->
`call.expect.yaml`), and the check of a replay's trace against it.

    path: [greet, main, track, done]      # the steps entered, exactly, in order
    visited: [main, track]                # these steps entered in this order (others may come between)
    outcome: transfer                     # hangup | transfer | transfer_failed | caller_hangup | ...
    transfer: sip:agents@127.0.0.1        # the transfer target
    slots: {order_id: "123456"}           # slot values when the call ended (as text)
    heard: ["track my order"]             # each is in what the recognizer heard (any turn, any case)

Every key is optional. A sidecar with an unknown key or a wrong type is refused with
file:line:col and a hint, like a flow file.
"""

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from ivr.flow.yamlsrc import FlowError, LineDict, LineList, Problems, as_text, read_yaml

SUFFIXES = (".expect.yaml", ".expect.yml")
KEYS = {"path", "visited", "outcome", "transfer", "slots", "heard"}
OUTCOMES = ("hangup", "transfer", "transfer_failed", "caller_hangup", "protocol_error", "peer_lost", "busy",
            "shutdown", "error")


@dataclass(frozen=True, slots=True)
class Expect:
    source: str
    path: tuple[str, ...] | None = None
    visited: tuple[str, ...] | None = None
    outcome: str | None = None
    transfer: str | None = None
    slots: dict[str, str] = field(default_factory=dict)
    heard: tuple[str, ...] = ()


def sidecar_of(wav: Path) -> Path | None:
    """`call.wav` -> `call.expect.yaml` (or `.expect.yml`) when it exists."""
    for suffix in SUFFIXES:
        candidate = wav.with_name(wav.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def load_expect(path: Path) -> Expect:
    data = read_yaml(path, "expectations file")
    problems = Problems(path)
    if data is None:
        data = LineDict()
    if not isinstance(data, LineDict):
        raise FlowError([f"{path}:1:1: an expectations file must be a mapping (keys: {', '.join(sorted(KEYS))})"])
    problems.check_keys(data, KEYS, "an expectations file")
    found: dict = {}
    for key in ("path", "visited", "heard"):
        if key in data:
            value = data[key]
            items = value if isinstance(value, LineList) else [value] if key == "heard" else None
            if items is None or not all(isinstance(as_text(v), str) for v in items):
                problems.error(data, key, f"'{key}' must be a list of {'texts' if key == 'heard' else 'step names'}",
                               f"e.g. {key}: [main, track]" if key != "heard" else 'e.g. heard: ["track my order"]')
                continue
            found[key] = tuple(str(as_text(v)) for v in items)
    if "outcome" in data:
        outcome = str(data["outcome"])
        if outcome not in OUTCOMES:
            close = difflib.get_close_matches(outcome, OUTCOMES, n=1)
            problems.error(data, "outcome", f"unknown outcome '{outcome}'",
                           f"did you mean '{close[0]}'?" if close else "one of: " + ", ".join(OUTCOMES))
        found["outcome"] = outcome
    if "transfer" in data:
        found["transfer"] = str(as_text(data["transfer"]))
    if "slots" in data:
        slots = data["slots"]
        if not isinstance(slots, LineDict):
            problems.error(data, "slots", "'slots' must be a mapping of slot name to value",
                           'e.g. slots: {order_id: "123456"}')
        else:
            found["slots"] = {str(k): _text(v) for k, v in slots.items()}
    problems.raise_if_any()
    return Expect(str(path), **found)


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def check(expect: Expect, trace: dict, slots: dict) -> list[str]:
    """Every way the call missed its expectations (empty: it passed). `slots` are the flow's
    slots at the end of the call; values are compared as text."""
    failures: list[str] = []
    path = list(trace.get("path") or [])
    if expect.path is not None and list(expect.path) != path:
        failures.append(f"path {' > '.join(path) or '(none)'}, expected {' > '.join(expect.path)}")
    if expect.visited is not None:
        missing = _not_in_order(expect.visited, path)
        if missing:
            failures.append(f"step '{missing}' not visited in order {' > '.join(expect.visited)} "
                            f"(path {' > '.join(path) or '(none)'})")
    outcome = trace.get("outcome") or {}
    if expect.outcome is not None and outcome.get("kind") != expect.outcome:
        failures.append(f"outcome {outcome.get('kind')}, expected {expect.outcome}")
    if expect.transfer is not None and outcome.get("target") != expect.transfer:
        failures.append(f"transfer to {outcome.get('target')}, expected {expect.transfer}")
    for name, want in expect.slots.items():
        if name not in slots:
            failures.append(f"slot {name} not filled, expected {want!r}")
        elif _text(slots[name]) != want:
            failures.append(f"slot {name} = {_text(slots[name])!r}, expected {want!r}")
    heard = " | ".join(str(t.get("heard") or "") for t in trace.get("turns", []) if t.get("kind") == "speech")
    for words in expect.heard:
        if _norm(words) not in _norm(heard):
            failures.append(f"never heard {words!r} (heard: {heard or 'nothing'})")
    return failures


def _not_in_order(wanted: tuple[str, ...], path: list[str]) -> str | None:
    """The first of `wanted` that does not follow the previous ones in `path`, or None."""
    at = 0
    for step in wanted:
        try:
            at = path.index(step, at) + 1
        except ValueError:
            return step
    return None


def _norm(text: str) -> str:
    return " ".join("".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split())
