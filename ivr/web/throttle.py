"""Wrong-password rate limiting and its log lines, for the web login.

`LoginThrottle`: after `max_failures` wrong passwords for one user from one IP (or 4x that
from one IP over any names: password spraying), that key is locked for `lockout`, doubling
with each further failure up to `max_lockout`; a failure-free `max_lockout` forgets the key,
a successful login clears the user+IP key. Password checks run in threads, two at a time, so
a flood of logins cannot starve the calls on the event loop.

`FailureLog`: one line for the first failure of a user+IP, then at most one line per interval
with the count since, so a brute-force run cannot flood the log.
"""

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

MAX_KEYS = 50_000
IP_FACTOR = 4


@dataclass(slots=True)
class _Entry:
    failures: int = 0
    last_s: float = 0.0
    locked_until_s: float = 0.0


class LoginThrottle:
    def __init__(self, max_failures: int, lockout_ms: int, max_lockout_ms: int, clock=time.time,
                 concurrent_checks: int = 2) -> None:
        self.max_failures, self.clock = max_failures, clock
        self.lockout_s, self.max_lockout_s = lockout_ms / 1000, max_lockout_ms / 1000
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self._checks = asyncio.Semaphore(concurrent_checks)

    def _keys(self, name: str, ip: str) -> list[tuple[tuple, int]]:
        return [(("user", name, ip), self.max_failures), (("ip", ip), self.max_failures * IP_FACTOR)]

    def _entry(self, key: tuple, now: float, create: bool = False) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and now - entry.last_s >= self.max_lockout_s and now >= entry.locked_until_s:
            del self._entries[key]   # quiet long enough: forgotten
            entry = None
        if entry is None and create:
            entry = self._entries[key] = _Entry()
            while len(self._entries) > MAX_KEYS:
                self._entries.popitem(last=False)
        return entry

    def wait_s(self, name: str, ip: str) -> float:
        """Seconds this user+IP must wait before a password is checked again (0: go ahead)."""
        now = self.clock()
        waits = [e.locked_until_s - now for key, _ in self._keys(name, ip) if (e := self._entry(key, now))]
        return max([0.0, *waits])

    def failed(self, name: str, ip: str) -> None:
        now = self.clock()
        for key, limit in self._keys(name, ip):
            entry = self._entry(key, now, create=True)
            entry.failures += 1
            entry.last_s = now
            self._entries.move_to_end(key)
            if entry.failures >= limit:
                entry.locked_until_s = now + min(self.lockout_s * 2 ** (entry.failures - limit), self.max_lockout_s)

    def succeeded(self, name: str, ip: str) -> None:
        self._entries.pop(("user", name, ip), None)

    async def run(self, check, *args):
        async with self._checks:
            return await asyncio.to_thread(check, *args)


class FailureLog:
    def __init__(self, logger: logging.Logger, interval_s: float = 60.0, clock=time.time) -> None:
        self.logger, self.interval_s, self.clock = logger, interval_s, clock
        self._pending: OrderedDict[tuple, list] = OrderedDict()   # key -> [last logged at, count since]

    def note(self, name: str, ip: str, locked: bool = False) -> bool:
        """Count one failed (or locked-out) login; log it if this key's interval has passed. True if logged."""
        now, key = self.clock(), (name, ip)
        seen = self._pending.get(key)
        if seen is not None and now - seen[0] < self.interval_s:
            seen[1] += 1
            return False
        count = 1 + (seen[1] if seen else 0)
        self._pending[key] = [now, 0]
        self._pending.move_to_end(key)
        while len(self._pending) > MAX_KEYS:
            self._pending.popitem(last=False)
        shown = repr(name[:64])   # repr: a name cannot forge log lines
        if count == 1 and not locked:
            self.logger.warning("web login failed for user %s from %s", shown, ip)
        else:
            self.logger.warning("web login: %d failed attempts for user %s from %s in the last %.0f s%s", count,
                                shown, ip, now - seen[0] if seen else 0, " (locked out)" if locked else "")
        return True
