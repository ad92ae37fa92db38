"""Read the values inside a step's keys from YAML: templates, texts, `set:` and JSON values, durations,
flags, `say:` prompts and `next:` routes, collecting problems.

`ValueBuilder` is the base of `StepBuilder` (ivr/flow/steps.py), which builds whole steps, choices,
slots, HTTP calls and transfers from these; it holds what the build needs (the loader's `Problems`,
the flow's languages, its folder and time zone).
"""

import re

from ivr.durations import DurationError, parse_duration_ms
from ivr.flow import languages
from ivr.flow.model import Prompt, Route
from ivr.flow.templates import Template, TemplateSyntax, compile_template
from ivr.flow.yamlsrc import LineDict, Problems, as_text

RESERVED_NAMES = {"slots", "caller", "call", "last", "now", "open", "holiday", "agent_line", "flow", "vars",
                  "env", "http", "faq", "loop", "true", "false", "none", "error", "sentiment"}
_EXPR = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.S)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ValueBuilder:
    def __init__(self, problems: Problems, language: str, base_dir, timezone: str | None = None,
                 all_languages: tuple[str, ...] = ()) -> None:
        self.p = problems
        self.language = language                          # the language this build resolves maps to
        self.languages = all_languages or (language,)     # every language the flow declares
        self.base_dir = base_dir
        self.timezone = timezone   # the flow's hours.timezone: date/time filters say zoned datetimes in it

    # ---- templates -----------------------------------------------------------------

    def template(self, where, key, source, kind: str = "text") -> Template | None:
        if not isinstance(source, str) or (kind != "condition" and not source.strip()):
            self.p.error(where, key, f"'{key}' must be text")
            return None
        line = where.key_pos.get(key, (where.line, 0))[0] if isinstance(where, LineDict) else 0
        try:
            return compile_template(source, kind, self.language, line, self.timezone)
        except TemplateSyntax as exc:
            self.p.error(where, key, str(exc), "templates look like {{ slots.order_id | digits }}")
            return None

    def texts(self, where, key) -> tuple[Template, ...]:
        value = languages.localized(self, where, key)
        if value is None:   # a language map without this language: reported once by localized()
            return ()
        languages.check_plain(self, where, key)
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(t, str) and t.strip() for t in items):
            self.p.error(where, key, f"'{key}' must be text or a list of texts")
            return ()
        return tuple(t for t in (self.template(where, key, s) for s in items) if t)

    def value(self, where, key, raw):
        """A `set:` or JSON value: `{{ expr }}` keeps its type, other text is a template."""
        if isinstance(raw, str):
            m = _EXPR.match(raw)
            if m and "{{" not in m.group(1):
                return self.template(where, key, m.group(1), "condition")
            return self.template(where, key, raw) if raw.strip() else raw
        if isinstance(raw, dict):
            return {str(k): self.value(raw, k, v) for k, v in raw.items()}
        if isinstance(raw, list):
            return [self.value(where, key, v) for v in raw]
        return raw

    # ---- values ------------------------------------------------------------------

    def duration(self, where: LineDict, key: str, default_ms: int) -> int:
        """A positive duration with its unit (`2s`, `500ms`); a bare number is refused, not read as ms."""
        if key not in where:
            return default_ms
        try:
            ms = parse_duration_ms(where[key])
        except DurationError as exc:
            self.p.error(where, key, f"'{key}': {exc.message}", exc.hint)
            return default_ms
        if ms <= 0:
            self.p.error(where, key, f"'{key}' must be longer than 0", "e.g. 2s")
            return default_ms
        return ms

    def flag(self, spec: LineDict, key: str, default: bool) -> bool:
        value = spec.get(key, default)
        if not isinstance(value, bool):
            self.p.error(spec, key, f"'{key}' must be true or false")
            return default
        return value

    def prompts(self, spec: LineDict, barge_in: bool) -> tuple[Prompt, ...]:
        texts = self.texts(spec, "say")
        audio = spec.get("audio")
        if audio is not None:
            path = (self.base_dir / str(audio)).resolve()
            if not path.is_file():
                self.p.error(spec, "audio", f"recorded prompt not found: {path}", "paths are relative to the flow file")
            audio = str(path)
        return tuple(Prompt(t, audio if i == 0 else None, barge_in) for i, t in enumerate(texts))

    def routes(self, spec: LineDict) -> tuple[Route, ...]:
        key = "next" if "next" in spec else "goto"
        value = spec.get(key)
        if value is None:
            return ()
        if isinstance(value, str | int) and not isinstance(value, bool):
            return (Route(str(value), None, *spec.key_pos.get(key, (spec.line, 0))),)
        if not isinstance(value, list) or not value:
            self.p.error(spec, key, f"'{key}' must be a step name or a list of {{if: CONDITION, goto: STEP}}")
            return ()
        routes = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                item = LineDict(goto=item)
                item.line, item.col, item.key_pos = *value.item_pos[i], {}
            if not isinstance(item, LineDict) or "goto" not in item:
                self.p.error(value, i, "each branch of 'next' needs goto: STEP (and optionally if: CONDITION)")
                continue
            self.p.check_keys(item, {"if", "goto"}, "a branch of 'next'")
            cond = self.template(item, "if", str(item["if"]), "condition") if "if" in item else None
            routes.append(Route(str(as_text(item["goto"])), cond, *item.key_pos.get("goto", (item.line, item.col)),
                                cond_pos=item.key_pos.get("if", (0, 0))))
            if "if" not in item and i != len(value) - 1:
                self.p.error(item, None, "a branch without 'if' must be the last one", "later branches never run")
        if routes and routes[-1].condition is not None:
            self.p.error(value, len(value) - 1, "the last branch of 'next' needs no 'if'",
                         "end with {goto: STEP} for when no condition holds")
        return tuple(routes)

    def assign(self, spec: LineDict) -> tuple[tuple[str, object], ...]:
        data = spec["set"]
        if not isinstance(data, LineDict):
            self.p.error(spec, "set", "'set' must map variable names to values")
            return ()
        out = []
        for name, raw in data.items():
            if not _NAME.match(str(name)) or str(name) in RESERVED_NAMES:
                self.p.error(data, name, f"'{name}' cannot be a variable name",
                             "use letters, digits and _, not " + ", ".join(sorted(RESERVED_NAMES)))
                continue
            out.append((str(name), self.value(data, name, raw)))
        return tuple(out)
