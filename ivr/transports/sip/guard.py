"""Who may talk to the SIP port, and how fast: a CIDR allow-list, trusted sources and a per-source
token bucket.

Scanners (sipvicious and friends) sweep OPTIONS/INVITE/REGISTER at hundreds per second.
Past the rate limit a source is dropped without an answer (answering would help the scan
and can amplify spoofed floods) and logged once per window, with a count. The endpoint charges
the bucket only for new requests outside dialogs (and for junk), never for ACK, in-dialog
requests or retransmissions, so a trunk's busy hour does not lose its ACKs and BYEs. Before
parsing, a coarser ceiling (DATAGRAM_FACTOR x the rate, on every datagram) keeps a flood from
costing parsing time. Trusted sources (the proxy in front, the carrier's trunk: CIDRs) are
allowed and never limited.
"""

import ipaddress
import logging
import time
from collections import OrderedDict

log = logging.getLogger("ivr.sip.guard")
DATAGRAM_FACTOR = 10   # datagrams of any kind a source may send per new request it may start


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
        self._datagrams: OrderedDict[str, list[float]] = OrderedDict()
        self._flood_log = LogThrottle(window_s=10.0)
        self.dropped = 0
        self.clock = time.monotonic   # seconds; tests may stop it

    def allowed(self, ip: str) -> bool:
        if self.networks is None:
            return True
        return _within(ip, self.networks) or _within(ip, self.trusted_networks)

    def trusted(self, ip: str) -> bool:
        return bool(self.trusted_networks) and _within(ip, self.trusted_networks)

    def within_rate(self, ip: str, now: float | None = None) -> bool:
        """Take one new request from the source's bucket."""
        if self.rate_per_s <= 0:
            return True
        now = self.clock() if now is None else now
        if self._take(self._buckets, ip, self.rate_per_s, self.burst, now):
            return True
        self._flooding(ip, now, f"{self.rate_per_s:.0f} new requests/s")
        return False

    def within_datagram_rate(self, ip: str, now: float | None = None) -> bool:
        """A ceiling on everything a source sends, checked before parsing so a flood costs no parsing:
        DATAGRAM_FACTOR times the request rate, far above what its calls' ACKs, BYEs and in-dialog
        requests need."""
        if self.rate_per_s <= 0:
            return True
        now = self.clock() if now is None else now
        rate = self.rate_per_s * DATAGRAM_FACTOR
        if self._take(self._datagrams, ip, rate, self.burst * DATAGRAM_FACTOR, now):
            return True
        self._flooding(ip, now, f"{rate:.0f} datagrams/s")
        return False

    def _take(self, buckets: OrderedDict, ip: str, rate_per_s: float, burst: float, now: float) -> bool:
        bucket = buckets.get(ip)
        if bucket is None:
            bucket = [burst, now]
            buckets[ip] = bucket
            while len(buckets) > self.max_sources:   # a spoofed sweep must not grow this forever
                buckets.popitem(last=False)
        buckets.move_to_end(ip)
        bucket[0] = min(burst, bucket[0] + (now - bucket[1]) * rate_per_s)
        bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return True
        return False

    def _flooding(self, ip: str, now: float, limit: str) -> None:
        self.dropped += 1
        show, suppressed = self._flood_log.allow(ip, now)
        if show:
            log.warning("sip: %s exceeds %s; dropping its packets silently%s", ip, limit,
                        f" ({suppressed} more dropped in the previous window)" if suppressed else "")


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
