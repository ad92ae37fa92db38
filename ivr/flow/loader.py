"""Load a YAML flow file into a checked `Flow`. Every error names file:line:column and a hint.

All problems found are reported together, so an author fixes a file in one pass.
"""

import difflib
import re
from pathlib import Path

import yaml

from ivr.errors import UserError
from ivr.flow import model
from ivr.flow.model import Choice, Flow, Prompt, Step
from ivr.flow.nlu import Intent
from ivr.flow.patterns import TemplateError, expand

TOP_KEYS = {"name", "language", "voice", "agent_line", "globals", "start", "steps"}
STEP_KEYS = {
    "say", "audio", "ask", "barge_in", "choices", "no_input", "no_match", "max_attempts",
    "on_fail", "no_input_timeout", "next", "goto", "transfer", "hangup",
}
CHOICE_KEYS = {"say", "dtmf", "goto", "action"}
GLOBAL_ACTIONS = {"repeat", "hangup"}
DTMF_KEYS = set("0123456789*#ABCD")


class FlowError(UserError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0] if len(problems) == 1 else f"{len(problems)} problems:\n"
                         + "\n".join(problems))
        self.problems = problems


class _LineDict(dict):
    """A mapping that remembers where it and each of its keys stand in the file."""

    line = col = 0
    key_pos: dict


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        mapping = _LineDict(super().construct_mapping(node, deep=True))
        mapping.line, mapping.col = node.start_mark.line + 1, node.start_mark.column + 1
        mapping.key_pos = {
            k.value: (k.start_mark.line + 1, k.start_mark.column + 1) for k, _ in node.value
        }
        return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping)
# YAML 1.1 reads yes/no/on/off as booleans: `no: {say: no}` became a choice 'False' heard as "false".
# Flows follow YAML 1.2: only true/false are booleans.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


def load_flow(path: str | Path) -> Flow:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such flow file: {path}", "check the path, e.g. flows/demo.yaml")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_col(raw[: exc.start].decode("utf-8", "replace"))
        raise FlowError([f"{path}:{line}:{col}: not UTF-8 text ({exc.reason}); save the file as UTF-8"]) from exc
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise FlowError([f"{where}: YAML does not parse: {exc.problem} "
                         "(hint: check indentation and quote text containing ':' or '#')"]) from exc
    except yaml.reader.ReaderError as exc:   # a control character: not a MarkedYAMLError
        line, col = _line_col(text[: exc.position])
        raise FlowError([f"{path}:{line}:{col}: YAML does not allow the control character #x{exc.character:04x} "
                         "(hint: delete it)"]) from exc
    return _Builder(path).build(data)


def _line_col(before: str) -> tuple[int, int]:
    """1-based line and column of the character that follows `before`."""
    return before.count("\n") + 1, len(before.rsplit("\n", 1)[-1]) + 1


def _text(value):
    """A step name or target as text: YAML reads `next: 2` or `agent_line: 100` as numbers."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def parse_duration_ms(value) -> int | None:
    """5000, "5s", "500ms", "1.5s" -> milliseconds; None if it does not parse."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*", str(value))
    if not m:
        return None
    return round(float(m.group(1)) * (1000 if m.group(2) == "s" else 1))


class _Builder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []

    def error(self, where: _LineDict | None, key: str | None, message: str, hint: str = "") -> None:
        line, col = (where.key_pos.get(key, (where.line, where.col)) if key else
                     (where.line, where.col)) if isinstance(where, _LineDict) else (1, 1)
        self.problems.append(f"{self.path}:{line}:{col}: {message}" + (f" (hint: {hint})" if hint else ""))

    def check_keys(self, data: _LineDict, allowed: set[str], what: str) -> None:
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(sorted(allowed))
                self.error(data, key, f"unknown key '{key}' in {what}", hint)

    def build(self, data) -> Flow:
        if not isinstance(data, _LineDict):
            raise FlowError([f"{self.path}:1:1: a flow file must be a mapping with 'steps' and 'start'"])
        self.check_keys(data, TOP_KEYS, "the flow")
        steps_data = data.get("steps")
        if not isinstance(steps_data, _LineDict) or not steps_data:
            self.error(data, "steps" if "steps" in data else None, "the flow has no steps",
                       "add a 'steps:' mapping of step names to steps")
            raise FlowError(self.problems)
        steps = {str(name): self.step(str(name), spec, steps_data) for name, spec in steps_data.items()}
        start = str(data.get("start") or next(iter(steps)))
        globals_ = tuple(self.choices(data.get("globals") or {}, "globals", is_global=True, where=data, key="globals"))
        flow = Flow(
            name=str(data.get("name") or self.path.stem), path=str(self.path),
            language=str(data.get("language") or "en-US"), start=start,
            steps={k: v for k, v in steps.items() if v is not None}, globals=globals_,
            voice=self.voice(data.get("voice")), agent_line=_text(data.get("agent_line")),
        )
        self.check_targets(flow, data, steps_data)
        if self.problems:
            raise FlowError(self.problems)
        return flow

    def voice(self, value) -> str | None:
        if isinstance(value, dict):
            return ":".join(str(value[k]) for k in ("engine", "name") if value.get(k))
        return str(value) if value else None

    def prompt(self, where, key, value, barge_in: bool, audio: str | None = None) -> tuple[Prompt, ...]:
        texts = value if isinstance(value, list) else [value]
        if not all(isinstance(t, str) and t.strip() for t in texts):
            self.error(where, key, f"'{key}' must be text or a list of texts")
            return ()
        if audio:
            audio = str((self.path.parent / audio).resolve())
            if not Path(audio).is_file():
                self.error(where, "audio", f"recorded prompt not found: {audio}",
                           "paths are relative to the flow file")
        return tuple(Prompt(t, audio if i == 0 else None, barge_in) for i, t in enumerate(texts))

    def step(self, name: str, spec, steps_data: _LineDict) -> Step | None:
        if not isinstance(spec, _LineDict):
            self.error(steps_data, name, f"step '{name}' must be a mapping of keys like say/ask/next")
            return None
        self.check_keys(spec, STEP_KEYS, f"step '{name}'")
        barge_in = spec.get("barge_in", True)
        if not isinstance(barge_in, bool):
            self.error(spec, "barge_in", "'barge_in' must be true or false")
            barge_in = True
        say = self.prompt(spec, "say", spec["say"], barge_in, spec.get("audio")) if "say" in spec else ()
        ask = None
        if "ask" in spec:
            asked = self.prompt(spec, "ask", spec["ask"], barge_in)
            ask = Prompt(" ".join(p.text for p in asked), None, barge_in) if asked else None
        elif "choices" in spec:
            self.error(spec, "choices", f"step '{name}' has choices but no 'ask' prompt",
                       "add ask: \"...\" saying what the caller can answer")
        timeout = parse_duration_ms(spec.get("no_input_timeout", model.DEFAULT_NO_INPUT_MS))
        if timeout is None or timeout <= 0:
            self.error(spec, "no_input_timeout", "'no_input_timeout' must be a duration like 5s or 4000ms")
            timeout = model.DEFAULT_NO_INPUT_MS
        attempts = spec.get("max_attempts", model.DEFAULT_MAX_ATTEMPTS)
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
            self.error(spec, "max_attempts", "'max_attempts' must be a whole number >= 1")
            attempts = model.DEFAULT_MAX_ATTEMPTS
        transfer, reason = self.transfer(spec)
        hangup = spec.get("hangup", False)
        if not isinstance(hangup, bool):
            self.error(spec, "hangup", "'hangup' must be true or false")
            hangup = False
        step = Step(
            name=name, line=spec.line, say=say, ask=ask,
            choices=tuple(self.choices(spec.get("choices") or {}, f"step '{name}'", where=spec, key="choices")),
            no_input=tuple(p.text for p in self.prompt(spec, "no_input", spec["no_input"], True))
            if "no_input" in spec else (),
            no_match=tuple(p.text for p in self.prompt(spec, "no_match", spec["no_match"], True))
            if "no_match" in spec else (),
            max_attempts=attempts, on_fail=_text(spec.get("on_fail")), no_input_ms=timeout,
            next=_text(spec.get("next") or spec.get("goto")), transfer=transfer, transfer_reason=reason,
            hangup=bool(hangup),
        )
        ends = [k for k in ("ask", "transfer", "hangup", "next", "goto") if spec.get(k)]
        if not ends:
            self.error(spec, None, f"step '{name}' does not say where the call goes next",
                       "add ask, next, transfer or hangup")
        elif len(ends) > 1 and not (set(ends) <= {"ask", "next", "goto"}):
            self.error(spec, ends[1], f"step '{name}' has both '{ends[0]}' and '{ends[1]}'",
                       "a step either listens, moves on, transfers or hangs up")
        return step

    def transfer(self, spec: _LineDict) -> tuple[str | None, str]:
        value = spec.get("transfer")
        if value is None:
            return None, ""
        if isinstance(value, str):
            return value, ""
        if isinstance(value, _LineDict) and isinstance(value.get("to"), str):
            self.check_keys(value, {"to", "reason"}, "transfer")
            return value["to"], str(value.get("reason", ""))
        self.error(spec, "transfer", "'transfer' must be a target like sip:agents@host or {to: ..., reason: ...}")
        return None, ""

    def choices(self, data, what: str, is_global: bool = False, where=None, key=None) -> list[Choice]:
        if not data:
            return []
        if not isinstance(data, _LineDict):
            self.error(where, key, f"choices of {what} must be a mapping of name to choice")
            return []
        out = []
        for name, spec in data.items():
            if not isinstance(spec, _LineDict):
                self.error(data, name, f"choice '{name}' in {what} must be a mapping with say/dtmf/goto")
                continue
            self.check_keys(spec, CHOICE_KEYS, f"choice '{name}'")
            phrases: list[str] = []
            templates = spec.get("say", [])
            for template in templates if isinstance(templates, list) else [templates]:
                try:
                    phrases += expand(str(template))
                except TemplateError as exc:
                    self.error(spec, "say", f"bad sentence template: {exc}",
                               "use (a|b) for choices and [x] for optional words")
            dtmf = str(spec.get("dtmf", "")) if spec.get("dtmf") is not None else ""
            if any(k not in DTMF_KEYS for k in dtmf):
                self.error(spec, "dtmf", f"'{dtmf}' is not a keypad key", "use 0-9, * or #, quoted: \"1\"")
            action = spec.get("action")
            if action is not None and (not is_global or action not in GLOBAL_ACTIONS):
                self.error(spec, "action", f"unknown action '{action}'",
                           "global choices may use action: repeat or action: hangup")
            if not spec.get("goto") and not action:
                self.error(spec, None, f"choice '{name}' in {what} has no 'goto'", "add goto: STEP")
            if not phrases and not dtmf:
                self.error(spec, None, f"choice '{name}' in {what} has neither 'say' nor 'dtmf'")
            out.append(Choice(str(name), Intent(str(name), tuple(phrases)), dtmf, _text(spec.get("goto")), action))
        return out

    def check_targets(self, flow: Flow, data: _LineDict, steps_data: _LineDict) -> None:
        names = list(flow.steps)
        def check(where, key, target):
            if not isinstance(target, str) or target not in flow.steps:
                close = difflib.get_close_matches(str(target), names, n=1)
                self.error(where, key, f"unknown step '{target}'",
                           f"did you mean '{close[0]}'?" if close else "steps: " + ", ".join(names))
        if flow.start not in flow.steps:
            check(data, "start", flow.start)
        for choice in flow.globals:
            if choice.goto:
                check(data.get("globals"), None, choice.goto)
        self.check_dtmf(data.get("globals"), None, "globals", flow.globals)
        specs = {str(name): spec for name, spec in steps_data.items()}
        for step in flow.steps.values():
            spec = specs[step.name]
            for key, target in step.targets():
                key = key.split(".")[0]
                check(spec, "goto" if key == "next" and "next" not in spec else key, target)
            self.check_dtmf(spec, "choices", f"step '{step.name}'", step.choices, flow.globals)

    def check_dtmf(self, where, key, what: str, choices: tuple[Choice, ...],
                   globals_: tuple[Choice, ...] = ()) -> None:
        """No key used twice among `choices`, nor by one of them and a global (globals are checked once)."""
        seen: dict[str, str] = {}
        for choice in choices:
            if choice.dtmf and choice.dtmf in seen:
                self.error(where, key, f"key '{choice.dtmf}' is used by both "
                           f"'{seen[choice.dtmf]}' and '{choice.name}' in {what}")
            seen.setdefault(choice.dtmf, choice.name)
        for choice in globals_:
            if choice.dtmf and choice.dtmf in seen:
                self.error(where, key, f"key '{choice.dtmf}' is used by both "
                           f"'{seen[choice.dtmf]}' and global '{choice.name}' in {what}")
