"""SIP URIs, name-addr values and Via values (RFC 3261 sections 19.1, 20.10, 20.42, 25.1).

Parsing is strict about structure (a bad port or host is an error the caller turns into a
400) and lenient about spacing. Received header values are never re-serialized from these
objects: responses copy the raw text, so what a peer sent is what it gets back.
"""

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote


class SipSyntaxError(ValueError):
    """A header value or URI that does not follow the grammar."""


_HOST_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.?$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_USER_SAFE = "!*'()&=+$,;?/"   # user-unreserved and marks stay literal (RFC 3261 25.1)
_OPAQUE_RE = re.compile(r"^[^\s<>\"]+$")   # an absoluteURI of another scheme: no spaces, <, > or quotes


def _unquoted(text: str):
    """(index, char) for every character outside double-quoted strings (quotes excluded)."""
    in_quotes, escaped = False, False
    for i, ch in enumerate(text):
        if in_quotes:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
        else:
            yield i, ch


def split_outside_quotes(text: str, sep: str) -> list[str]:
    """Split on `sep` where it is outside double quotes and angle brackets."""
    parts: list[str] = []
    start, depth = 0, 0
    for i, ch in _unquoted(text):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def unquote_string(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_params(text: str, *, strict: bool = False) -> dict[str, str | None]:
    """`;a=1;b;c="x y"` -> {"a": "1", "b": None, "c": "x y"}; names lower-cased.

    `strict`: an empty parameter (`;;`, a trailing `;`) is an error, as the grammar has it
    (RFC 4475 3.1.2.1); otherwise it is skipped."""
    params: dict[str, str | None] = {}
    parts = split_outside_quotes(text, ";")
    for i, part in enumerate(parts):
        part = part.strip()
        if not part:
            if strict and i > 0:
                raise SipSyntaxError(f"empty parameter in {text[:60]!r}")
            continue
        name, eq, value = part.partition("=")
        name = name.strip().lower()
        if not _TOKEN_RE.match(name):
            raise SipSyntaxError(f"bad parameter name {name[:40]!r}")
        params[name] = unquote_string(value) if eq else None
    return params


def format_params(params: dict[str, str | None]) -> str:
    out = []
    for name, value in params.items():
        if value is None:
            out.append(f";{name}")
        elif value == "" or _TOKEN_RE.match(value) or _is_host(value):
            out.append(f";{name}={value}")
        else:
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f';{name}="{escaped}"')
    return "".join(out)


def _is_host(text: str) -> bool:
    if text.startswith("[") and text.endswith("]"):
        try:
            ipaddress.IPv6Address(text[1:-1])
            return True
        except ValueError:
            return False
    return bool(_HOST_RE.match(text))


def parse_hostport(text: str) -> tuple[str, int | None]:
    text = re.sub(r"\s+", "", text)
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[: end + 1], text[end + 1 :]
    else:
        host, colon, port_text = text.partition(":")
        rest = f":{port_text}" if colon else ""
    if not host or not _is_host(host):
        raise SipSyntaxError(f"bad host {text[:60]!r}")
    if not rest:
        return host, None
    if not rest.startswith(":") or not rest[1:].isdigit() or not 0 < int(rest[1:]) < 65536:
        raise SipSyntaxError(f"bad port in {text[:60]!r}")
    return host, int(rest[1:])


@dataclass(slots=True)
class SipUri:
    scheme: str = "sip"
    user: str = ""                      # unescaped
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)   # `?X-A=1` headers, unescaped values
    password: str | None = None

    def __str__(self) -> str:
        if self.scheme not in ("sip", "sips"):
            return f"{self.scheme}:{self.user}{format_params(self.params)}"
        userinfo = quote(self.user, safe=_USER_SAFE) if self.user else ""
        if self.password is not None:
            userinfo += ":" + quote(self.password, safe="&=+$,")
        text = f"{self.scheme}:{userinfo + '@' if userinfo else ''}{self.host}"
        if self.port is not None:
            text += f":{self.port}"
        text += format_params(self.params)
        if self.headers:
            text += "?" + "&".join(f"{quote(k, safe='-')}={quote(v, safe='')}" for k, v in self.headers.items())
        return text

    def without_headers(self) -> "SipUri":
        return SipUri(self.scheme, self.user, self.host, self.port, dict(self.params), {}, self.password)


def parse_uri(text: str) -> SipUri:
    text = text.strip()
    scheme, colon, rest = text.partition(":")
    scheme = scheme.lower()
    if not colon or not re.match(r"^[a-z][a-z0-9+\-.]*$", scheme):
        raise SipSyntaxError(f"bad URI {text[:60]!r}")
    if scheme == "tel":
        number, _, params = rest.partition(";")
        return SipUri(scheme, unquote(number), params=parse_params(params) if params else {})
    if scheme not in ("sip", "sips"):   # absoluteURI (RFC 3261 25.1): kept opaque, the server answers 416
        if not rest or not _OPAQUE_RE.match(rest):
            raise SipSyntaxError(f"bad URI {text[:60]!r}")
        return SipUri(scheme, rest)
    # The user part may hold "?", ";", "/" and "," (user-unreserved, RFC 3261 25.1; RFC 4475 3.1.1.2)
    # while host, parameters and (escaped) headers never hold "@": the last "@" ends the user part.
    at = rest.rfind("@")
    userinfo, after = (rest[:at], rest[at + 1 :]) if at >= 0 else ("", rest)
    if at >= 0 and not userinfo:
        raise SipSyntaxError(f"empty user in {text[:60]!r}")
    hostpart, _, header_text = after.partition("?")
    user, pw_colon, password = userinfo.partition(":")
    hostport, _, param_text = hostpart.partition(";")
    host, port = parse_hostport(hostport)
    headers: dict[str, str] = {}
    for pair in header_text.split("&") if header_text else ():
        name, _, value = pair.partition("=")
        if name:
            headers[unquote(name)] = unquote(value)
    return SipUri(scheme, unquote(user), host.lower(), port, parse_params(param_text), headers,
                  unquote(password) if pw_colon else None)


@dataclass(slots=True)
class NameAddr:
    """From/To/Contact/Refer-To value: optional display name, URI, header parameters."""

    uri: SipUri
    display: str = ""
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        display = f'"{self.display}" ' if self.display else ""
        return f"{display}<{self.uri}>{format_params(self.params)}"


def parse_name_addr(text: str, *, strict: bool = False) -> NameAddr:
    """`strict`: empty header parameters (`;;`) are errors (see `parse_params`)."""
    text = text.strip()
    lt = _find_outside_quotes(text, "<")
    if lt >= 0:
        gt = text.find(">", lt)
        if gt < 0:
            raise SipSyntaxError("unclosed <")
        display = unquote_string(text[:lt])
        return NameAddr(parse_uri(text[lt + 1 : gt]), display, parse_params(text[gt + 1 :], strict=strict))
    # addr-spec form: everything after the first ';' belongs to the header, not the URI
    uri_text, semi, params = text.partition(";")
    if "?" in uri_text or "," in uri_text:
        raise SipSyntaxError("addr-spec with ? or , must be in <>")
    return NameAddr(parse_uri(uri_text), "", parse_params(semi + params, strict=strict))


def _find_outside_quotes(text: str, target: str) -> int:
    return next((i for i, ch in _unquoted(text) if ch == target), -1)


@dataclass(slots=True)
class Via:
    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    version: str = "2.0"         # another version is read (to answer 505 along it), never accepted

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> str:
        return f"{self.host}:{self.port or 5060}"

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/{self.version}/{self.transport} {self.host}{port}{format_params(self.params)}"


_VIA_RE = re.compile(r"^\s*SIP\s*/\s*(\d{1,3}\.\d{1,3})\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+(.*)$", re.S | re.I)


def parse_via(text: str, *, strict: bool = False) -> Via:
    """One Via value. Lenient (`strict` False) is for answering along it; the parser checks every
    Via strictly (empty parameters are errors) before a request is accepted."""
    m = _VIA_RE.match(text)
    if not m:
        raise SipSyntaxError(f"bad Via {text[:60]!r}")
    sent_by, semi, params = m.group(3).partition(";")
    host, port = parse_hostport(sent_by)
    return Via(m.group(2).upper(), host.lower(), port, parse_params(semi + params, strict=strict), m.group(1))
