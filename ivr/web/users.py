"""The users of the service's web pages: a JSON file of names, roles and scrypt password hashes.

    {"version": 1, "users": {"alice": {"role": "admin", "password": "scrypt$16384$8$5$<salt>$<hash>",
                                       "changed_s": 1764290000.0}}}

Passwords are hashed with `hashlib.scrypt` (stdlib, memory-hard; no native dependency to
build, unlike argon2-cffi), with a random 16-byte salt and the cost parameters stored beside
each hash so they can be raised later without breaking old entries. Default cost: N=2^14,
r=8, p=5 (16 MiB, one of OWASP's scrypt settings, ~0.5 s per check on a busy 2-core machine). The file is
written atomically (temporary file, fsync, rename) with mode 0600; `ivr users` manages it
and the service re-reads it when it changes, so a password change or removal takes effect
on the next request (sessions opened before a password change end).
"""

import base64
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ivr.errors import UserError

log = logging.getLogger("ivr.web")

ROLES = ("agent", "supervisor", "admin")   # each includes the ones before it
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 5
MIN_PASSWORD, MAX_PASSWORD = 8, 1024
MAX_NAME = 64


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    password: str        # "scrypt$N$r$p$salt$hash" (base64)
    changed_s: float     # when the password was last set (sessions older than it end)
    sip: str = ""        # an agent's phone: "sip:alice@127.0.0.1:5070" (ivr/agents dials it)


def role_at_least(role: str, needed: str) -> bool:
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def hash_password(password: str, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, n, r, p)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of a password against a stored hash; False for a malformed entry."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int = 32) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen,
                          maxmem=256 * n * r + 1024 * 1024)


def check_name(name: str) -> str:
    if not name or len(name) > MAX_NAME or name != name.strip() or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UserError(f"bad user name {name[:80]!r}",
                        f"1 to {MAX_NAME} characters, no control characters or surrounding spaces")
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UserError(f"a password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def check_sip(address: str) -> str:
    """An agent's phone: a sip: URI with a host ("sip:alice@127.0.0.1:5070")."""
    from ivr.transports.sip.uri import parse_uri

    try:
        uri = parse_uri(address)
    except ValueError as exc:
        raise UserError(f"bad SIP address {address[:80]!r}: {exc}", "write it like sip:alice@127.0.0.1:5070") from exc
    if uri.scheme not in ("sip", "sips") or not uri.host:
        raise UserError(f"bad SIP address {address[:80]!r}", "write it like sip:alice@127.0.0.1:5070")
    return address


class UserStore:
    """The users file. The service reads it (and re-reads it when its mtime changes)."""

    def __init__(self, path: Path, cost: tuple[int, int, int] = (SCRYPT_N, SCRYPT_R, SCRYPT_P)) -> None:
        self.path = Path(path)
        self.cost = cost            # scrypt (N, r, p) for passwords set from now on
        self._users: dict[str, User] = {}
        self._stamp: tuple | None = None
        self._dummy: str | None = None

    def users(self) -> dict[str, User]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._users, self._stamp = {}, None
            return {}
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            if st.st_mode & 0o077:
                log.warning("users file %s is readable by others (mode %o): chmod 600 it", self.path,
                            st.st_mode & 0o777)
            try:
                self._users = self.read()
            except UserError as exc:   # refuse everyone rather than fail every request
                log.error("%s; nobody can log in until it is fixed", exc)
                self._users = {}
            self._stamp = stamp
        return self._users

    def get(self, name: str) -> User | None:
        return self.users().get(name)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if the password is right (slow on purpose: run it in a thread)."""
        user = self.get(name)
        if user is None and self._dummy is None:
            # an unknown name costs as much as a known one: no user enumeration by timing
            self._dummy = hash_password(secrets.token_urlsafe(16), *self.cost)
        ok = verify_password(password, user.password if user else self._dummy)
        return user if ok and user else None

    def read(self) -> dict[str, User]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            entries = data["users"]
            return {str(k): User(str(k), str(v["role"]), str(v["password"]), float(v.get("changed_s", 0)),
                                 str(v.get("sip") or ""))
                    for k, v in entries.items()}
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"{self.path}: not a users file ({type(exc).__name__}: {exc})",
                            "it is written by `ivr users add`; restore it from a backup or start a new one") from exc

    # ---- changes (the `ivr users` command) -------------------------------------------

    @contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(self.path) + ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def set_user(self, name: str, role: str | None, password: str | None, *, must_exist: bool,
                 must_not_exist: bool = False, sip: str | None = None) -> User:
        """`sip`: None keeps the agent's phone address, "" removes it."""
        check_name(name)
        if sip:
            check_sip(sip)
        if role is not None and role not in ROLES:
            raise UserError(f"unknown role {role!r}", "roles: " + ", ".join(ROLES))
        with self._locked():
            users = self.read()
            old = users.get(name)
            if must_exist and old is None:
                raise UserError(f"no user {name!r} in {self.path}", "add one with `ivr users add NAME --role ROLE`")
            if must_not_exist and old is not None:
                raise UserError(f"user {name!r} exists already", "change the password with `ivr users passwd NAME`")
            hashed = hash_password(check_password(password), *self.cost) if password is not None else old.password
            user = User(name, role or old.role, hashed, time.time() if password is not None else old.changed_s,
                        sip if sip is not None else (old.sip if old else ""))
            users[name] = user
            self._write(users)
        return user

    def remove(self, name: str) -> None:
        with self._locked():
            users = self.read()
            if users.pop(name, None) is None:
                raise UserError(f"no user {name!r} in {self.path}")
            self._write(users)

    def _write(self, users: dict[str, User]) -> None:
        data = {"version": 1, "users": {u.name: {"role": u.role, "password": u.password, "changed_s": u.changed_s,
                                                 **({"sip": u.sip} if u.sip else {})}
                                        for u in users.values()}}
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1, ensure_ascii=False)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
