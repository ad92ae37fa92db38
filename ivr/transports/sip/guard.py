"""Who may talk to the SIP port, and how fast: a CIDR allow-list, trusted sources and a per-source
token bucket.

Scanners (sipvicious and friends) sweep OPTIONS/INVITE/REGISTER at hundreds per second.
Past the rate limit a source is dropped without an answer (answering would help the scan
and can amplify spoofed floods) and logged once per window, with a count. The endpoint charges
the bucket only for new requests outside dialogs (and for junk), never for ACK, in-dialog
requests or retransmissions, so a trunk's busy hour does not lose its ACKs and BYEs. Trusted
sources (the proxy in front, the carrier's trunk: CIDRs) are allowed and never limited.
"""

import ipaddress
import logging
import time
from collections import OrderedDict

log = logging.getLogger("ivr.sip.guard")


class LogThrottle:
    """At most `per_window` log lines per key per window; the rest are counted."""

    def __init__(self, window_s: float = 10.0, per_window: int = 1, max_keys: int = 4096) -> None:
        self.window_s, self.per_window, self.max_keys = window_s, per_window, max_keys
        self._windows: OrderedDict[str, list] = OrderedDict()   # key -> [start, logged, suppressed]

    def allow(self, key: str, now: float | None = None) -> tuple[bool, int]:
        """(log this one?, how many were suppressed in the window that just closed)."""
        now = time.monotonic() if now is None else now
        entry = self._windows.get(key)
        suppressed = 0
        if entry is None or now - entry[0] >= self.window_s:
            suppressed = entry[2] if entry else 0
            entry = [now, 0, 0]
            self._windows[key] = entry
            self._windows.move_to_end(key)
            while len(self._windows) > self.max_keys:
                self._windows.popitem(last=False)
        if entry[1] < self.per_window:
            entry[1] += 1
            return True, suppressed
        entry[2] += 1
        return False, suppressed


class SourceGuard:
    def __init__(self, allow: list[str] | None = None, rate_limit_per_s: float = 20.0,
                 burst: float | None = None, max_sources: int = 10_000, trusted: list[str] | None = None) -> None:
        self.networks = parse_networks(allow, "allow") if allow is not None else None
        self.trusted_networks = parse_networks(trusted or [], "trusted")
        self.rate_per_s = rate_limit_per_s
        self.burst = burst if burst is not None else max(10.0, 2 * rate_limit_per_s)
        self.max_sources = max_sources
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()   # ip -> [tokens, updated]
        self._flood_log = LogThrottle(window_s=10.0)
        self.dropped = 0

    def allowed(self, ip: str) -> bool:
        if self.networks is None:
            return True
        return _within(ip, self.networks) or _within(ip, self.trusted_networks)

    def trusted(self, ip: str) -> bool:
        return bool(self.trusted_networks) and _within(ip, self.trusted_networks)

    def within_rate(self, ip: str, now: float | None = None) -> bool:
        if self.rate_per_s <= 0:
            return True
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(ip)
        if bucket is None:
            bucket = [self.burst, now]
            self._buckets[ip] = bucket
            while len(self._buckets) > self.max_sources:   # a spoofed sweep must not grow this forever
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(ip)
        bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate_per_s)
        bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return True
        self.dropped += 1
        show, suppressed = self._flood_log.allow(ip, now)
        if show:
            log.warning("sip: %s exceeds %.0f requests/s; dropping its packets silently%s", ip, self.rate_per_s,
                        f" ({suppressed} more dropped in the previous window)" if suppressed else "")
        return False


def parse_networks(cidrs, what: str) -> list:
    """CIDRs (or single addresses) from the config; a bad one is a ValueError that names it."""
    if isinstance(cidrs, str):
        cidrs = [cidrs]
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(str(cidr).strip(), strict=False))
        except ValueError:
            raise ValueError(f"sip {what}: {cidr!r} is not an IP address or CIDR "
                             "(e.g. 10.0.0.5 or 10.0.0.0/24)") from None
    return networks


def _within(ip: str, networks: list) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in net for net in networks)
