"""HTTP steps: run a flow's already-rendered request against a CRM / order / ticket service.

`HttpClient.execute` never raises for network or server faults: it returns an `HttpResult`
whose `error` kind the flow branches on. Secrets never reach `detail`. The pure helpers at the
top are for the template layer. The test stand-ins (`FakeResponses`, `RecordingHttpClient`)
are in `http_fake.py`.
"""

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from ivr.privacy import redact_live

log = logging.getLogger(__name__)

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
BACKOFF_MS = 200            # sleep backoff_ms * attempt between attempts
SNIPPET_CHARS = 120         # of an error body, in `detail`
_SECRET_NAME = re.compile(r"token|key|secret|passw|auth|cookie|signature", re.I)
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"   # kept by requoting: reserved chars and existing %XX escapes

# ---- pure helpers for the template layer ----------------------------------------------


def quote_path(value: object) -> str:
    """Escape a value for one URL path segment ("/", "?", "#", spaces, unicode; "." and "..")."""
    text = quote(str(value), safe="")
    return text.replace(".", "%2E") if text.strip(".") == "" else text


def quote_query(value: object) -> str:
    """Escape a value for a query string (a phone's "+" must not turn into a space)."""
    return quote(str(value), safe="")


def validate_url(url: str) -> str | None:
    """None if `url` can be requested, else what is wrong with it."""
    if "{{" in url or "}}" in url:
        return f"URL has an unrendered template: {redact_url(url)}"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return "URL contains whitespace or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError as e:
        return f"malformed URL: {e}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"URL must start with http:// or https://, got {redact_url(url)!r}"
    if not parts.hostname:
        return f"URL has no host: {redact_url(url)!r}"
    return None


def redact_url(url: str) -> str:
    """The URL with passwords and secret-looking query parameters replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<malformed URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = parts.query
    if any(_SECRET_NAME.search(k) for k, _ in pairs):
        query = urlencode([(k, "***" if _SECRET_NAME.search(k) else v) for k, v in pairs], safe="*+")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_headers(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """Authorization keeps its scheme ("Bearer ***"); other secret-looking headers become ***."""
    out = []
    for name, value in headers:
        if name.lower() in ("authorization", "proxy-authorization") and " " in value:
            value = value.split(" ", 1)[0] + " ***"
        elif _SECRET_NAME.search(name):
            value = "***"
        out.append((name, value))
    return tuple(out)


# ---- request and result ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """Already rendered by the interpreter's template layer."""

    method: str                 # GET POST PUT PATCH DELETE
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    json_body: object = None
    timeout_ms: int = 3000      # per attempt
    retries: int = 0            # extra attempts on connect errors, timeouts and 5xx (never on 4xx)
    save: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"HTTP method must be one of {sorted(METHODS)}, got {self.method!r}")
        if self.timeout_ms <= 0 or self.retries < 0:
            raise ValueError("timeout_ms must be > 0 and retries >= 0")


@dataclass(frozen=True, slots=True)
class HttpResult:
    ok: bool
    status: int | None          # None when no response
    data: object                # parsed JSON when ok, else None
    error: str                  # "" | timeout | connect | http_4xx | http_5xx | bad_json | too_large | bad_url
    detail: str                 # one redacted line for logs
    elapsed_ms: int
    attempts: int


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One attempt: (status, error, data, why)."""

    status: int | None
    error: str
    data: object = None
    why: str = ""

    @property
    def retryable(self) -> bool:
        return self.error in ("timeout", "connect", "http_5xx")


def _classify(status: int, body: bytes, max_body_bytes: int) -> _Outcome:
    if len(body) > max_body_bytes:
        return _Outcome(status, "too_large", why=f"body over {max_body_bytes} bytes")
    if not 200 <= status < 300:
        snippet = body[:SNIPPET_CHARS * 4].decode("utf-8", "replace")[:SNIPPET_CHARS]
        snippet = " ".join(snippet.split())
        return _Outcome(status, "http_5xx" if status >= 500 else "http_4xx", why=snippet)
    if status == 204 or not body.strip():
        return _Outcome(status, "", {})
    try:
        return _Outcome(status, "", json.loads(body.decode("utf-8")))
    except (ValueError, RecursionError):
        return _Outcome(status, "bad_json", why="response is not JSON")


class HttpExecutor(Protocol):
    async def execute(self, req: HttpRequest) -> HttpResult: ...

    async def close(self) -> None: ...


async def _run(req: HttpRequest, attempt_once, secrets: list[str], backoff_ms: int) -> HttpResult:
    """Attempts with backoff, then one HttpResult whose detail names no secret."""
    started = time.monotonic()
    attempts, out = 0, _Outcome(None, "connect")
    while attempts <= req.retries:
        attempts += 1
        out = await attempt_once()
        if not out.retryable or attempts > req.retries:
            break
        await asyncio.sleep(backoff_ms * attempts / 1000)
    elapsed_ms = round((time.monotonic() - started) * 1000)
    what = str(out.status) if out.status is not None else out.error
    if out.error in ("bad_json", "too_large"):
        what += f" {out.error}"
    detail = f"{req.method} {redact_url(req.url)} -> {what}" + (f": {out.why}" if out.why else "")
    for secret in secrets:
        detail = detail.replace(secret, "***")
    # The URL may hold a card number or a caller's PIN (a path template): masked here, at the source.
    detail = redact_live(detail)
    detail += f" ({elapsed_ms} ms, {attempts} attempt{'s' if attempts > 1 else ''})"
    log.debug("http %s", detail)   # the caller logs the result with its call id
    return HttpResult(not out.error, out.status, out.data if not out.error else None, out.error,
                      detail, elapsed_ms, attempts)


def _secrets_of(req: HttpRequest) -> list[str]:
    """Secret values in a request, to scrub from error text that might echo them."""
    values = [v.split(" ", 1)[-1] for (_, v), (_, r) in zip(req.headers, redact_headers(req.headers), strict=True)
              if r != v]
    try:
        parts = urlsplit(req.url)
        values += [parts.password or ""]
        values += [v for k, v in parse_qsl(parts.query) if _SECRET_NAME.search(k)]
    except ValueError:
        pass
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


# ---- the real client ------------------------------------------------------------------


class HttpClient:
    """One shared aiohttp session (created on first use); no cookies kept between callers."""

    def __init__(self, *, max_body_bytes: int = 1_000_000, allow_hosts: list[str] | None = None,
                 user_agent: str = "ivr/0.1", backoff_ms: int = BACKOFF_MS) -> None:
        self.max_body_bytes = max_body_bytes
        self.backoff_ms = backoff_ms
        self.allow_hosts = {h.lower() for h in allow_hosts} if allow_hosts is not None else None
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def execute(self, req: HttpRequest) -> HttpResult:
        secrets = _secrets_of(req)
        problem = validate_url(req.url) or self._host_problem(req.url)
        if problem:
            return await _run(req, _bad_url(problem), secrets, 0)
        body = json.dumps(req.json_body, ensure_ascii=False).encode() if req.json_body is not None else None
        headers = CIMultiDict({"Accept": "application/json"})
        if body is not None:
            headers["Content-Type"] = "application/json"
        headers.update(req.headers)   # the flow's headers win, whatever their case
        # Requote only what must be (unicode, stray chars) and keep the rest verbatim: yarl would
        # otherwise resolve an escaped "%2E%2E" path segment into "..". The host goes through IDNA.
        parts = urlsplit(req.url)
        rest = quote(urlunsplit(("", "", parts.path, parts.query, parts.fragment)), safe=_URL_SAFE)
        url = URL(str(URL(f"{parts.scheme}://{parts.netloc}")) + rest, encoded=True)

        async def attempt() -> _Outcome:
            return await self._attempt(req, url, headers, body)

        return await _run(req, attempt, secrets, self.backoff_ms)

    def _host_problem(self, url: str) -> str | None:
        if self.allow_hosts is None:
            return None
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if host in self.allow_hosts or f"{host}:{parts.port}" in self.allow_hosts:
            return None
        return f"host {host!r} is not in allow_hosts"

    async def _attempt(self, req: HttpRequest, url: URL, headers: CIMultiDict, body: bytes | None) -> _Outcome:
        method, timeout_ms = req.method, req.timeout_ms
        session = self._get_session()
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                # Redirects are not followed: they could carry credentials to another host.
                async with session.request(method, url, headers=headers, data=body, allow_redirects=False) as resp:
                    if (resp.content_length or 0) > self.max_body_bytes:
                        return _Outcome(resp.status, "too_large", why=f"Content-Length {resp.content_length}")
                    chunks, size = [], 0
                    async for chunk in resp.content.iter_chunked(65536):
                        chunks.append(chunk)
                        size += len(chunk)
                        if size > self.max_body_bytes:
                            break
                    if 300 <= resp.status < 400:
                        where = redact_url(resp.headers.get("Location", "?"))
                        return _Outcome(resp.status, "http_4xx", why=f"redirect to {where} not followed")
                    return _classify(resp.status, b"".join(chunks), self.max_body_bytes)
        except TimeoutError:
            return _Outcome(None, "timeout", why=f"no answer within {timeout_ms} ms")
        except aiohttp.InvalidURL as e:
            return _Outcome(None, "bad_url", why=f"invalid URL: {type(e).__name__}")
        except (aiohttp.ClientError, OSError) as e:
            return _Outcome(None, "connect", why=f"{type(e).__name__}: {e}"[:200])

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers={"User-Agent": self.user_agent},
                                                  cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _bad_url(problem: str):
    async def attempt() -> _Outcome:
        return _Outcome(None, "bad_url", why=problem)
    return attempt
