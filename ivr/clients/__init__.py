"""Call clients: a simulated Twilio Media Streams peer and a simulated Asterisk AudioSocket peer.

Each plays caller audio in real time, records what the caller hears on the caller's clock and
measures the reply latency of each turn (tests and the load generator use them).
"""

from ivr.clients.audiosocket import run_audiosocket_call
from ivr.clients.timeline import CallResult, detect_utterance_ends
from ivr.clients.twilio_ws import WsCallResult, run_ws_call

__all__ = ["CallResult", "WsCallResult", "detect_utterance_ends", "run_audiosocket_call", "run_ws_call"]
