"""Reading flow-related YAML so that every value remembers its file, line and column.

Shared by the flow loader, subflows and the knowledge base: one place decides how YAML is
read (YAML 1.2 booleans, UTF-8, clear parse errors) and how problems are worded.
"""

import difflib
import re
from pathlib import Path

import yaml

from ivr.errors import UserError


class FlowError(UserError):
    """One or more problems in flow files; each names file:line:col, what is wrong, a hint."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0] if len(problems) == 1 else f"{len(problems)} problems:\n"
                         + "\n".join(problems))
        self.problems = problems


class LineDict(dict):
    """A mapping that remembers where it and each of its keys stand in the file."""

    line = col = 0
    key_pos: dict


class LineList(list):
    line = col = 0
    item_pos: list


class _Positions:
    """Constructs LineDict and LineList, each with the file positions of itself and its keys or items."""

    def construct_mapping(self, node, deep=False):
        mapping = LineDict(super().construct_mapping(node, deep=True))
        mapping.line, mapping.col = node.start_mark.line + 1, node.start_mark.column + 1
        mapping.key_pos = {
            k.value: (k.start_mark.line + 1, k.start_mark.column + 1) for k, _ in node.value
        }
        return mapping

    def construct_sequence(self, node, deep=False):
        items = LineList(super().construct_sequence(node, deep=True))
        items.line, items.col = node.start_mark.line + 1, node.start_mark.column + 1
        items.item_pos = [(n.start_mark.line + 1, n.start_mark.column + 1) for n in node.value]
        return items


class _Loader(_Positions, yaml.SafeLoader):
    """The pure-Python parser: its error messages name the problem (`read_yaml` words them)."""


class _CLoader(_Positions, getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """libyaml's parser (PyYAML's C extension), for the files ivr ships (`read_yaml(..., shipped=True)`: the built-in
    intents, the intent library and its heard sentences, the off-topic sentences): ~10x faster, their 20 files took
    2.9 s of every `ivr` command's start in pure Python (0.3 s so). The same values and positions as _Loader on all
    132 YAML files of the repository when it was written (tests/test_intent_library.py checks the shipped ones). Not
    for what people write: on broken YAML the two differ (libyaml takes some tabs _Loader refuses, and counts columns
    differently around odd line breaks), and an author's file:line:col must not move."""


_FAST = getattr(yaml, "__with_libyaml__", False)      # PyYAML built without libyaml: _Loader reads everything

for _cls in (_Loader, _CLoader):
    _cls.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _cls.construct_mapping)
    _cls.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _cls.construct_sequence)
    # YAML 1.1 reads yes/no/on/off as booleans: `no: {say: no}` became a choice 'False' heard as "false".
    # Flows follow YAML 1.2: only true/false are booleans.
    _cls.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _cls.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                               list("tTfF"))


def read_yaml(path: Path, what: str = "flow file", shipped: bool = False):
    """Parse a YAML file; FlowError with file:line:col when it is not UTF-8 or not YAML. `shipped`: one of ivr's
    own files, read by libyaml when PyYAML has it (a file it refuses is read again, for _Loader's error)."""
    if not path.is_file():
        raise UserError(f"no such {what}: {path}", "check the path (relative paths start at the flow file)")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = line_col(raw[: exc.start].decode("utf-8", "replace"))
        raise FlowError([f"{path}:{line}:{col}: not UTF-8 text ({exc.reason}); save the file as UTF-8"]) from exc
    if shipped and _FAST:
        try:
            return yaml.load(text, Loader=_CLoader)
        except yaml.YAMLError:
            pass                            # read again below, for the pure-Python parser's words
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise FlowError([f"{where}: YAML does not parse: {exc.problem} "
                         "(hint: check indentation and quote text containing ':' or '#')"]) from exc
    except yaml.reader.ReaderError as exc:   # a control character: not a MarkedYAMLError
        line, col = line_col(text[: exc.position])
        raise FlowError([f"{path}:{line}:{col}: YAML does not allow the control character #x{exc.character:04x} "
                         "(hint: delete it)"]) from exc


def line_col(before: str) -> tuple[int, int]:
    """1-based line and column of the character that follows `before`."""
    return before.count("\n") + 1, len(before.rsplit("\n", 1)[-1]) + 1


class Problems:
    """Collects problems for one file, so an author fixes it in one pass."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: list[str] = []
        self.warnings: list[str] = []     # worth a look, but the flow still loads

    def error(self, where, key=None, message: str = "", hint: str = "") -> None:
        """`where`: a YAML mapping or list (with `key`), a (line, col), or a built step, which
        knows its own file (a subflow's) and where its keys stand."""
        if hasattr(where, "where"):
            self.items.append(f"{where.where(key)}: {message}" + (f" (hint: {hint})" if hint else ""))
            return
        if isinstance(where, LineDict):
            line, col = where.key_pos.get(key, (where.line, where.col)) if key is not None else (where.line, where.col)
        elif isinstance(where, LineList):
            line, col = where.item_pos[key] if isinstance(key, int) and key < len(where.item_pos) \
                else (where.line, where.col)
        elif isinstance(where, tuple):
            line, col = where
        else:
            line, col = 1, 1
        self.items.append(f"{self.path}:{line}:{col}: {message}" + (f" (hint: {hint})" if hint else ""))

    def warn(self, where, key=None, message: str = "", hint: str = "") -> None:
        """Like `error`, but the flow still loads: `ivr validate` prints it as "warning: ..."."""
        items, self.items = self.items, []
        try:
            self.error(where, key, message, hint)
            place, _, rest = self.items[0].partition(": ")
            self.warnings.append(f"{place}: warning: {rest}")
        finally:
            self.items = items

    def check_keys(self, data: LineDict, allowed: set[str], what: str) -> None:
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(sorted(allowed))
                self.error(data, key, f"unknown key '{key}' in {what}", hint)

    def raise_if_any(self) -> None:
        if self.items:
            raise FlowError(self.items)


def as_text(value):
    """A step name or target as text: YAML reads `next: 2` or `agent_line: 100` as numbers."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
