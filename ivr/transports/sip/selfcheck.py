"""A node that answers OPTIONS but cannot answer INVITEs takes itself out of a proxy's rotation.

A proxy's OPTIONS probe (Kamailio dispatcher, deploy/kamailio) only sees that the SIP socket
answers. When the node cannot answer calls (its RTP socket does not open: `rtp_host` names an
address the machine no longer has, no ports or file descriptors left; or answering hangs past
`answer_timeout_ms`), each INVITE gets a 500 and the proxy moves that call to the next node, but
the probe keeps the node in rotation, so every call would pay the detour. After `after` INVITEs
in a row not answered, the node reports itself unhealthy for `pause_s`: OPTIONS and INVITE get
503 with Retry-After (the proxy takes it out at its next probe), `/health` says why. Then it
takes calls again; one answered INVITE resets the count, another run of failures takes it out
again.
"""

import logging
import time
from collections.abc import Callable

log = logging.getLogger("ivr.sip")


class AnswerHealth:
    def __init__(self, after: int = 3, pause_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        if after < 1 or pause_s <= 0:
            raise ValueError("unhealthy_after must be >= 1 and unhealthy_s > 0")
        self.after, self.pause_s, self.clock = after, pause_s, clock
        self.failures = 0                 # INVITEs in a row not answered
        self.unhealthy_until = 0.0
        self.last_failure = ""
        self.times_out = 0                # how often the node took itself out

    @property
    def healthy(self) -> bool:
        return self.clock() >= self.unhealthy_until

    def retry_after_s(self) -> int:
        return max(1, round(self.unhealthy_until - self.clock()))

    def ok(self) -> None:
        self.failures = 0

    def failed(self, why: str) -> None:
        self.failures += 1
        self.last_failure = why[:200]
        if self.failures >= self.after and self.healthy:
            self.unhealthy_until = self.clock() + self.pause_s
            self.times_out += 1
            self.failures = 0
            log.error("sip: %d INVITEs in a row could not be answered (last: %s): this node answers 503 to OPTIONS "
                      "and INVITE for %.0f s so the proxy sends calls elsewhere", self.after, self.last_failure,
                      self.pause_s)

    def status(self) -> dict:
        return {"healthy": self.healthy, "failures_in_a_row": self.failures, "last_failure": self.last_failure,
                "unhealthy_for_s": 0 if self.healthy else self.retry_after_s(), "times_taken_out": self.times_out}
