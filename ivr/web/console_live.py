"""The live half of the agent console: call events in, pops and state out, presence.

A mixin of `Console` (console.py): `on_event` is its hub subscriber (the `CallBook` fold, then
the pop to the agent whose phone rings, at once); state (the agent's status, callers waiting,
callback tasks) and the supervisor view are pushed to every open console when something
changed, coalesced to one push per `PUSH_EVERY_S`; consoles closing move their agent to away
at the defined moment (docs/serve.md, "Closed browser").
"""

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING
from urllib.parse import quote

from ivr.errors import UserError
from ivr.web import console_ws as proto

if TYPE_CHECKING:
    from ivr.web.console import Conn

log = logging.getLogger("ivr.web")

PUSH_EVERY_S = 0.1          # state pushes are coalesced to at most one per this interval
SESSION_CHECK_S = 30.0      # open sockets of ended sessions are closed within this
BUSY = ("ringing", "on_call", "wrap_up")
REMOTE_GRACE_S = 3.0        # another node's call is ended by a heartbeat only when quiet this long


def screen_pop_url(template: str, call_id: str, caller: str) -> str:
    """The template with each value URL-escaped whole (a caller ID cannot add a parameter or path)."""
    if not template:
        return ""
    return template.format(call_id=quote(call_id, safe=""), caller=quote(caller, safe=""))


class LiveViews:
    # ---- the hub -------------------------------------------------------------------------

    async def on_event(self, event, node: str = "") -> None:
        """A call event: this node's hub's, or (`node` given) another node's through the relay."""
        self.book(event)
        call = self.book.get(event.call_id)
        kind = type(event).__name__
        if call is not None:
            self._tag(call, node, kind)
        if kind == "AgentRinging" and call is not None:
            self.shown[event.agent] = call.call_id
            await self._to_agent(event.agent, self._pop_message(call, ringing=True, published_at_s=event.at_s))
            self.pops_sent += 1
        elif kind == "AgentFailed" and self.shown.get(event.agent) == event.call_id:
            # the phone did not take it (no answer, rejected, the caller left): the pop goes away
            del self.shown[event.agent]
            await self._to_agent(event.agent, {"type": "withdrawn", "call_id": event.call_id, "why": event.why,
                                               "now_s": self.clock()})
        elif call is not None and call.agent and self.shown.get(call.agent) == call.call_id:
            await self._to_agent(call.agent, self._pop_message(call, ringing=kind == "AgentRinging", update=True))
        if kind in ("CallBegan", "QueueJoined", "QueueLeft", "AgentRinging", "AgentAnswered", "AgentFailed",
                    "CallbackRequested", "CallEnded"):
            self._mark()

    async def on_remote(self, node: str, event) -> None:
        """The relay's subscriber (ivr/service/relay.py): another node's call, shown, never recorded here."""
        await self.on_event(event, node)

    def remote_live(self, node: str, live: list[str], final: bool = False) -> None:
        """Another node's heartbeat (its calls in progress): its calls not named, and quiet for
        REMOTE_GRACE_S, are over (their CallEnded was missed). `final`: the node stopped or went
        silent (died): all its calls are over."""
        keep, now = set(live), self.clock()
        for call in list(self.book.calls.values()):
            if call.seen_s and call.node == node and call.outcome == "gone" and call.call_id in keep:
                call.ended_at_s, call.outcome = None, ""   # back (after an outage longer than the node timeout)
                self._mark()
            elif (call.seen_s and call.node == node and call.ended_at_s is None and call.call_id not in keep
                    and (final or now - call.seen_s > REMOTE_GRACE_S)):
                call.ended_at_s, call.outcome = now, "gone"
                log.info("console: call %s on node %s is no longer there (%s)", call.call_id, node,
                         "node gone" if final else "missing from its heartbeat")
                if call.agent and self.shown.get(call.agent) == call.call_id and self._loop is not None:
                    self._loop.create_task(self._to_agent(call.agent, self._pop_message(call, False, update=True)))
                self._mark()

    def _tag(self, call, node: str, kind: str) -> None:
        if not node:
            call.node = call.node or self.node_name
            return
        call.node, call.seen_s = node, self.clock()
        if call.outcome == "gone" and kind != "CallEnded":   # it was there after all (a late heartbeat)
            call.ended_at_s, call.outcome = None, ""

    def _pop_message(self, call, ringing: bool, update: bool = False, published_at_s: float | None = None) -> dict:
        return {"type": "call" if update else "pop", "ringing": ringing, "call": call.pop(),
                "crm_url": screen_pop_url(self.settings.screen_pop_url, call.call_id, call.caller),
                "open_window": self.settings.screen_pop_window, "published_at_s": published_at_s,
                "now_s": self.clock()}

    async def _to_agent(self, name: str, message: dict) -> None:
        for conn in list(self.conns.get(name, ())):
            if conn.page == "agent":
                await self._send(conn, message)

    async def _send(self, conn: "Conn", message: dict) -> None:
        if conn.ws.closed:
            return
        try:
            await conn.ws.send_str(proto.dumps(message))
        except (ConnectionError, RuntimeError) as exc:
            log.debug("console: send to %s failed: %s", getattr(conn.user, "name", "?"), exc)

    # ---- status pushes -----------------------------------------------------------------

    def _mark(self) -> None:
        if self._dirty is None or self._loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._dirty.set()
        else:
            self._loop.call_soon_threadsafe(self._dirty.set)

    async def _pusher(self) -> None:
        """State to every console when something changed (coalesced), and a session check."""
        next_check = self.clock() + SESSION_CHECK_S
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancel that lands
            # as the event is set (gh-86296), and stop() then waited for ever (seen when draining).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._push_all()
                if self.clock() >= next_check:
                    next_check = self.clock() + SESSION_CHECK_S
                    await self._drop_ended_sessions()
            except Exception:
                log.exception("console: push failed")
            await asyncio.sleep(PUSH_EVERY_S)

    async def _push_all(self) -> None:
        sup = None
        for name, conns in list(self.conns.items()):
            for conn in list(conns):
                if conn.page == "agent":
                    await self._send(conn, self._state_for(name))
                elif conn.page == "supervisor":
                    sup = sup or self.supervisor_state()
                    await self._send(conn, sup)

    async def _drop_ended_sessions(self) -> None:
        for conns in list(self.conns.values()):
            for conn in list(conns):
                if self._still_logged_in(conn) is None:
                    await self._send(conn, {"type": "bye", "error": "your session has ended: log in again"})
                    await conn.ws.close()

    def _state_for(self, name: str) -> dict:
        me = {"status": "no_phone", "since_s": None, "call_id": None}
        if self.agents is not None:
            agent = self.agents.get(name)
            if agent is not None:
                me = {"status": agent.status, "since_s": agent.since_s, "call_id": agent.call_id}
        snap = self._queue_snapshot()
        return {"type": "state", "me": me, "queue": self._waiting(snap), "callbacks": self._callbacks(snap),
                "now_s": self.clock()}

    def _queue_snapshot(self) -> dict:
        return self.queues.snapshot() if self.queues is not None else {"queues": {}, "callbacks": []}

    def _waiting(self, snap: dict | None = None) -> list[dict]:
        """Callers waiting (the queue manager's view, else the events'), longest wait first."""
        snap = snap or self._queue_snapshot()
        if self.queues is not None:
            found = [w for calls in snap["queues"].values() for w in calls if w["state"] != "answered"]
            found.sort(key=lambda w: w["joined_at"])
            items = [{"call_id": w["call_id"], "caller": w["caller"], "caller_name": w["caller_name"],
                      "node": w.get("node") or self._node_of(w["call_id"]), "queue": w["queue"],
                      "joined_at_s": w["joined_at"], "reason": w["reason"], "intent": w["intent"],
                      "position": w["position"], "estimated_wait_s": w["estimated_wait_s"], "state": w["state"],
                      "agent": w["agent"]}
                     for w in found[:200]]
            known = {w["call_id"] for w in items}   # other nodes' callers (relay), unless the queues are shared
            items += [_waiting_item(c) for c in self.book.waiting() if c.seen_s and c.call_id not in known]
            items.sort(key=lambda w: w["joined_at_s"] or 0)
            return items[:200]
        return [_waiting_item(c) for c in self.book.waiting()[:200]]

    def _node_of(self, call_id: str) -> str:
        call = self.book.get(call_id)
        return call.node if call is not None else ""

    def _callbacks(self, snap: dict | None = None) -> list[dict]:
        snap = snap or self._queue_snapshot()
        return [{"id": t["callback_id"], "number": t["number"], "queue": t["queue"], "reason": t["reason"],
                 "requested_at_s": t["created_at"], "taken_by": t["agent"] or None, "call_id": t["call_id"]}
                for t in snap["callbacks"][:200]]

    def supervisor_state(self) -> dict:
        agents = []
        for snap in (self.agents.snapshot() if self.agents is not None else []):
            call = self.book.get(snap["call_id"]) if snap.get("call_id") else None
            agents.append({"name": snap["name"], "status": snap["status"], "since_s": snap["since_s"],
                           "call_id": snap.get("call_id"), "caller": call.caller if call else "",
                           "connected": bool(self.conns.get(snap["name"]))})
        snap = self._queue_snapshot()
        waiting = self._waiting(snap)
        queues: dict[str, dict] = {}

        def queue(name: str) -> dict:
            return queues.setdefault(name, {"name": name, "waiting": 0, "longest_since_s": None, "callbacks": 0,
                                            "handle_s": snap.get("handle_s", {}).get(name)})
        for w in waiting:
            q = queue(w["queue"])
            q["waiting"] += 1
            if w["joined_at_s"] and (q["longest_since_s"] is None or w["joined_at_s"] < q["longest_since_s"]):
                q["longest_since_s"] = w["joined_at_s"]
        for task in self._callbacks(snap):
            queue(task["queue"])["callbacks"] += 0 if task["taken_by"] else 1
        return {"type": "supervisor", "agents": agents, "queues": sorted(queues.values(), key=lambda q: q["name"]),
                "queue": waiting, "calls": [c.summary() for c in self.book.live()[:200]], "now_s": self.clock()}

    # ---- consoles closing ---------------------------------------------------------------

    def _closed(self, conn: "Conn") -> None:
        name = conn.user.name
        conns = self.conns.get(name)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.conns[name]
                self._last_console_closed(name)
        self._mark()

    def _last_console_closed(self, name: str) -> None:
        """Defined behaviour: the call goes on; away after it. Idle: away after the grace period."""
        agent = self.agents.get(name) if self.agents is not None else None
        if agent is None:
            return
        if agent.status in BUSY:
            self.away_pending.add(name)
            log.info("console: %s closed the console during a call (%s): away when it ends", name, agent.status)
            if agent.status == "wrap_up":
                self._go_away(name)
        elif agent.status == "available" and self._loop is not None:
            old = self._grace.pop(name, None)
            if old is not None:
                old.cancel()
            self._grace[name] = self._loop.call_later(self.settings.disconnect_grace_ms / 1000, self._grace_over, name)

    def _reopened(self, name: str) -> None:
        handle = self._grace.pop(name, None)
        if handle is not None:
            handle.cancel()
        self.away_pending.discard(name)

    def _grace_over(self, name: str) -> None:
        self._grace.pop(name, None)
        if self.conns.get(name):
            return
        agent = self.agents.get(name) if self.agents is not None else None
        if agent is not None and agent.status == "available":
            log.info("console: %s's console stayed closed: away", name)
            self._go_away(name)
        elif agent is not None and agent.status in BUSY:
            self.away_pending.add(name)

    def _agent_changed(self, snap: dict) -> None:
        """The directory's listener: apply a pending away once the call is over."""
        name = snap.get("name", "")
        if name in self.away_pending and snap.get("status") in ("available", "wrap_up") and not self.conns.get(name):
            self._go_away(name)
        self._mark()

    def _go_away(self, name: str) -> None:
        self.away_pending.discard(name)
        try:
            self.agents.set_status(name, "away")
        except UserError as exc:
            log.warning("console: could not set %s away: %s", name, exc.message)


def _waiting_item(call) -> dict:
    return {"call_id": call.call_id, "caller": call.caller, "caller_name": call.caller_name, "node": call.node,
            "queue": call.queue, "joined_at_s": call.joined_at_s, "reason": call.reason, "intent": call.intent,
            "position": call.extra.get("position"), "estimated_wait_s": call.extra.get("wait_s"),
            "state": "waiting", "agent": ""}
