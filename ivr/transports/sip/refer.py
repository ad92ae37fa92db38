"""Blind transfer with REFER (RFC 3515, NOTIFY bodies as message/sipfrag per RFC 3420).

The call context travels to the agent side in two headers: `X-IVR-Context` (compact JSON)
and `X-IVR-Reason`, each URL-escaped on the wire so any text fits a header line. Decode with
`json.loads(urllib.parse.unquote(value))`. For REFER they are embedded as headers of the
Refer-To URI (`<sip:agents@host?X-IVR-Context=...>`, escaped once more there, as URI
headers are), so the transferee's INVITE to the agent line carries them.
"""

import asyncio
import json
import re
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from ivr.transports.base import TransferFailed
from ivr.transports.sip.uri import SipSyntaxError, SipUri, parse_uri

if TYPE_CHECKING:
    from ivr.transports.sip.session import SipCall

CONTEXT_HEADER, REASON_HEADER = "X-IVR-Context", "X-IVR-Reason"
MAX_CONTEXT_CHARS = 1024   # escaped; a REFER must still fit one UDP datagram


def context_headers(reason: str, context: dict) -> list[tuple[str, str]]:
    data = dict(context)
    value = quote(json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str), safe="")
    while len(value) > MAX_CONTEXT_CHARS and data:   # drop the bulkiest entries first
        data.pop(max(data, key=lambda k: len(json.dumps(data[k], default=str))))
        data["_truncated"] = True
        value = quote(json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str), safe="")
    return [(CONTEXT_HEADER, value), (REASON_HEADER, quote(reason[:200], safe=""))]


def decode_context(value: str) -> dict:
    return json.loads(unquote(value))


def target_uri(target: str, call: "SipCall") -> SipUri:
    """The agent line as a URI; a bare number goes to the peer the call came from."""
    text = target.strip()
    try:
        if text.lower().startswith(("sip:", "sips:")):
            return parse_uri(text)
        number = text[4:] if text.lower().startswith("tel:") else text
        host, port = call.dialog.fallback_addr
        return parse_uri(f"sip:{quote(number, safe='+')}@{host}:{port}")
    except SipSyntaxError as exc:
        raise TransferFailed(f"transfer target {target!r} is not a SIP URI or number: {exc}") from exc


def sipfrag_status(body: bytes) -> int | None:
    m = re.match(rb"\s*SIP/2\.0\s+(\d{3})", body)
    return int(m.group(1)) if m else None


async def refer_transfer(call: "SipCall", target: str, reason: str, context: dict) -> None:
    ep, server = call.ep, call.server
    uri = target_uri(target, call)
    refer_to = SipUri(uri.scheme, uri.user, uri.host, uri.port, dict(uri.params),
                      {**uri.headers, **dict(context_headers(reason, context))})
    call.refer_queue = asyncio.Queue()
    refer = call.dialog.request("REFER", ep.new_via(), [("Refer-To", f"<{refer_to}>"),
                                                        ("Referred-By", f"<{server.local_uri}>"),
                                                        ("User-Agent", server.user_agent)])
    try:
        sending = asyncio.ensure_future(ep.request(refer, call.dialog.destination()))
        caller_gone = asyncio.ensure_future(call.ended.wait())
        try:
            await asyncio.wait({sending, caller_gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            caller_gone.cancel()
        if not sending.done():   # the caller hung up while we asked: nothing left to transfer
            sending.cancel()
            return
        try:
            resp = sending.result()
        except TimeoutError as exc:
            raise TransferFailed("no answer to REFER") from exc
        if resp.status >= 300:
            raise TransferFailed(f"REFER refused: {resp.status} {resp.reason}")
        call.log.info("REFER to %s accepted (%d); waiting for the outcome", uri.without_headers(), resp.status)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + server.transfer_timeout_s
        while True:
            try:
                notify = await asyncio.wait_for(call.refer_queue.get(), max(0.0, deadline - loop.time()))
            except TimeoutError as exc:
                raise TransferFailed(f"no final NOTIFY within {server.transfer_timeout_s:.0f} s") from exc
            if notify is None:   # the transferee hung up on us: the usual end of a blind transfer
                call.log.info("caller left the call during the transfer")
                return
            status = sipfrag_status(notify.body)
            terminated = (notify.get("subscription-state") or "").strip().lower().startswith("terminated")
            if status is None or status < 200:
                if terminated and status is None:
                    raise TransferFailed("transfer subscription ended without a final status")
                continue
            if status >= 300:
                raise TransferFailed(f"the agent line answered the transferee {status}")
            call.log.info("transfer completed (%d); leaving the call", status)
            await call.hangup("transferred")
            return
    finally:
        call.refer_queue = None
