"""Where SIP messages go and which transaction they belong to (RFC 3261 17.1.1.3, 17.2.3,
18.2.2; RFC 3581 rport): pure functions of a message and the address it came from."""

from ivr.transports.sip.message import BRANCH_COOKIE, Request, Response
from ivr.transports.sip.uri import Via

Addr = tuple[str, int]


def printable(text: str, limit: int = 120) -> str:
    """Peer-controlled text made safe for one log line."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text[:limit])


def txn_key(req: Request) -> tuple:
    """Server transaction key (RFC 3261 17.2.3); ACK and CANCEL find their INVITE by method INVITE.

    Call-ID and CSeq number are part of it too: they are the same in every retransmission, ACK
    and CANCEL, and a peer that reuses a branch for another request (RFC 4475 3.3.3 and 3.3.13
    do) then gets an answer instead of the other request's response re-sent."""
    via = req.top_via
    method = "INVITE" if req.method == "ACK" else req.method
    if via.branch and via.branch.startswith(BRANCH_COOKIE):
        return via.branch, via.sent_by, req.call_id, req.cseq[0], method
    return "legacy", req.call_id, req.cseq[0], str(req.from_.tag), via.sent_by, method


def fix_via(req: Request, addr: Addr) -> None:
    """Record where the request really came from in its top Via: received, rport (RFC 3581)."""
    via = req.top_via
    if via.host != addr[0]:
        via.params["received"] = addr[0]
    if "rport" in via.params:
        via.params["rport"] = str(addr[1])
        via.params["received"] = addr[0]
    req.replace_top_via(str(via))


def response_addr(via: Via) -> Addr:
    host = via.params.get("received") or via.host
    rport = via.params.get("rport")
    port = int(rport) if rport and rport.isdigit() else (via.port or 5060)
    return host.strip("[]"), port


def non_2xx_ack(invite: Request, resp: Response) -> Request:
    ack = Request("ACK", invite.uri)
    ack.add("Via", invite.raw_all("via")[0].split(",")[0])
    ack.add("Max-Forwards", "70")
    ack.add("From", invite.raw("from") or "")
    ack.add("To", resp.raw("to") or "")
    ack.add("Call-ID", invite.call_id)
    ack.add("CSeq", f"{invite.cseq[0]} ACK")
    for route in invite.raw_all("route"):
        ack.add("Route", route)
    return ack
