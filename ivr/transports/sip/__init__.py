"""SIP user agent: answers calls over UDP (RFC 3261), G.711 media over RTP, transfers calls.

Modules: `message` and `uri` (wire syntax), `sdp` (offer/answer), `digest` (auth),
`guard` (allow-list, rate limits), `endpoint` (socket and transactions), `dialog`,
`server` (`SipServer`) and `session` (one inbound call), `transport` (`SipCallTransport`,
what the call loop talks to), `refer` and `bridge` (the two ways to reach the agent line),
`media` (one reader per RTP session), `rtp`/`jitter`/`rfc4733` (media).
"""


def __getattr__(name: str):
    # Lazy, so importing the media modules alone never pulls in the signalling stack.
    if name == "SipServer":
        from ivr.transports.sip.server import SipServer

        return SipServer
    raise AttributeError(name)
