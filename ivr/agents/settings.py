"""The `agents:` section of the serve config.

    agents:
      wrap_up: 30s          # after each answered call, before the next one is offered
      ring_timeout: 20s     # an agent's phone rings this long, then the next agent is tried
      max_misses: 2         # rings not answered in a row before the agent is set away
      default_handle: 3m    # handle time used for the wait estimate until 3 calls are known
      recent_calls: 20      # the estimate's mean handle time is over this many answered calls
      node_timeout: 15s     # several nodes (PostgreSQL): a node silent (no heartbeat) this long is dead,
                            # its waiting callers' rows go and its agents are released (ivr/agents/shared.py)
"""

from dataclasses import dataclass

from ivr.durations import DurationError, parse_duration_ms
from ivr.errors import UserError

AGENTS_KEYS = {"wrap_up", "ring_timeout", "max_misses", "default_handle", "recent_calls", "node_timeout"}


@dataclass(slots=True)
class AgentSettings:
    wrap_up_s: float = 30.0
    ring_timeout_s: float = 20.0
    max_misses: int = 2
    default_handle_s: float = 180.0
    recent_calls: int = 20
    node_timeout_s: float = 15.0


def parse_agents(data: dict, path) -> AgentSettings:
    unknown = set(data) - AGENTS_KEYS
    if unknown:
        raise UserError(f"{path}: unknown key agents.{sorted(unknown)[0]}",
                        "agents keys: " + ", ".join(sorted(AGENTS_KEYS)))
    out = AgentSettings()
    for key, attr, zero_ok in (("wrap_up", "wrap_up_s", True), ("ring_timeout", "ring_timeout_s", False),
                               ("default_handle", "default_handle_s", False),
                               ("node_timeout", "node_timeout_s", False)):
        if key in data:
            try:
                ms = parse_duration_ms(data[key])
            except DurationError as exc:
                raise UserError(f"{path}: agents.{key} must be a duration with a unit, not {data[key]!r}",
                                exc.hint) from exc
            if ms < 0 or (ms == 0 and not zero_ok):
                raise UserError(f"{path}: agents.{key} must be longer than 0", "e.g. 20s")
            setattr(out, attr, ms / 1000)
    for key in ("max_misses", "recent_calls"):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"{path}: agents.{key} must be a whole number >= 1, not {value!r}")
            setattr(out, key, value)
    return out
