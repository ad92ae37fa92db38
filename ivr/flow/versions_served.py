"""A route served from the version store: `versions:NAME@ALIAS` in `ivr serve`'s config.

It loads the version the alias names (and the canary's, if the alias has one), and on every
poll re-reads the alias: when it moved, the new version is loaded, checked and prepared, then
swapped in for new calls. Calls in progress keep the `Flow` they started with. A version that
no longer loads is refused with its problems logged, and the one serving keeps serving.
"""

import logging
import time
from dataclasses import dataclass, replace

from ivr.errors import UserError
from ivr.flow.model import Flow
from ivr.flow.versions import AliasRef, Canary, canary_takes, resolve
from ivr.flow.versions_store import VersionStore

log = logging.getLogger("ivr.flows")


@dataclass(frozen=True, slots=True)
class _Live:
    """What serves now, swapped in one assignment (the watch thread swaps, the event loop reads)."""

    version: int
    flow: Flow
    canary: Canary | None = None
    canary_flow: Flow | None = None


class ServedAlias:
    KEEP_LABELS = 16   # flows recently served, so a call that picked one just before a swap is still labelled
    QUIET_S = 60.0     # while an error lasts (its text may vary: the database away), log it at most this often

    def __init__(self, store: VersionStore, ref: AliasRef) -> None:
        self.store, self.ref = store, ref
        self.live: _Live | None = None
        self.errors: list[str] = []
        self._seen: tuple | None = None
        self._revision: object | None = None       # the store's revision last loaded (None: always re-read)
        self._quiet_until = 0.0
        self._labels: dict[int, tuple[Flow, str]] = {}      # id(flow) -> (flow, "v3")

    @property
    def version(self) -> int:
        return self.live.version if self.live else 0

    @property
    def flow(self) -> Flow | None:
        return self.live.flow if self.live else None

    @property
    def canary(self) -> Canary | None:
        return self.live.canary if self.live else None

    def load(self, on_ready=None) -> bool:
        """Load what the alias names now; True if that swapped anything. Errors raise on the
        first load (a service must not start on a missing version), later they are logged."""
        first = self.flow is None
        try:
            revision = self.store.revision(self.ref.name)      # read first: a change after it is seen next time
            if revision is not None and revision == self._revision and not first:
                self._serving_what_named()
                return False
            state = self.store.state(self.ref.name)
            version = resolve(self.store, self.ref.name, self.ref.alias)
            spec = state["canaries"].get(self.ref.alias)
            canary = Canary.from_dict(spec) if spec else None
            if (version, canary) == self._seen:
                self._revision = revision
                self._serving_what_named()
                return False
            self._seen = (version, canary)
            old = self.live
            main = old.flow if old and version == old.version else self._load(version, on_ready)
            extra = None
            if canary is not None:
                extra = (old.canary_flow if old and old.canary and old.canary.version == canary.version
                         else main if canary.version == version else self._load(canary.version, on_ready))
        except UserError as exc:
            if first:
                raise
            now = time.monotonic()
            if not self.errors or (self.errors != [str(exc)] and now >= self._quiet_until):
                log.error("%s not reloaded, still serving v%d: %s", self.ref, self.version, exc)
                self._quiet_until = now + self.QUIET_S    # an outage is not logged at every poll
            self.errors = [str(exc)]
            return False
        moved = version != self.version
        for flow, number in ((main, version), (extra, canary.version if canary else 0)):
            if flow is not None:
                self._labels.pop(id(flow), None)         # re-inserted last: the serving flows are never trimmed
                self._labels[id(flow)] = (flow, f"v{number}")
        self.live, self.errors, self._revision = _Live(version, main, canary, extra), [], revision
        for stale in list(self._labels)[:-self.KEEP_LABELS]:
            del self._labels[stale]
        if not first:
            log.info("%s now serves v%d%s%s", self.ref, version, "" if moved else " (canary changed)",
                     f"; canary {canary.describe()}" if canary else "")
        return True

    def _serving_what_named(self) -> None:
        """Nothing moved: clear an error that has passed (the database is back); a refused version stays refused."""
        if self.live and (self.live.version, self.live.canary) == self._seen:
            self.errors = []

    def _load(self, version: int, on_ready) -> Flow:
        from ivr.flow.loader import FlowError, load_flow

        path = self.store.flow_path(self.ref.name, version)
        try:
            flow = load_flow(path)
        except FlowError as exc:
            raise UserError(f"{self.ref.name} v{version} does not load:\n" + "\n".join(exc.problems),
                            "point the alias at another version (`ivr flows rollback`)") from exc
        if flow.name != self.ref.name:
            flow = replace(flow, name=self.ref.name)   # records name the flow as published
        if on_ready is not None:
            try:
                on_ready(flow)   # e.g. synthesise its prompts before a call needs them
            except Exception as exc:
                raise UserError(f"{self.ref.name} v{version}: prompts could not be prepared: {exc}") from exc
        return flow

    def pick(self, call_id: str, caller: str) -> Flow:
        """The flow for a new call: the canary's if the call falls in it, else the alias's."""
        live = self.live
        if live.canary is not None and live.canary_flow is not None \
                and canary_takes(live.canary, self.ref.name, call_id, caller):
            return live.canary_flow
        return live.flow

    def label(self, flow: Flow) -> str | None:
        known = self._labels.get(id(flow))
        return known[1] if known is not None and known[0] is flow else None

    def flows(self) -> list[Flow]:
        live = self.live
        return [f for f in dict.fromkeys([live.flow, live.canary_flow]) if f is not None] if live else []

    def status(self) -> dict:
        return {"flow": self.ref.name, "path": str(self.ref), "version": f"v{self.version}", "store": self.store.where,
                "canary": self.canary.describe() if self.canary else None, "refused": self.errors}
