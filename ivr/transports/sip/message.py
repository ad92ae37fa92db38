"""SIP messages (RFC 3261 sections 7, 18.3, 20): parse a datagram, build and serialize replies.

`parse_message` never raises anything but `SipParseError`. The error carries what could be
read (`error.message`) so the server can still answer 400 when Via, From, To, Call-ID and
CSeq are there; `error.status` is the code to answer with. Header values are kept as the
peer wrote them (names too); lookups accept any spelling and the compact forms.
"""

import re
import secrets

from ivr.transports.sip.uri import (
    NameAddr,
    SipSyntaxError,
    Via,
    parse_name_addr,
    parse_uri,
    parse_via,
    split_outside_quotes,
)

SIP_VERSION = "SIP/2.0"
BRANCH_COOKIE = "z9hG4bK"

COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length",
           "c": "content-type", "k": "supported", "s": "subject", "e": "content-encoding", "o": "event",
           "r": "refer-to", "b": "referred-by", "u": "allow-events", "a": "accept-contact", "x": "session-expires"}
# Headers whose value is a comma-separated list (RFC 3261 7.3.1); the others are never split.
MULTI_VALUE = {"via", "route", "record-route", "contact", "allow", "supported", "require", "proxy-require",
               "unsupported", "accept", "accept-encoding", "accept-language", "allow-events",
               "content-encoding", "in-reply-to"}
REASONS = {100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK", 202: "Accepted",
           400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 407: "Proxy Authentication Required", 408: "Request Timeout",
           415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
           480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist", 486: "Busy Here",
           487: "Request Terminated", 488: "Not Acceptable Here", 491: "Request Pending",
           500: "Server Internal Error", 501: "Not Implemented", 503: "Service Unavailable",
           505: "Version Not Supported", 603: "Decline"}
_TOKEN_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
# Methods of SIP and its extensions; a request with another one gets 501 (RFC 3261 8.2.1).
SIP_METHODS = {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "SUBSCRIBE", "NOTIFY", "PUBLISH",
               "MESSAGE", "INFO", "PRACK", "UPDATE", "REFER"}
MISMATCH = "CSeq method does not match the request"


class SipParseError(ValueError):
    def __init__(self, reason: str, message: "SipMessage | None" = None, status: int = 400) -> None:
        super().__init__(reason)
        self.reason, self.message, self.status = reason, message, status


def header_key(name: str) -> str:
    name = name.strip().lower()
    return COMPACT.get(name, name)


class SipMessage:
    def __init__(self, headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> None:
        self.headers: list[tuple[str, str]] = headers or []
        self.body = body

    # ---- header access -------------------------------------------------------------

    def raw_all(self, name: str) -> list[str]:
        """Values of every line of this header, unsplit."""
        key = header_key(name)
        return [v for n, v in self.headers if header_key(n) == key]

    def raw(self, name: str) -> str | None:
        values = self.raw_all(name)
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        """Every value, with comma lists split for the list-valued headers."""
        values = self.raw_all(name)
        if header_key(name) not in MULTI_VALUE:
            return values
        return [p.strip() for v in values for p in split_outside_quotes(v, ",") if p.strip()]

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.get_all(name)
        return values[0] if values else default

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        if first:
            self.headers.insert(0, (name, value))
        else:
            self.headers.append((name, value))

    def set(self, name: str, value: str) -> None:
        self.remove(name)
        self.add(name, value)

    def remove(self, name: str) -> None:
        key = header_key(name)
        self.headers = [(n, v) for n, v in self.headers if header_key(n) != key]

    # ---- typed views (raise SipSyntaxError / ValueError on bad values) -------------

    @property
    def call_id(self) -> str:
        return self.get("call-id") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = (self.get("cseq") or "").strip().partition(" ")
        return int(number), method.strip()

    @property
    def from_(self) -> NameAddr:
        return parse_name_addr(self.get("from") or "")

    @property
    def to(self) -> NameAddr:
        return parse_name_addr(self.get("to") or "")

    @property
    def top_via(self) -> Via:
        return parse_via(self.get("via") or "")

    def replace_top_via(self, via: str) -> None:
        for i, (name, value) in enumerate(self.headers):
            if header_key(name) == "via":
                rest = split_outside_quotes(value, ",")[1:]
                self.headers[i] = (name, ",".join([via, *rest]))
                return

    # ---- serialization -------------------------------------------------------------

    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        lines = [self.start_line()]
        lines += [f"{n}: {v}" for n, v in self.headers if header_key(n) != "content-length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + self.body


class Request(SipMessage):
    def __init__(self, method: str, uri: str, headers: list[tuple[str, str]] | None = None,
                 body: bytes = b"", version: str = SIP_VERSION) -> None:
        super().__init__(headers, body)
        self.method, self.uri, self.version = method, uri, version

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} call-id={self.call_id!r}>"


class Response(SipMessage):
    def __init__(self, status: int, reason: str = "", headers: list[tuple[str, str]] | None = None,
                 body: bytes = b"") -> None:
        super().__init__(headers, body)
        self.status, self.reason = status, reason or REASONS.get(status, "")

    def start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} call-id={self.call_id!r}>"


# ---- parsing ----------------------------------------------------------------------


def parse_message(data: bytes) -> Request | Response:
    data = data.lstrip(b"\r\n")   # CRLFs before the start line are ignored (RFC 3261 7.5)
    if not data:
        raise SipParseError("empty datagram")
    ends = [(i, n) for i, n in ((data.find(b"\r\n\r\n"), 4), (data.find(b"\n\n"), 2)) if i >= 0]
    cut, sep = min(ends) if ends else (len(data), 0)
    head, body = data[:cut].decode("utf-8", "surrogateescape"), data[cut + sep :]
    lines = [line.rstrip("\r") for line in head.split("\n")]
    msg, start_error = _start_line(lines[0])
    errors: list[str] = [start_error] if start_error else []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):    # folded continuation line
            if msg.headers:
                name, value = msg.headers[-1]
                msg.headers[-1] = (name, f"{value} {line.strip()}".strip())
            else:
                errors.append("continuation line before any header")
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _TOKEN_RE.match(name):
            errors.append(f"malformed header line {line[:40]!r}")
            continue
        msg.headers.append((name, value.strip()))
    length = msg.get("content-length")
    if length is not None:
        if not length.isdigit():
            errors.append("bad Content-Length")
        elif int(length) > len(body):
            errors.append("Content-Length larger than the datagram body")
        else:
            body = body[: int(length)]
    msg.body = body
    if isinstance(msg, Request):
        if not start_error and msg.version.upper() != SIP_VERSION:
            raise SipParseError(f"version {msg.version[:20]!r}", msg, status=505)
        errors += _request_errors(msg)
        if errors == [MISMATCH] and msg.method not in SIP_METHODS:   # RFC 4475 3.1.2.18: the method decides
            raise SipParseError(f"method {msg.method[:40]!r} not implemented", msg, status=501)
    else:
        errors += _response_errors(msg)
    if errors:
        raise SipParseError(errors[0], msg)
    return msg


def _start_line(line: str) -> tuple[Request | Response, str | None]:
    """The message the start line begins, and what is wrong with the line (if anything).

    A malformed request line that still names a method keeps the message, so the request
    can get its 400 (RFC 4475 3.1.2.7-3.1.2.9); anything else is not worth an answer."""
    line = line.rstrip(" \t")
    if line[:4].upper() == "SIP/":
        parts = line.split(" ", 2)
        if len(parts) < 2 or parts[0].upper() != SIP_VERSION or not re.fullmatch(r"[1-6]\d\d", parts[1]):
            raise SipParseError(f"bad status line {line[:60]!r}")
        return Response(int(parts[1]), parts[2] if len(parts) == 3 else ""), None
    parts = line.split(" ")
    if not _TOKEN_RE.match(parts[0]) or len(parts) < 3 or not parts[-1].upper().startswith("SIP/"):
        raise SipParseError(f"bad request line {line[:60]!r}")
    request = Request(parts[0], " ".join(p for p in parts[1:-1] if p), version=parts[-1])
    if len(parts) != 3 or not all(parts):
        return request, f"bad request line {line[:60]!r}"
    return request, None


SINGLE_VALUE = ("from", "to", "call-id", "cseq", "max-forwards", "content-length", "content-type")


def _common_errors(msg: SipMessage) -> list[str]:
    errors = []
    for name in ("via", "from", "to", "call-id", "cseq"):
        if not msg.get(name):
            errors.append(f"missing {name}")
    for name in SINGLE_VALUE:
        if len(msg.raw_all(name)) > 1:
            errors.append(f"more than one {name}")
    if errors:
        return errors
    try:
        for value in msg.raw_all("via"):   # no empty Via elements; the top one strictly (RFC 4475 3.1.2.1)
            if any(not via.strip() for via in split_outside_quotes(value, ",")):
                raise SipSyntaxError(f"empty Via element in {value[:60]!r}")
        if parse_via(msg.get("via") or "", strict=True).version != "2.0":
            raise SipSyntaxError(f"Via of another SIP version: {msg.get('via', '')[:60]!r}")
        msg.from_  # noqa: B018 -- parsed for validation
        msg.to  # noqa: B018
    except SipSyntaxError as exc:
        errors.append(str(exc))
    try:
        number, method = msg.cseq
        if not 0 <= number < 2**31 or not _TOKEN_RE.match(method):
            raise ValueError
    except ValueError:
        errors.append("bad CSeq")
    return errors


def _request_errors(req: Request) -> list[str]:
    errors = _common_errors(req)
    try:
        parse_uri(req.uri)
    except SipSyntaxError as exc:
        errors.append(f"bad Request-URI: {exc}")
    try:
        for contact in req.get_all("contact"):
            if contact != "*":
                parse_name_addr(contact, strict=True)
    except SipSyntaxError as exc:
        errors.append(f"bad Contact: {exc}")
    if not errors and req.cseq[1] != req.method:
        errors.append(MISMATCH)
    forwards = req.get("max-forwards")
    if forwards is not None and not (forwards.isdigit() and int(forwards) <= 255):
        errors.append("bad Max-Forwards")
    return errors


def _response_errors(resp: Response) -> list[str]:
    return _common_errors(resp)


def can_reply(msg: SipMessage | None) -> bool:
    """Enough of a request to send a response back along its Via: a Via and a CSeq. From, To and
    Call-ID are copied when there (a request without them gets its 400, RFC 4475 3.3.1)."""
    if not isinstance(msg, Request) or msg.method == "ACK":
        return False
    if not msg.get("cseq"):
        return False
    try:
        msg.top_via  # noqa: B018
    except SipSyntaxError:
        return False
    return True


# ---- building ---------------------------------------------------------------------


def make_response(req: Request, status: int, reason: str = "", *, to_tag: str | None = None,
                  headers: list[tuple[str, str]] | tuple = (), body: bytes = b"") -> Response:
    resp = Response(status, reason)
    for via in req.raw_all("via"):
        resp.add("Via", via)
    to = req.raw("to") or ""
    if to_tag and status != 100:
        try:
            has_tag = parse_name_addr(to).tag is not None
        except SipSyntaxError:
            has_tag = True
        if not has_tag:
            to = f"{to};tag={to_tag}"
    for name, value in (("From", req.raw("from")), ("To", to), ("Call-ID", req.raw("call-id")),
                        ("CSeq", req.raw("cseq"))):
        if value:   # a header the request lacked is not made up (RFC 4475 3.3.1)
            resp.add(name, value)
    for name, value in headers:
        resp.add(name, value)
    resp.body = body
    return resp


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return BRANCH_COOKIE + secrets.token_hex(10)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(12)}@{host}"
