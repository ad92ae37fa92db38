"""The dispatcher: offers waiting calls to free agents, rings their phones, hands the caller over.

Runs on the service's event loop. Whenever a call joins a queue or an agent becomes available,
it pairs the oldest waiting call with the agent idle the longest (`AgentDirectory.pick`) and
starts an offer:

1. the agent goes `ringing`, the call is `ringing` in its queue (it keeps its place), and
   `AgentRinging` (the screen pop: who, why, slots, transcript, path, FAQ) goes to the hub;
2. SIP calls: the agent's phone is dialled (`transport.dial_agent`: INVITE with X-IVR-Context,
   X-IVR-Reason and an RFC 7433 User-to-User header carrying the call id) while the caller
   keeps hearing hold music. Answered: `AgentAnswered`, the call loop is told (`Ticket.answered`)
   and bridges the caller (`Ticket.connect`); the agent is `on_call` until the bridge ends, then
   `wrap_up`. No answer within `ring_timeout_s`, rejected or unreachable: `AgentFailed`, the
   agent goes back to available (away after `max_misses` in a row), the call waits again in its
   place and the next agent is tried. The caller hanging up while it rings: CANCEL to the phone,
   the agent is released (not a miss).
3. Bridged calls (Twilio, AudioSocket) cannot ring a phone themselves: the agent is chosen the
   same way, the call loop hands the transfer to the telephony side with the agent's address (as
   any transfer), and the agent is `on_call` until they set a status on the console.

The call loop only sees the `QueuePort` / `Ticket` it is given (ivr/call_queue.py): it never
imports the service, and the service never reaches into the call loop.

Several nodes (`share(SharedState)`, PostgreSQL): pairing is a task that awaits
`SharedState.claim` for this node's waiting calls, oldest first (the claim rings the agent in the
database, atomically across nodes, and refuses while older callers elsewhere are owed the free
agents); it runs again whenever the shared tables change (NOTIFY or the slow poll).
"""

import asyncio
import contextlib
import logging
import time

from ivr.agents.directory import AgentDirectory
from ivr.agents.queues import QueueManager
from ivr.callevents import AgentAnswered, AgentFailed, AgentRinging
from ivr.transports.base import TransferFailed

log = logging.getLogger("ivr.agents")


class Ticket:
    """One call's place in a queue, as its call loop holds it."""

    def __init__(self, dispatcher: "Dispatcher", call_id: str, queue: str, transport, request: dict) -> None:
        self.d = dispatcher
        self.call_id, self.queue, self.transport, self.request = call_id, queue, transport, request
        self.answered: asyncio.Future = asyncio.get_running_loop().create_future()   # -> agent name
        self.agent = None                 # the directory's Agent who answered
        self.leg = None                   # SIP: the answered agent leg
        self.ring_task: asyncio.Task | None = None
        self.gone = False
        self.joined_perf = time.perf_counter()
        self.t0_ms = int(request.get("t_ms") or 0)
        self.answered_at_s: float | None = None

    def waited_ms(self) -> int:
        return int((time.perf_counter() - self.joined_perf) * 1000)

    def t_ms(self) -> int:
        return self.t0_ms + self.waited_ms()

    def position(self) -> int | None:
        return self.d.queues.position(self.call_id)

    def wait_s(self) -> float | None:
        return self.d.queues.estimated_wait_s(self.call_id)

    def staffed(self) -> bool:
        return self.d.directory.staffed() > 0

    def leave(self, reason: str) -> None:
        self.d.leave(self, reason)

    def callback(self, number: str) -> str:
        r = self.request
        task = self.d.queues.request_callback(self.call_id, number, self.queue, caller=r.get("caller", ""),
                                              language=r.get("language", ""), reason=r.get("reason", ""),
                                              data={"intent": r.get("intent", ""), "slots": r.get("slots", {}),
                                                    "waited_ms": self.waited_ms()})
        self.d.leave(self, "callback")
        return task.callback_id

    async def connect(self) -> bool:
        """Hand the caller to the agent who answered. False: it could not be done (the caller
        stays with the call loop, which tells the flow)."""
        return await self.d.connect(self)


class QueuePort:
    """What the service gives one call loop: `join(call_id, request)` -> Ticket, or None when
    nobody is logged in to take calls (the flow's on_empty)."""

    def __init__(self, dispatcher: "Dispatcher", transport) -> None:
        self.dispatcher, self.transport = dispatcher, transport

    def join(self, call_id: str, request: dict) -> Ticket | None:
        return self.dispatcher.join(call_id, request, self.transport)


class Dispatcher:
    def __init__(self, directory: AgentDirectory, queues: QueueManager, publish, *,
                 ring_timeout_s: float = 20.0) -> None:
        self.directory, self.queues, self.publish = directory, queues, publish
        self.ring_timeout_s = ring_timeout_s
        self.tickets: dict[str, Ticket] = {}
        self._tasks: set[asyncio.Task] = set()
        self._kick_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.shared = None
        self._pairing: asyncio.Task | None = None
        self._again = False
        directory.on_change(lambda snap: self.kick() if snap.get("status") == "available" else None)

    def port(self, transport) -> QueuePort:
        return QueuePort(self, transport)

    def share(self, shared) -> None:
        """Pair through the shared state (ivr/agents/shared.py) from now on."""
        self.shared = shared
        shared.on_refresh.append(self.kick)

    # ---- callers -----------------------------------------------------------------------

    def join(self, call_id: str, request: dict, transport) -> Ticket | None:
        self._loop = asyncio.get_running_loop()
        if self.directory.staffed() == 0:
            return None
        ticket = Ticket(self, call_id, str(request["queue"]), transport, request)
        self.tickets[call_id] = ticket
        self.queues.join(call_id, ticket.queue, caller=request.get("caller", ""),
                         caller_name=request.get("caller_name", ""), language=request.get("language", ""),
                         intent=request.get("intent", ""), reason=request.get("reason", ""),
                         context=request.get("context", {}))
        self.kick()
        return ticket

    def leave(self, ticket: Ticket, reason: str) -> None:
        """The caller is out (hung up, timed out, callback, ...): stop any ring, free the place."""
        if ticket.gone:
            return
        ticket.gone = True
        if ticket.ring_task is not None and not ticket.ring_task.done():
            ticket.ring_task.cancel()
        if reason != "answered":
            self.tickets.pop(ticket.call_id, None)
            self.queues.leave(ticket.call_id, reason)
        self.kick()

    # ---- pairing -----------------------------------------------------------------------

    def kick(self) -> None:
        """Pair waiting calls with free agents, soon (once per loop turn however often asked)."""
        loop = self._loop
        if loop is None or self._kick_pending:
            return
        self._kick_pending = True
        loop.call_soon_threadsafe(self._pair)

    def _pair(self) -> None:
        self._kick_pending = False
        if self.shared is not None:
            if self._pairing is not None and not self._pairing.done():
                self._again = True
            else:
                self._pairing = self._spawn(self._pair_shared())
            return
        busy_calls: set[str] = set()
        while True:
            call = next((c for c in self.queues.snapshot_order() if c.state == "waiting"
                         and c.call_id not in busy_calls), None)
            if call is None:
                return
            ticket = self.tickets.get(call.call_id)
            if ticket is None or ticket.gone:
                busy_calls.add(call.call_id)
                continue
            agent = self.directory.pick(exclude=call.tried) or self.directory.pick()
            if agent is None:
                return
            busy_calls.add(call.call_id)
            self.directory.ring(agent.name, call.call_id)
            self._start_offer(ticket, call, agent)

    def _start_offer(self, ticket: Ticket, call, agent) -> None:
        self.queues.offered(call.call_id, agent.name)
        ticket.ring_task = self._spawn(self._offer(ticket, agent, len(call.tried) + 1))

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _pair_shared(self) -> None:
        """This node's waiting calls, oldest first, each claiming an agent across the nodes; stops
        at the first that gets none (the later ones would not either)."""
        while True:
            self._again = False
            for call in self.queues.snapshot_order():
                ticket = self.tickets.get(call.call_id)
                if call.state != "waiting" or ticket is None or ticket.gone:
                    continue
                try:
                    agent = await self.shared.claim(call.call_id, call.tried)
                except Exception:
                    log.exception("call %s: claiming an agent failed", call.call_id)
                    agent = None
                if agent is None:
                    break
                if ticket.gone or call.state != "waiting":     # the caller left during the claim
                    self.directory.released(agent.name, call.call_id)
                    continue
                self._start_offer(ticket, call, agent)
            if not self._again:
                return

    async def _offer(self, ticket: Ticket, agent, attempt: int) -> None:
        r = ticket.request
        context = {**r.get("context", {}), "call_id": ticket.call_id, "queue": ticket.queue,
                   "waited_s": round(ticket.waited_ms() / 1000, 1)}
        self.publish(AgentRinging(
            call_id=ticket.call_id, t_ms=ticket.t_ms(), at_s=time.time(), agent=agent.name, address=agent.address,
            queue=ticket.queue, caller=r.get("caller", ""), caller_name=r.get("caller_name", ""),
            language=r.get("language", ""), intent=r.get("intent", ""), reason=r.get("reason", ""),
            waited_ms=ticket.waited_ms(), attempt=attempt, slots=dict(r.get("slots", {})),
            transcript=tuple(r.get("transcript", ())), path=tuple(r.get("path", ())), faq=tuple(r.get("faq", ())),
            context=context))
        dial = getattr(ticket.transport, "dial_agent", None)
        started = time.perf_counter()
        why, detail = "", ""
        try:
            if dial is not None:
                from ivr.transports.sip.bridge import user_to_user
                from ivr.transports.sip.refer import context_headers

                headers = [*context_headers(r.get("reason", ""), context), user_to_user(ticket.call_id)]
                ticket.leg = await asyncio.wait_for(dial(agent.address, headers), self.ring_timeout_s)
        except TimeoutError:
            why, detail = "no_answer", f"no answer within {self.ring_timeout_s:.0f} s"
        except TransferFailed as exc:
            detail = str(exc)
            why = "busy" if " 486 " in detail or " 600 " in detail else (
                "rejected" if " answered " in detail else "error")
        except asyncio.CancelledError:
            why, detail = "cancelled", "the caller left while it rang"
        except Exception as exc:   # a bug in dialling must not strand the caller
            log.exception("call %s: dialling agent %s failed", ticket.call_id, agent.name)
            why, detail = "error", f"{type(exc).__name__}: {exc}"
        ring_ms = int((time.perf_counter() - started) * 1000)
        if not why and ticket.gone:        # answered just as the caller hung up
            why, detail = "cancelled", "the caller left as the agent answered"
            if ticket.leg is not None:
                with contextlib.suppress(Exception):
                    await ticket.leg.hangup("caller left")
        if why:
            self.publish(AgentFailed(call_id=ticket.call_id, t_ms=ticket.t_ms(), at_s=time.time(), agent=agent.name,
                                     why=why, queue=ticket.queue, ring_ms=ring_ms, detail=detail))
            log.info("call %s: agent %s did not take it (%s: %s)", ticket.call_id, agent.name, why, detail)
            if why == "cancelled":
                self.directory.released(agent.name, ticket.call_id)
            else:
                self.directory.missed(agent.name, ticket.call_id)
            self.queues.not_taken(ticket.call_id, agent.name, missed=why != "cancelled")
            self.kick()
            return
        ticket.agent, ticket.answered_at_s = agent, time.time()
        self.directory.answered(agent.name, ticket.call_id)
        self.queues.answered(ticket.call_id, agent.name)
        self.publish(AgentAnswered(call_id=ticket.call_id, t_ms=ticket.t_ms(), at_s=time.time(), agent=agent.name,
                                   queue=ticket.queue, waited_ms=ticket.waited_ms(), ring_ms=ring_ms))
        if not ticket.answered.done():
            ticket.answered.set_result(agent.name)

    # ---- after the answer ------------------------------------------------------------

    async def connect(self, ticket: Ticket) -> bool:
        agent = ticket.agent
        self.tickets.pop(ticket.call_id, None)
        ticket.gone = True
        try:
            if ticket.leg is not None:
                bridge = await ticket.transport.connect_agent(ticket.leg)
            else:
                r = ticket.request
                await ticket.transport.transfer(agent.address, r.get("reason", ""),
                                                {**r.get("context", {}), "agent": agent.name})
                bridge = None
        except TransferFailed as exc:
            log.warning("call %s: handing over to %s failed: %s", ticket.call_id, agent.name, exc)
            self._over(ticket, 0.0)
            return False
        if bridge is None and ticket.leg is not None:   # the caller left at the last moment
            self._over(ticket, 0.0)
            return False
        if bridge is not None:
            task = asyncio.get_running_loop().create_task(self._watch(ticket, bridge))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self.queues.leave(ticket.call_id, "answered")
        return True

    async def _watch(self, ticket: Ticket, bridge: asyncio.Task) -> None:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.shield(bridge)
        self._over(ticket, time.time() - (ticket.answered_at_s or time.time()))

    def _over(self, ticket: Ticket, talk_s: float) -> None:
        if talk_s > 0:
            self.queues.record_handle(ticket.queue, talk_s)
        self.queues.leave(ticket.call_id, "answered")
        if ticket.agent is not None:
            self.directory.call_ended(ticket.agent.name, ticket.call_id)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
