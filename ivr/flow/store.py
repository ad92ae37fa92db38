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
    def __init__(self, on_reload: Callable[[Flow], None] | None = None) -> None:
        self._entries: dict[str, _Entry] = {}
        self.on_reload = on_reload

    def add(self, key: str, path: Path) -> Flow:
        """Load a flow (errors raise: a service must not start on a broken flow)."""
        flow = load_flow(path)
        self._entries[key] = _Entry(Path(path), flow, _stamps(flow))
        return flow

    def get(self, key: str) -> Flow:
        return self._entries[key].flow

    def names(self) -> list[str]:
        return list(self._entries)

    def status(self) -> dict:
        return {k: {"flow": e.flow.name, "path": str(e.path), "version": e.version, "refused": e.errors}
                for k, e in self._entries.items()}

    def poll(self) -> list[str]:
        """Reload every flow whose files changed; returns the keys that were swapped in."""
        swapped = []
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
