"""HTTP digest authentication as SIP uses it (RFC 2617, RFC 3261 22.4; MD5, qop=auth).

Server side: nonces are self-validating (timestamp + HMAC under a per-process secret), so a
challenge costs no state; a nonce older than `nonce_ttl_s` is answered with `stale=true` and
the client retries without asking its user again. A response can only be reused for the same
method and Request-URI within the nonce's lifetime, and nonce counts must increase.
Client side: `authorization()` answers a challenge when dialling out.
"""

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from ivr.transports.sip.uri import SipSyntaxError, parse_params, split_outside_quotes


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def digest_response(*, user: str, realm: str, password: str, method: str, uri: str, nonce: str,
                    qop: str | None = None, nc: str = "", cnonce: str = "") -> str:
    ha1 = md5_hex(f"{user}:{realm}:{password}")
    ha2 = md5_hex(f"{method}:{uri}")
    if qop:
        return md5_hex(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return md5_hex(f"{ha1}:{nonce}:{ha2}")


def parse_digest(header: str) -> dict[str, str]:
    """`Digest a="x", b=y` -> {"a": "x", "b": "y"}."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipSyntaxError("not a Digest credential")
    params = parse_params(";".join(split_outside_quotes(rest, ",")))
    return {k: v for k, v in params.items() if v is not None}


@dataclass(frozen=True, slots=True)
class AuthResult:
    ok: bool
    user: str = ""
    stale: bool = False
    reason: str = ""


class DigestAuthenticator:
    def __init__(self, users: dict[str, str], realm: str = "ivr", nonce_ttl_s: float = 300.0) -> None:
        self.users, self.realm, self.nonce_ttl_s = users, realm, nonce_ttl_s
        self._secret = secrets.token_bytes(32)
        self._last_nc: dict[str, int] = {}   # nonce -> highest nonce count seen

    def challenge(self, stale: bool = False) -> str:
        return (f'Digest realm="{self.realm}", nonce="{self._nonce()}", algorithm=MD5, qop="auth"'
                + (", stale=true" if stale else ""))

    def _nonce(self, now: float | None = None) -> str:
        stamp = f"{int((now or time.time()) * 1000):x}"
        return f"{stamp}.{self._sign(stamp)}"

    def _sign(self, stamp: str) -> str:
        return hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]

    def _nonce_age_s(self, nonce: str) -> float | None:
        stamp, _, mac = nonce.partition(".")
        if not hmac.compare_digest(mac, self._sign(stamp)):
            return None
        try:
            return time.time() - int(stamp, 16) / 1000
        except ValueError:
            return None

    def verify(self, method: str, request_uri: str, authorization: str | None) -> AuthResult:
        if not authorization:
            return AuthResult(False, reason="no credentials")
        try:
            cred = parse_digest(authorization)
        except SipSyntaxError:
            return AuthResult(False, reason="malformed Authorization")
        user, nonce = cred.get("username", ""), cred.get("nonce", "")
        if cred.get("realm") != self.realm or cred.get("algorithm", "MD5").upper() != "MD5":
            return AuthResult(False, user, reason="wrong realm or algorithm")
        age_s = self._nonce_age_s(nonce)
        if age_s is None or age_s < -5:
            return AuthResult(False, user, reason="nonce not ours")
        if cred.get("uri") != request_uri:
            return AuthResult(False, user, reason="digest uri differs from the Request-URI")
        password = self.users.get(user)
        qop = cred.get("qop")
        if password is None or (qop not in (None, "auth")):
            return AuthResult(False, user, reason="unknown user or qop")
        expected = digest_response(user=user, realm=self.realm, password=password, method=method,
                                   uri=request_uri, nonce=nonce, qop=qop, nc=cred.get("nc", ""),
                                   cnonce=cred.get("cnonce", ""))
        if not hmac.compare_digest(expected, cred.get("response", "").lower()):
            return AuthResult(False, user, reason="wrong password")
        if age_s > self.nonce_ttl_s:
            return AuthResult(False, user, stale=True, reason="nonce expired")
        if qop:   # a replayed nonce count is a replayed request
            try:
                nc = int(cred.get("nc", ""), 16)
            except ValueError:
                return AuthResult(False, user, reason="bad nonce count")
            if nc <= self._last_nc.get(nonce, 0):
                return AuthResult(False, user, reason="nonce count reused")
            self._forget_old()
            self._last_nc[nonce] = nc
        return AuthResult(True, user)

    def _forget_old(self) -> None:
        if len(self._last_nc) > 4096:
            for nonce in [n for n in self._last_nc if (self._nonce_age_s(n) or 1e9) > self.nonce_ttl_s]:
                del self._last_nc[nonce]
            while len(self._last_nc) > 4096:
                del self._last_nc[next(iter(self._last_nc))]


def authorization(challenge: str, *, method: str, uri: str, user: str, password: str,
                  nc: int = 1, cnonce: str | None = None) -> str:
    """The Authorization (or Proxy-Authorization) value answering a WWW-/Proxy-Authenticate challenge."""
    params = parse_digest(challenge)
    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
    qop = "auth" if "auth" in qops else None
    cnonce = cnonce or secrets.token_hex(8)
    nc_text = f"{nc:08x}"
    response = digest_response(user=user, realm=realm, password=password, method=method, uri=uri,
                               nonce=nonce, qop=qop, nc=nc_text, cnonce=cnonce)
    value = (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
             f'response="{response}", algorithm=MD5')
    if qop:
        value += f', qop={qop}, nc={nc_text}, cnonce="{cnonce}"'
    if "opaque" in params:
        value += f', opaque="{params["opaque"]}"'
    return value
