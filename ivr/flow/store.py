"""Hot reload: flows are re-read when their files change, checked, and swapped in for new calls.

A call takes the `Flow` object current when it starts and keeps it to the end (flows are
immutable), so calls in progress finish on the version they began with. A file that no
longer loads is refused with its problems logged, and the last good version keeps serving.
"""

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ivr.errors import UserError
from ivr.flow.loader import load_flow
from ivr.flow.model import Flow

log = logging.getLogger("ivr.flows")


@dataclass(slots=True)
class _Entry:
    path: Path
    flow: Flow
    stamps: dict[str, tuple[int, int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)     # of the last refused version
    version: int = 1


class FlowStore:
    def __init__(self, on_reload: Callable[[Flow], None] | None = None, versions_dir: Path | None = None,
                 versions_database: str | None = None) -> None:
        self._entries: dict[str, _Entry] = {}
        self._aliases: dict = {}              # key -> ServedAlias, for `versions:NAME@ALIAS` (flow/versions.py)
        self.versions_dir = Path(versions_dir or "flows.d")
        self.versions_database = versions_database   # PostgreSQL URL: versions shared by every node
        self._version_store = None            # opened at the first alias, shared by all
        self.on_reload = on_reload

    def add(self, key: str, path: Path) -> Flow:
        """Load a flow, or the version an alias names (errors raise: a service must not start on a broken flow)."""
        from ivr.flow.versions import parse_ref

        ref = parse_ref(path)
        if ref is not None:
            from ivr.flow.versions_served import ServedAlias
            from ivr.flow.versions_store import open_version_store

            if self._version_store is None:
                self._version_store = open_version_store(self.versions_dir, self.versions_database)
            served = ServedAlias(self._version_store, ref)
            served.load()
            self._aliases[key] = served
            return served.flow
        flow = load_flow(path)
        self._entries[key] = _Entry(Path(path), flow, _stamps(flow))
        return flow

    def get(self, key: str) -> Flow:
        return self._aliases[key].flow if key in self._aliases else self._entries[key].flow

    def pick(self, key: str, call_id: str = "", caller: str = "") -> Flow:
        """The flow for a new call on this route (an alias's canary may take it)."""
        return self._aliases[key].pick(call_id, caller) if key in self._aliases else self._entries[key].flow

    def version_of(self, flow: Flow) -> str | None:
        """The version label (e.g. v3) of a flow served from the version store; None for a flow file."""
        return next((label for a in self._aliases.values() if (label := a.label(flow))), None)

    def flows(self) -> list[Flow]:
        """Every flow serving now (an alias's canary too)."""
        return [*(e.flow for e in self._entries.values()), *(f for a in self._aliases.values() for f in a.flows())]

    def names(self) -> list[str]:
        return [*self._entries, *self._aliases]

    def status(self) -> dict:
        return {**{k: {"flow": e.flow.name, "path": str(e.path), "version": e.version, "refused": e.errors}
                   for k, e in self._entries.items()}, **{k: a.status() for k, a in self._aliases.items()}}

    def poll(self) -> list[str]:
        """Reload every flow whose files changed, or whose alias moved; returns the keys swapped in."""
        swapped = [key for key, served in self._aliases.items() if served.load(self.on_reload)]
        for key, entry in self._entries.items():
            stamps = _stamps(entry.flow, entry.path)
            if stamps == entry.stamps:
                continue
            entry.stamps = stamps
            try:
                flow = load_flow(entry.path)
            except UserError as exc:
                entry.errors = list(getattr(exc, "problems", [str(exc)]))
                log.error("flow %s not reloaded, still serving version %d:\n%s", entry.path, entry.version,
                          "\n".join(entry.errors))
                continue
            if self.on_reload:
                try:
                    self.on_reload(flow)   # e.g. synthesise the new prompts before a call needs them
                except Exception as exc:
                    entry.errors = [f"prompts could not be prepared: {exc}"]
                    log.exception("flow %s not reloaded: its prompts could not be prepared", entry.path)
                    continue
            entry.flow, entry.errors, entry.version = flow, [], entry.version + 1
            entry.stamps = _stamps(flow, entry.path)
            swapped.append(key)
            log.info("flow %s reloaded (version %d)", entry.path, entry.version)
        return swapped

    async def watch(self, interval_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await asyncio.to_thread(self.poll)


def _stamps(flow: Flow, path: Path | None = None) -> dict[str, tuple[int, int]]:
    files = list(flow.sources) or ([str(path)] if path else [])
    out = {}
    for name in files:
        try:
            st = os.stat(name)
            out[name] = (st.st_mtime_ns, st.st_size)
        except OSError:
            out[name] = (0, 0)
    return out
