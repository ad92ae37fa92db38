"""Published flow versions: immutable numbered copies of a flow's files, aliases and canaries.

`publish` loads a flow (a flow `ivr validate` refuses is refused here, with its problems),
gathers every file it is built from (the flow, its subflows, its FAQ knowledge file, the
recorded prompts it plays), checks that a copy of them loads on its own, and hands the files
to a `VersionStore`, which numbers the version and never changes it again. An alias (`live`,
`staging`, ...) names one version; rolling back moves the alias. A canary on an alias sends a
share of calls (by a hash of the call id: the same id always goes the same way) or the
callers whose number matches a prefix or range to another version.

The store is a small interface so that a later one can keep versions in a database for
several nodes; `DirVersionStore` keeps them on disk:

    flows.d/NAME/v1/manifest.json    {"name", "version", "entry", "hash", "author", "created", "message", "files"}
    flows.d/NAME/v1/files/...        the flow's files, laid out as around the flow file (read-only)
    flows.d/NAME/state.json          {"aliases": {"live": 1}, "history": {"live": [1]}, "canaries": {...}}
"""

import difflib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ivr.errors import UserError
from ivr.flow.versions_store import DirVersionStore, Manifest, VersionStore, file_hash

__all__ = ["AliasRef", "Canary", "DirVersionStore", "Manifest", "VersionStore", "canary_takes", "diff",
           "flow_files", "parse_ref", "publish", "resolve", "rollback", "set_alias", "set_canary"]

REF_PREFIX = "versions:"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class AliasRef:
    """`versions:NAME@ALIAS` (alias `live` if left out), as a route or default flow in the serve config."""

    name: str
    alias: str = "live"

    def __str__(self) -> str:
        return f"{REF_PREFIX}{self.name}@{self.alias}"


@dataclass(frozen=True, slots=True)
class Canary:
    version: int
    percent: float = 0.0                          # share of calls, by a hash of the call id
    callers: tuple[str, ...] = field(default=())  # prefixes ("+1555") or ranges ("+15550100..+15550199")

    def to_dict(self) -> dict:
        return {"version": self.version, "percent": self.percent, "callers": list(self.callers)}

    @staticmethod
    def from_dict(data: dict) -> "Canary":
        return Canary(int(data["version"]), float(data.get("percent", 0)), tuple(data.get("callers", ())))

    def describe(self) -> str:
        rules = ([f"{self.percent:g}% of calls"] if self.percent else []) + \
                ([f"callers {', '.join(self.callers)}"] if self.callers else [])
        return f"v{self.version} for {' and '.join(rules) or 'no calls'}"


def parse_ref(value) -> AliasRef | None:
    """An `AliasRef` for `versions:NAME[@ALIAS]`, None for anything else (a flow file's path)."""
    text = str(value)
    if not text.startswith(REF_PREFIX):
        return None
    name, _, alias = text[len(REF_PREFIX):].partition("@")
    check_name(name, "flow name")
    check_name(alias or "live", "alias")
    return AliasRef(name, alias or "live")


def check_name(name: str, what: str) -> str:
    if not NAME_RE.match(name or ""):
        raise UserError(f"bad {what} {name!r}", "use letters, digits, '.', '_' or '-' (e.g. retail, live)")
    return name


def flow_files(flow) -> list[Path]:
    """Every file a loaded flow is built from: its sources (flow, subflows, FAQ) and recorded prompts."""
    files = [Path(s) for s in (flow.sources or (flow.path,))]
    for step in flow.steps.values():
        prompts = [*step.say, *([step.ask] if getattr(step, "ask", None) else [])]
        files += [Path(p.audio_path) for p in prompts if getattr(p, "audio_path", None)]
    return list(dict.fromkeys(f.resolve() for f in files))


def publish(store: VersionStore, flow_path: Path, name: str | None = None, author: str = "", message: str = "",
            alias: str | None = None) -> tuple[Manifest, bool, tuple[str, ...]]:
    """Publish a flow: (its manifest, True, the flow's validate warnings) for a new version,
    (the latest's, False, warnings) if nothing changed."""
    from ivr.flow.loader import FlowError, load_flow

    flow_path = Path(flow_path)
    if not flow_path.is_file():
        raise UserError(f"no such flow file: {flow_path}", "give the flow's YAML file, e.g. flows/demo.yaml")
    try:
        flow = load_flow(flow_path)
    except FlowError as exc:
        raise UserError("the flow does not validate, so it was not published:\n" + "\n".join(exc.problems),
                        f"fix it (`ivr validate {flow_path}`), then publish again") from exc
    name = check_name(name or flow.name, "flow name")
    files = flow_files(flow)
    root = Path(os.path.commonpath([str(f.parent) for f in files]))
    contents = {f.relative_to(root).as_posix(): f.read_bytes() for f in files}
    entry = flow_path.resolve().relative_to(root).as_posix()
    latest = store.versions(name)[-1:] if name in store.names() else []
    if latest and latest[0].hash == file_hash(contents):
        manifest, new = latest[0], False
    else:
        _check_copy_loads(contents, entry)
        manifest, new = store.add_version(name, contents, entry, author, message), True
    if alias:
        set_alias(store, name, alias, manifest.version)
    return manifest, new, tuple(flow.warnings)


def _check_copy_loads(contents: dict[str, bytes], entry: str) -> None:
    """A version must stand alone: load a copy and refuse files it reads from outside the copy."""
    from ivr.flow.loader import FlowError, load_flow

    with tempfile.TemporaryDirectory(prefix="ivr-publish-") as tmp:
        root = Path(tmp).resolve()
        for rel, data in contents.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        try:
            copy = load_flow(root / entry)
        except FlowError as exc:
            raise UserError("a copy of the flow's files does not load on its own:\n" + "\n".join(exc.problems),
                            "refer to subflows, FAQ files and recordings by paths relative to the flow file") from exc
        outside = [str(f) for f in flow_files(copy) if not f.is_relative_to(root)]
        if outside:
            raise UserError(f"the flow reads files by absolute path: {', '.join(outside)}",
                            "use paths relative to the flow file, so a published version holds its own copy")


def resolve(store: VersionStore, name: str, alias: str) -> int:
    """The version an alias names (or a number given as 'v3' / '3')."""
    versions = _known(store, name)
    as_number = alias[1:] if alias[:1] == "v" else alias
    if as_number.isdigit():
        return _version(store, name, as_number)
    aliases = store.state(name)["aliases"]
    if alias not in aliases:
        raise UserError(f"flow {name} has no alias {alias!r}",
                        f"aliases: {', '.join(sorted(aliases)) or 'none'}; set one with "
                        f"`ivr flows alias {name} {alias} {versions[-1].version}`")
    return int(aliases[alias])


def _known(store: VersionStore, name: str) -> list[Manifest]:
    known = store.versions(name) if name in store.names() else []
    if not known:
        raise UserError(f"no published flow named {name!r} in {store.where}",
                        f"published: {', '.join(store.names()) or 'none'}; publish with `ivr flows publish FLOW.yaml`")
    return known


def _version(store: VersionStore, name: str, value) -> int:
    text = str(value)
    number = text[1:] if text[:1] == "v" else text
    known = [m.version for m in _known(store, name)]
    if not number.isdigit() or int(number) not in known:
        raise UserError(f"flow {name} has no version {value!r}", f"versions: {', '.join(f'v{v}' for v in known)}")
    return int(number)


def set_alias(store: VersionStore, name: str, alias: str, version) -> int:
    check_name(alias, "alias")
    number = _version(store, name, version)

    def move(state: dict) -> None:
        state["aliases"][alias] = number
        history = state["history"].setdefault(alias, [])
        if not history or history[-1] != number:
            history.append(number)
        del history[:-50]
    store.update_state(name, move)
    return number


def rollback(store: VersionStore, name: str, alias: str = "live", to=None) -> tuple[int, int]:
    """Move the alias back (to the version it named before, or `to`): (from, to)."""
    current = resolve(store, name, alias)
    if to is not None:
        target = _version(store, name, to)
    else:
        earlier = [v for v in store.state(name)["history"].get(alias, [])[:-1] if v != current]
        if not earlier:
            raise UserError(f"alias {alias} of {name} has named no other version before v{current}",
                            f"give one: `ivr flows rollback {name} --to VERSION`")
        target = earlier[-1]

    def move(state: dict) -> None:
        state["aliases"][alias] = target
        history = state["history"].setdefault(alias, [])
        if to is None and len(history) >= 2 and history[-2] == target:
            history.pop()               # undo: a second rollback goes one further back
        elif not history or history[-1] != target:
            history.append(target)
    store.update_state(name, move)
    return current, target


def set_canary(store: VersionStore, name: str, alias: str, canary: Canary | None) -> Canary | None:
    resolve(store, name, alias)
    if canary is not None:
        canary = Canary(_version(store, name, canary.version), canary.percent, canary.callers)
        if not 0 <= canary.percent <= 100:
            raise UserError(f"canary percent must be 0..100, not {canary.percent:g}", "e.g. --percent 10")
        if not canary.percent and not canary.callers:
            raise UserError("a canary needs --percent or --callers", "or --off to end it")
        for rule in canary.callers:
            _caller_rule(rule)

    def change(state: dict) -> None:
        if canary is None:
            state["canaries"].pop(alias, None)
        else:
            state["canaries"][alias] = canary.to_dict()
    store.update_state(name, change)
    return canary


def canary_takes(canary: Canary, name: str, call_id: str, caller: str) -> bool:
    """Whether a call goes to the canary: its caller matches a rule, or its id hashes below the share."""
    digits = _digits(caller)
    for rule in canary.callers:
        low, high = _caller_rule(rule)
        if high is None and digits.startswith(low):
            return True
        if high is not None and len(digits) == len(low) and low <= digits <= high:
            return True
    if canary.percent <= 0:
        return False
    bucket = int.from_bytes(hashlib.sha256(f"{name}\0{call_id}".encode()).digest()[:8], "big") % 10_000
    return bucket < canary.percent * 100


def _digits(number: str) -> str:
    return re.sub(r"[^0-9]", "", number or "")


def _caller_rule(rule: str) -> tuple[str, str | None]:
    low, sep, high = rule.partition("..")
    if not _digits(low) or (sep and (not _digits(high) or len(_digits(low)) != len(_digits(high)))):
        raise UserError(f"bad caller rule {rule!r}",
                        "a number prefix (+1555) or a range of equally long numbers (+15550100..+15550199)")
    return _digits(low), (_digits(high) if sep else None)


def diff(store: VersionStore, name: str, a, b) -> str:
    """A unified diff of two versions' files (a file only in one is diffed against nothing)."""
    va, vb = _version(store, name, a), _version(store, name, b)
    fa, fb = store.manifest(name, va).files, store.manifest(name, vb).files
    out: list[str] = []
    for rel in sorted(set(fa) | set(fb)):
        if fa.get(rel) == fb.get(rel):
            continue
        old = store.read_file(name, va, rel) if rel in fa else b""
        new = store.read_file(name, vb, rel) if rel in fb else b""
        try:
            old_lines, new_lines = old.decode().splitlines(True), new.decode().splitlines(True)
        except UnicodeDecodeError:
            out.append(f"Binary files v{va}/{rel} and v{vb}/{rel} differ\n")
            continue
        out += difflib.unified_diff(old_lines, new_lines, f"v{va}/{rel}" if rel in fa else "/dev/null",
                                    f"v{vb}/{rel}" if rel in fb else "/dev/null")
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
    return "".join(out)
