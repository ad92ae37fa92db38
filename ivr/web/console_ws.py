"""The agent console's WebSocket: what the browser may send, checked before anything acts on it.

Every message from the browser is one JSON object of at most `MAX_MESSAGE_BYTES`, whose
`type` names an entry of `MESSAGES`; its other keys must be exactly the fields listed there
(no unknown key), each of the stated kind and length, and the user's role must reach the
message's role. The first message must be `hello` carrying the page's per-session token (the
session's CSRF token, rendered into the page): a page of another origin that somehow opened
the socket with the cookie still cannot act. Anything else is answered with
`{"type": "error", "error": ...}` and ignored; the connection stays up (a buggy page gets told,
not dropped), except that `MAX_ERRORS` bad messages close it.

A fixed table checked by a few lines rather than jsonschema (a dev-only dependency here): the
messages are flat, and the errors say exactly which field is wrong.
"""

import json
from dataclasses import dataclass

MAX_MESSAGE_BYTES = 16_384
MAX_ERRORS = 20
STATUSES = ("available", "away")     # what an agent may set; on_call and wrap_up are the service's


@dataclass(frozen=True, slots=True)
class Field:
    kind: type = str
    min_len: int = 0
    max_len: int = 200
    choices: tuple = ()
    required: bool = True


ID = Field(str, 1, 100)
MESSAGES: dict[str, tuple[str, dict[str, Field]]] = {
    # type: (role needed, fields)
    "hello": ("agent", {"token": Field(str, 16, 128),
                        "page": Field(str, 1, 20, ("agent", "supervisor"), required=False)}),
    "status": ("agent", {"status": Field(str, 1, 20, STATUSES)}),
    "take_callback": ("agent", {"id": ID}),
    "finish_callback": ("agent", {"id": ID, "result": Field(str, 1, 10, ("done", "failed"))}),
    "notes": ("agent", {"call_id": ID, "text": Field(str, 0, 4000)}),
    "disposition": ("agent", {"call_id": ID, "disposition": Field(str, 1, 60),
                              "notes": Field(str, 0, 4000, required=False)}),
    "ping": ("agent", {"seq": Field(int, required=False)}),
}


class BadMessage(Exception):
    """A message refused: `str(exc)` is what the browser is told."""


def parse(raw: str | bytes, role_ok) -> dict:
    """The browser's message as a dict, or BadMessage saying why not. `role_ok(role)` says
    whether the connection's user has at least that role."""
    if isinstance(raw, bytes):
        raise BadMessage("binary messages are not taken: send JSON text")
    if len(raw.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES:
        raise BadMessage(f"message too long (at most {MAX_MESSAGE_BYTES} bytes)")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadMessage("not JSON") from None
    if not isinstance(data, dict):
        raise BadMessage("a message is a JSON object with a type")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in MESSAGES:
        raise BadMessage(f"unknown message type {str(kind)[:40]!r}")
    role, fields = MESSAGES[kind]
    if not role_ok(role):
        raise BadMessage(f"{kind}: needs the {role} role")
    extra = set(data) - set(fields) - {"type"}
    if extra:
        raise BadMessage(f"{kind}: unknown field {sorted(extra)[0][:40]!r}")
    for name, spec in fields.items():
        if name not in data:
            if spec.required:
                raise BadMessage(f"{kind}: missing field {name!r}")
            continue
        _check(kind, name, data[name], spec)
    return data


def _check(kind: str, name: str, value, spec: Field) -> None:
    if spec.kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2 ** 53:
            raise BadMessage(f"{kind}: {name} must be a whole number")
        return
    if not isinstance(value, str):
        raise BadMessage(f"{kind}: {name} must be text")
    if not spec.min_len <= len(value) <= spec.max_len:
        raise BadMessage(f"{kind}: {name} must be {spec.min_len}-{spec.max_len} characters")
    if spec.choices and value not in spec.choices:
        raise BadMessage(f"{kind}: {name} must be one of {', '.join(spec.choices)}")
    if any(ord(c) < 32 and c not in "\n\t" for c in value) or "\x7f" in value:
        raise BadMessage(f"{kind}: {name} holds control characters")


def dumps(message: dict) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=str)
