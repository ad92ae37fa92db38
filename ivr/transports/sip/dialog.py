"""A SIP dialog (RFC 3261 section 12): the state that in-dialog requests need, for both sides.

The two party headers are kept as the text that was on the wire (with tags), so the From/To
of our in-dialog requests are byte-for-byte what the peer established.
"""

import contextlib
import ipaddress
from dataclasses import dataclass, field

from ivr.transports.sip.message import Request, Response, SipMessage
from ivr.transports.sip.uri import SipSyntaxError, SipUri, parse_name_addr, parse_uri

Addr = tuple[str, int]


@dataclass(slots=True)
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_party: str              # our From in requests we send (with tag)
    remote_party: str             # their From as we use it in To (with tag)
    remote_target: SipUri         # their Contact
    fallback_addr: Addr           # where the dialog-creating message came from
    local_contact: str
    route_set: list[str] = field(default_factory=list)
    local_cseq: int = 0
    remote_cseq: int | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.call_id, self.local_tag, self.remote_tag

    @classmethod
    def as_uas(cls, invite: Request, addr: Addr, local_tag: str, local_contact: str) -> "Dialog":
        return cls(invite.call_id, local_tag, invite.from_.tag or "", f"{invite.raw('to')};tag={local_tag}",
                   invite.raw("from") or "", _contact_uri(invite, addr), addr, local_contact,
                   route_set=invite.get_all("record-route"), local_cseq=0, remote_cseq=invite.cseq[0])

    @classmethod
    def as_uac(cls, invite: Request, resp: Response, addr: Addr) -> "Dialog":
        return cls(invite.call_id, invite.from_.tag or "", resp.to.tag or "", invite.raw("from") or "",
                   resp.raw("to") or "", _contact_uri(resp, addr), addr, invite.raw("contact") or "",
                   route_set=list(reversed(resp.get_all("record-route"))), local_cseq=invite.cseq[0])

    def request(self, method: str, via: str, headers: list[tuple[str, str]] | tuple = (),
                body: bytes = b"", cseq: int | None = None) -> Request:
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        req = Request(method, str(self.remote_target))
        req.add("Via", via)
        req.add("Max-Forwards", "70")
        req.add("From", self.local_party)
        req.add("To", self.remote_party)
        req.add("Call-ID", self.call_id)
        req.add("CSeq", f"{cseq} {method}")
        for route in self.route_set:
            req.add("Route", route)
        if method in ("INVITE", "REFER", "SUBSCRIBE", "NOTIFY", "UPDATE"):
            req.add("Contact", self.local_contact)
        for name, value in headers:
            req.add(name, value)
        req.body = body
        return req

    def destination(self) -> Addr:
        target = self.remote_target
        if self.route_set:
            with contextlib.suppress(SipSyntaxError):
                target = parse_name_addr(self.route_set[0]).uri
        try:
            ipaddress.ip_address(target.host.strip("[]"))
        except ValueError:   # no DNS here: a name we cannot resolve means "where it came from"
            return self.fallback_addr
        return target.host.strip("[]"), target.port or 5060

    def accept_remote_cseq(self, req: SipMessage) -> bool:
        """In-dialog requests must come in CSeq order (RFC 3261 12.2.2); ACK and CANCEL reuse theirs."""
        number = req.cseq[0]
        if self.remote_cseq is not None and number <= self.remote_cseq:
            return False
        self.remote_cseq = number
        return True

    def update_target(self, msg: SipMessage, addr: Addr) -> None:
        if msg.get("contact"):
            self.remote_target = _contact_uri(msg, addr)


def _contact_uri(msg: SipMessage, addr: Addr) -> SipUri:
    try:
        return parse_name_addr(msg.get("contact") or "").uri
    except SipSyntaxError:
        return parse_uri(f"sip:{addr[0]}:{addr[1]}")
