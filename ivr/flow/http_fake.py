"""Stand-ins for `HttpClient` in conversation tests and `ivr chat`: `FakeResponses` answers from
canned data, `RecordingHttpClient` records what a flow asked for (redacted). Both go through the
real client's attempt/retry/redaction path (`ivr.flow.http`), so their results look the same.
"""

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlsplit

from ivr.durations import parse_duration_ms
from ivr.flow.http import (
    METHODS,
    HttpExecutor,
    HttpRequest,
    HttpResult,
    _bad_url,
    _classify,
    _Outcome,
    _run,
    _secrets_of,
    redact_headers,
    redact_url,
    validate_url,
)


class FakeResponses:
    """Canned answers for conversation tests, keyed "METHOD url-pattern" (`*` is the only wildcard;
    a pattern starting with "/" matches path+query, else the whole URL). A value is one spec or a
    list used in turn (the last repeats): {status: 200, json: ..., body: "raw", delay: "50ms",
    error: "timeout"}. Requests nothing matches fail with error "connect" and are kept in `unmatched`."""

    SPEC_KEYS = frozenset({"status", "json", "body", "delay", "error"})
    FAKE_ERRORS = frozenset({"timeout", "connect"})   # HTTP errors are made with `status`

    def __init__(self, routes: Mapping[str, object], *, max_body_bytes: int = 1_000_000, backoff_ms: int = 0) -> None:
        self.max_body_bytes = max_body_bytes
        self.backoff_ms = backoff_ms
        self.unmatched: list[str] = []
        self._routes: list[tuple[str, re.Pattern, bool, list[dict]]] = []
        for key, value in routes.items():
            method, _, pattern = key.strip().partition(" ")
            specs = list(value) if isinstance(value, list) else [value]
            if method.upper() not in METHODS or not pattern.strip() or not specs:
                raise ValueError(f"fake response key {key!r}: use 'GET /orders/*' or 'POST http://host/path'")
            for spec in specs:
                bad = set(spec) - self.SPEC_KEYS if isinstance(spec, dict) else {"<not a mapping>"}
                if bad:
                    raise ValueError(f"fake response {key!r}: unknown keys {sorted(bad)}, use {sorted(self.SPEC_KEYS)}")
                if spec.get("error", "timeout") not in self.FAKE_ERRORS:
                    raise ValueError(f"fake response {key!r}: error must be timeout or connect (use status: 503)")
                parse_duration_ms(spec.get("delay", 0))
            regex = re.compile(".*".join(re.escape(p) for p in pattern.strip().split("*")))
            self._routes.append((method.upper(), regex, pattern.strip().startswith("/"), specs))
        self._used: dict[int, int] = {}

    async def execute(self, req: HttpRequest) -> HttpResult:
        problem = validate_url(req.url)
        if problem:
            return await _run(req, _bad_url(problem), _secrets_of(req), 0)
        parts = urlsplit(req.url)
        path_query = parts.path + (f"?{parts.query}" if parts.query else "")
        for i, (method, regex, by_path, specs) in enumerate(self._routes):
            if method == req.method and regex.fullmatch(path_query if by_path else req.url):
                answer = partial(self._answer, i, specs, req)
                return await _run(req, answer, _secrets_of(req), self.backoff_ms)
        self.unmatched.append(f"{req.method} {redact_url(req.url)}")
        return await _run(req, _no_fake_match, _secrets_of(req), 0)

    async def _answer(self, index: int, specs: list[dict], req: HttpRequest) -> _Outcome:
        n = self._used.get(index, 0)
        self._used[index] = n + 1
        spec = specs[min(n, len(specs) - 1)]
        delay_ms = parse_duration_ms(spec.get("delay", 0))
        await asyncio.sleep(min(delay_ms, req.timeout_ms) / 1000)
        if delay_ms > req.timeout_ms or spec.get("error") == "timeout":
            return _Outcome(None, "timeout", why=f"no answer within {req.timeout_ms} ms (fake)")
        if spec.get("error"):
            return _Outcome(None, str(spec["error"]), why="fake error")
        body = spec["body"].encode() if "body" in spec else json.dumps(spec.get("json", {})).encode()
        return _classify(int(spec.get("status", 200)), body, self.max_body_bytes)

    async def close(self) -> None:
        pass


async def _no_fake_match() -> _Outcome:
    return _Outcome(None, "connect", why="no fake response matches")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    url: str                                # secrets in the query replaced by ***
    headers: tuple[tuple[str, str], ...]    # redacted
    json_body: object


class RecordingHttpClient:
    """Wraps an HttpClient or FakeResponses and records every request, redacted, in `requests`."""

    def __init__(self, inner: HttpExecutor) -> None:
        self.inner = inner
        self.requests: list[RecordedRequest] = []
        self.results: list[HttpResult] = []

    async def execute(self, req: HttpRequest) -> HttpResult:
        headers = redact_headers(req.headers)
        self.requests.append(RecordedRequest(req.method, redact_url(req.url), headers, req.json_body))
        result = await self.inner.execute(req)
        self.results.append(result)
        return result

    async def close(self) -> None:
        await self.inner.close()
