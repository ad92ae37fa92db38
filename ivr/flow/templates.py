"""Templates in flow files: `{{ slots.order_id | digits }}`, `{% if caller.name %}`, conditions.

Jinja2's immutable sandbox: a flow author (or a value a caller or a backend supplies) can
read data but not reach Python internals or change state. Compiled when the flow loads, so
a template that does not parse is a load error with file:line; rendering errors at run time
are `RenderError`s that the interpreter turns into the flow's error path.

URLs are rendered with every interpolated value percent-escaped, except values that are
trusted configuration (`env.*`, `agent_line`), which arrive wrapped as `Markup`.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import ChainableUndefined, TemplateError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from ivr.flow import sayas
from ivr.flow.http import quote_path
from ivr.lang import base_language

_MARKERS = ("{{", "{%", "{#")


class RenderError(Exception):
    """A template raised at run time (a filter given bad data, a failing expression)."""


def _filters(language: str, timezone: str | None = None) -> dict:
    def bind(fn):
        return lambda value, *args: fn(value, language, *args)

    def local(fn):
        """An ISO datetime with a zone ("...T06:30:00Z") is said in the flow's time zone (hours.timezone)."""
        def said(value, *args):
            moment = sayas.parse_iso(value)
            if timezone and isinstance(moment, datetime) and moment.tzinfo is not None:
                value = moment.astimezone(ZoneInfo(timezone))
            return fn(value, language, *args)
        return said
    return {"digits": bind(sayas.say_digits), "number": bind(sayas.say_number), "date": local(sayas.say_date),
            "time": local(sayas.say_time), "money": bind(sayas.say_money), "mask": sayas.mask}


def _url_finalize(value: Any) -> str:
    if isinstance(value, Markup):
        return str(value)
    if value is None or isinstance(value, ChainableUndefined):
        return ""
    return quote_path(value)   # also "." and "..": a value cannot climb the URL's path


class Environments:
    """The jinja environments of one flow language: text, URL, and boolean conditions."""

    def __init__(self, language: str, timezone: str | None = None) -> None:
        self.text = ImmutableSandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)
        self.url = ImmutableSandboxedEnvironment(undefined=ChainableUndefined, autoescape=False,
                                                 finalize=_url_finalize)
        for env in (self.text, self.url):
            env.filters.update(_filters(language, timezone))


_ENVS: dict[tuple[str, str | None], Environments] = {}


def environments(language: str, timezone: str | None = None) -> Environments:
    """`timezone`: the flow's (hours.timezone); the date and time filters say zoned datetimes in it."""
    key = (base_language(language), timezone)
    if key not in _ENVS:
        _ENVS[key] = Environments(*key)
    return _ENVS[key]


@dataclass(frozen=True, slots=True)
class Template:
    """Flow text, compiled once. `fixed` text (no markers) renders to itself."""

    source: str
    kind: str = "text"                  # text | url | condition
    language: str = "en"
    line: int = 0
    _compiled: Any = field(default=None, compare=False, repr=False)

    def __eq__(self, other) -> bool:
        # Fixed flow text compares equal to the plain string it says (tests, prompt lists).
        if isinstance(other, str):
            return self.source == other
        if isinstance(other, Template):
            return (self.source, self.kind) == (other.source, other.kind)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.source)

    @property
    def fixed(self) -> bool:
        return self.kind != "condition" and not any(m in self.source for m in _MARKERS)

    def render(self, context: Mapping) -> str:
        if self.fixed:
            return self.source
        try:
            if self.kind == "condition":
                return self._compiled(**context)
            return " ".join(self._compiled.render(context).split()) if self.kind == "text" \
                else self._compiled.render(context).strip()
        except Exception as exc:   # jinja raises many kinds; the flow needs one
            raise RenderError(f"line {self.line}: {self.source!r}: {type(exc).__name__}: {exc}") from exc

    def test(self, context: Mapping) -> bool:
        return bool(self.render(context))


def compile_template(source: str, kind: str = "text", language: str = "en", line: int = 0,
                     timezone: str | None = None) -> Template:
    """Compile flow text; raises `TemplateSyntax` with a message fit for the author."""
    envs = environments(language, timezone)
    try:
        if kind == "condition":
            compiled = envs.text.compile_expression(source, undefined_to_none=False)
        elif not any(m in source for m in _MARKERS):
            compiled = None
        else:
            env = envs.url if kind == "url" else envs.text
            _check_filters(env, source)
            compiled = env.from_string(source)
    except TemplateError as exc:
        raise TemplateSyntax(f"template does not compile: {exc.message or exc}") from exc
    return Template(source, kind, language, line, compiled)


class TemplateSyntax(ValueError):
    pass


def _check_filters(env, source: str) -> None:
    """Unknown filters are a load error, not a surprise in the middle of a call."""
    for node in env.parse(source).find_all(nodes.Filter):
        if node.name not in env.filters:
            raise TemplateSyntax(f"unknown filter '{node.name}'; filters: digits, number, date, time, money, "
                                 "mask, default, upper, lower, title, length, join, round, int")


def trusted(mapping: Mapping[str, str]) -> dict[str, Markup]:
    """Configuration values (environment, agent line) that URL rendering must not escape."""
    return {k: Markup(v) for k, v in mapping.items()}


def render_data(value, context: Mapping):
    """Render the Templates inside nested JSON-like data (an HTTP body)."""
    if isinstance(value, Template):
        return value.render(context)
    if isinstance(value, dict):
        return {k: render_data(v, context) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render_data(v, context) for v in value]
    return value
