"""The agent console over its real WebSocket: the service's HTTP listener (HealthServer) on
127.0.0.1 with the real hub (redaction filter), agent directory, queue manager and records
store (SQLite in tmp); aiohttp clients log in like browsers and speak the console's protocol.
Call events are published on the hub as the call side publishes them."""

import asyncio
import json
import re
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest

from ivr import callevents as ev
from ivr.agents import AgentDirectory, QueueManager
from ivr.privacy import redact_event
from ivr.service.config import ServeConfig
from ivr.service.hub import Hub
from ivr.service.listeners import HealthServer
from ivr.store import open_store
from ivr.web.auth import AuthSettings
from ivr.web.console import ConsoleSettings, screen_pop_url
from ivr.web.users import UserStore

CHEAP = (2 ** 10, 8, 1)
EVIL = "<script>document.title='owned'</script>"
CRM = "https://crm.example.com/calls/{call_id}?phone={caller}"
PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-1", "sue": "sue-password-1"}


@dataclass
class Rig:
    base: str
    service: SimpleNamespace
    server: HealthServer
    folder: Path

    @property
    def console(self):
        return self.server.console


@asynccontextmanager
async def console_rig(folder: Path, grace_ms: int = 15_000, wrap_up_s: float = 30.0):
    users = UserStore(folder / "users.json", cost=CHEAP)
    users.set_user("alice", "agent", PASSWORDS["alice"], must_exist=False, sip="sip:alice@127.0.0.1:5071")
    users.set_user("bob", "agent", PASSWORDS["bob"], must_exist=False, sip="sip:bob@127.0.0.1:5072")
    users.set_user("sue", "supervisor", PASSWORDS["sue"], must_exist=False)
    store = open_store(f"sqlite:///{folder / 'ivr.sqlite3'}", folder / "spool").start()
    hub = Hub(filter=redact_event)
    agents = AgentDirectory(wrap_up_s=wrap_up_s)
    agents.sync_users(users.users())
    queues = QueueManager(agents, store=store)
    cfg = ServeConfig(auth=AuthSettings(users_file=users.path),
                      console=ConsoleSettings(screen_pop_url=CRM, disconnect_grace_ms=grace_ms))
    service = SimpleNamespace(cfg=cfg, hub=hub, agents=agents, queues=queues, store=store, metrics=None,
                              transfers={}, health=lambda: {"ok": True})
    server = HealthServer(service, "127.0.0.1", 0)
    host, port = await server.start()
    try:
        yield Rig(f"http://{host}:{port}", service, server, folder)
    finally:
        await server.stop()
        await hub.close(deadline_s=2.0)
        store.close()


class Agent:
    """A logged-in browser's session and its console socket."""

    def __init__(self, rig: Rig, name: str) -> None:
        self.rig, self.name = rig, name
        self.http = aiohttp.ClientSession(rig.base, cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.ws = None
        self.token = ""

    async def login(self) -> "Agent":
        page = await (await self.http.get("/login")).text()
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        answer = await self.http.post("/login", data={"csrf": csrf, "user": self.name,
                                                      "password": PASSWORDS[self.name], "next": "/console"})
        html = await answer.text()
        assert answer.status == 200, html[:500]
        self.token = re.search(r'data-token="([^"]+)"', html).group(1)
        return self

    async def open(self, hello: bool = True, page: str = "agent") -> "Agent":
        self.ws = await self.http.ws_connect("/console/ws", origin=self.rig.base)
        if hello:
            await self.send({"type": "hello", "token": self.token, "page": page})
            assert (await self.expect("welcome"))["user"] == self.name
            await self.expect("state" if page == "agent" else "supervisor")
        return self

    async def send(self, message) -> None:
        await self.ws.send_str(message if isinstance(message, str) else json.dumps(message))

    async def expect(self, kind: str, timeout_s: float = 5.0, where=None) -> dict:
        """The next message of this type (others skipped)."""
        end = time.monotonic() + timeout_s
        while True:
            msg = await self.ws.receive(timeout=max(0.01, end - time.monotonic()))
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            data = json.loads(msg.data)
            if data["type"] == kind and (where is None or where(data)):
                return data

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        await self.http.close()


async def agent(rig: Rig, name: str) -> Agent:
    return await (await Agent(rig, name).login()).open()


def publish_call(hub: Hub, call_id: str = "c-1", agent_name: str = "alice", evil: str = EVIL) -> None:
    """A call as the call side publishes it: began, two turns, queued, the agent's phone rings."""
    now = time.time()
    hub.publish(ev.CallBegan(call_id=call_id, at_s=now, transport="sip", caller="+15550101", called="4000",
                             flow="retail_en", language="en"))
    hub.publish(ev.TurnEnded(call_id=call_id, at_s=now, index=0, kind="start", step="greet",
                             said=("Welcome to Acme.",)))
    hub.publish(ev.TurnEnded(call_id=call_id, at_s=now, index=1, kind="speech", step="main",
                             heard=f"my order is late {evil}", sentiment=-0.6,
                             candidates=({"choice": "late_delivery", "score": 0.71, "signal": "faq", "group": "faq"},
                                         {"choice": "track", "score": 0.55}),
                             match={"choice": "track", "score": 0.55, "via": "semantic"},
                             said=("Let me get someone to help.",), next_step="agent"))
    context = {"flow": "retail_en", "caller": {"number": "+15550101", "name": "Ann Lee"},
               "path": ["greet", "main", "order_id", "agent"], "intent": "track",
               "slots": {"order_id": "A123", "pin": "****"}}
    hub.publish(ev.QueueJoined(call_id=call_id, at_s=now, queue="support", caller="+15550101",
                               caller_name="Ann Lee", language="en", intent="track", reason="order late",
                               position=1, context=context))
    hub.publish(ev.AgentRinging(call_id=call_id, at_s=time.time(), agent=agent_name, queue="support",
                                caller="+15550101", caller_name="Ann Lee", language="en", intent="track",
                                reason="order late", slots={"order_id": "A123", "pin": "****"},
                                path=("greet", "main", "order_id", "agent"), context=context))


def test_no_cookie_and_foreign_origin_refused(tmp_path):
    async def go():
        async with console_rig(tmp_path) as rig:
            async with aiohttp.ClientSession() as anon:
                with pytest.raises(aiohttp.WSServerHandshakeError):
                    await anon.ws_connect(rig.base + "/console/ws", origin=rig.base)
                upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": rig.base}
                no_cookie = await anon.get(rig.base + "/console/ws", headers=upgrade, allow_redirects=False)
                page = await anon.get(rig.base + "/console", allow_redirects=False)
            alice = await Agent(rig, "alice").login()
            try:
                with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:
                    await alice.http.ws_connect("/console/ws", origin="http://evil.example")
                with pytest.raises(aiohttp.WSServerHandshakeError) as no_origin:
                    await alice.http.ws_connect("/console/ws")
                sup = await alice.http.get("/console/supervisor", allow_redirects=False)
            finally:
                await alice.close()
            return no_cookie.status, page.status, foreign.value.status, no_origin.value.status, sup.status
    no_cookie, page, foreign, no_origin, sup = asyncio.run(go())
    assert no_cookie == 303 and page == 303                 # to the login, no upgrade
    assert foreign == 403 and no_origin == 403
    assert sup == 403                                         # an agent is not a supervisor


def test_forged_messages_get_errors_and_the_socket_lives(tmp_path):
    async def go():
        async with console_rig(tmp_path) as rig:
            alice = await (await Agent(rig, "alice").login()).open(hello=False)
            errors = []
            try:
                await alice.send({"type": "status", "status": "available"})          # before hello
                errors.append((await alice.expect("error"))["error"])
                await alice.send({"type": "hello", "token": "x" * 43})               # not the page's token
                errors.append((await alice.expect("error"))["error"])
                await alice.send({"type": "hello", "token": alice.token, "page": "supervisor"})   # not hers
                errors.append((await alice.expect("error"))["error"])
                await alice.send({"type": "hello", "token": alice.token})
                await alice.expect("welcome")
                for forged in ['{"type": "status", "status": "on_call"}', "not json", "[1, 2]",
                               '{"type": "become_admin"}', '{"type": "status", "status": "away", "role": "admin"}',
                               json.dumps({"type": "notes", "call_id": "c-9", "text": "x" * 5000}),
                               json.dumps({"type": "notes", "call_id": "c-9", "text": "hi"}),
                               json.dumps({"type": "disposition", "call_id": "c-9", "disposition": "resolved"}),
                               json.dumps({"type": "take_callback", "id": 5}),
                               json.dumps({"type": "hello", "token": alice.token})]:
                    await alice.send(forged)
                    errors.append((await alice.expect("error"))["error"])
                await alice.ws.send_bytes(b"\x00\x01")
                errors.append((await alice.expect("error"))["error"])
                await alice.send({"type": "ping", "seq": 7})
                pong = await alice.expect("pong")
                await alice.send({"type": "status", "status": "available"})
                state = await alice.expect("state", where=lambda m: m["me"]["status"] == "available")
            finally:
                await alice.close()
            return errors, pong, state
    errors, pong, state = asyncio.run(go())
    assert errors[0].startswith("say hello first") and "wrong page token" in errors[1]
    assert "needs the supervisor role" in errors.pop(2)
    assert "status must be one of available, away" in errors[2]
    assert errors[3] == "not JSON" and "JSON object" in errors[4]
    assert "unknown message type" in errors[5] and "unknown field 'role'" in errors[6]
    assert "0-4000 characters" in errors[7]
    assert "no call c-9" in errors[8] and "no call c-9" in errors[9]
    assert "id must be text" in errors[10] and errors[11] == "hello twice" and "binary" in errors[12]
    assert pong["seq"] == 7 and state["me"]["status"] == "available"      # still connected, still working


def test_screen_pop_carries_the_calls_context_to_the_ringing_agent_only(tmp_path):
    async def go():
        async with console_rig(tmp_path) as rig:
            alice, bob = await agent(rig, "alice"), await agent(rig, "bob")
            try:
                publish_call(rig.service.hub, "c-1", "alice")
                pop = await alice.expect("pop")
                with pytest.raises(asyncio.TimeoutError):
                    await bob.expect("pop", timeout_s=0.5)
                # a turn after the pop updates it (the hub's history goes on)
                rig.service.hub.publish(ev.CallEnded(call_id="c-1", at_s=time.time(), kind="transfer"))
                update = await alice.expect("call", where=lambda m: m["call"]["ended"])
            finally:
                await alice.close()
                await bob.close()
            return pop, update
    pop, update = asyncio.run(go())
    call = pop["call"]
    assert pop["ringing"] is True and call["call_id"] == "c-1"
    assert call["caller"] == "+15550101" and call["caller_name"] == "Ann Lee" and call["language"] == "en"
    assert call["intent"] == "track" and call["reason"] == "order late" and call["queue"] == "support"
    assert call["slots"] == {"order_id": "A123", "pin": "****"}
    assert call["path"] == ["greet", "main", "order_id", "agent"]
    heard = [t["heard"] for t in call["turns"]]
    assert heard == ["", f"my order is late {EVIL}"]            # as text: the page sets textContent
    assert call["turns"][1]["sentiment"] == -0.6 and call["turns"][0]["said"] == ["Welcome to Acme."]
    assert call["faq"] == [{"id": "late_delivery", "score": 0.71, "used": False, "turn": 1,
                            "heard": f"my order is late {EVIL}"}]
    assert pop["crm_url"] == "https://crm.example.com/calls/c-1?phone=%2B15550101"
    assert update["call"]["ended"] is True and update["call"]["outcome"] == "transfer"


def test_a_ring_not_taken_withdraws_the_pop(tmp_path):
    async def go():
        async with console_rig(tmp_path) as rig:
            alice = await agent(rig, "alice")
            try:
                publish_call(rig.service.hub, "c-9", "alice")
                await alice.expect("pop")
                rig.service.hub.publish(ev.AgentFailed(call_id="c-9", at_s=time.time(), agent="alice",
                                                       why="no_answer", queue="support"))
                gone = await alice.expect("withdrawn")
                await alice.send({"type": "notes", "call_id": "c-9", "text": "late"})
                refused = await alice.expect("error")
            finally:
                await alice.close()
            return gone, refused
    gone, refused = asyncio.run(go())
    assert gone["call_id"] == "c-9" and gone["why"] == "no_answer"
    assert "not put through to you" in refused["error"]


def test_card_number_in_an_utterance_never_reaches_the_console(tmp_path):
    async def go():
        async with console_rig(tmp_path) as rig:
            alice = await agent(rig, "alice")
            try:
                publish_call(rig.service.hub, "c-2", "alice", evil="card 4111 1111 1111 1111")
                return await alice.expect("pop")
            finally:
                await alice.close()
    pop = asyncio.run(go())
    text = json.dumps(pop)
    assert "4111 1111 1111 1111" not in text and "1111" in text      # masked by the hub's filter


def test_two_agents_take_the_same_callback_one_wins(tmp_path):
    async def go():
        async with console_rig(tmp_path) as rig:
            task = rig.service.queues.request_callback("c-3", "+15550199", "support", reason="refund")
            alice, bob = await agent(rig, "alice"), await agent(rig, "bob")
            try:
                listed = await alice.expect("state", where=lambda m: m["callbacks"])
                take = {"type": "take_callback", "id": task.callback_id}
                await asyncio.gather(alice.send(take), bob.send(take))
                answers = await asyncio.gather(alice.expect("taken"), bob.expect("taken"))
            finally:
                await alice.close()
                await bob.close()
            return listed, answers, rig.service.queues.callbacks.get(task.callback_id)
    listed, answers, task = asyncio.run(go())
    assert listed["callbacks"][0]["number"] == "+15550199" and listed["callbacks"][0]["taken_by"] is None
    assert sorted(a["ok"] for a in answers) == [False, True]
    winner = "alice" if answers[0]["ok"] else "bob"
    loser = next(a for a in answers if not a["ok"])
    assert task.status == "taken" and task.agent == winner
    assert f"taken by {winner}" in loser["error"]


def test_disposition_and_notes_land_in_the_records_database(tmp_path):
    async def go():
        async with console_rig(tmp_path) as rig:
            alice, bob = await agent(rig, "alice"), await agent(rig, "bob")
            try:
                publish_call(rig.service.hub, "c-4", "alice")
                await alice.expect("pop")
                await alice.send({"type": "notes", "call_id": "c-4", "text": "refund promised <b>today</b>"})
                await bob.send({"type": "disposition", "call_id": "c-4", "disposition": "resolved"})
                refused = await bob.expect("error")                      # not bob's call
                await alice.send({"type": "disposition", "call_id": "c-4", "disposition": "no_such"})
                unknown = await alice.expect("error")
                await alice.send({"type": "disposition", "call_id": "c-4", "disposition": "follow_up"})
                saved = await alice.expect("saved")
            finally:
                await alice.close()
                await bob.close()
            rig.service.store.flush()
            rows = rig.service.store.backend.fetch("SELECT * FROM dispositions")
            return refused, unknown, saved, rows
    refused, unknown, saved, rows = asyncio.run(go())
    assert "not put through to you" in refused["error"] and "disposition must be one of" in unknown["error"]
    assert saved == {"type": "saved", "call_id": "c-4", "disposition": "follow_up"}
    assert len(rows) == 1
    row = rows[0]
    assert (row["call_id"], row["agent"], row["disposition"]) == ("c-4", "alice", "follow_up")
    assert row["notes"] == "refund promised <b>today</b>"
    assert json.loads(row["data"])["caller"] == "+15550101"


def test_closing_the_browser_mid_call_keeps_the_call_and_goes_away_after_it(tmp_path):
    async def go():
        async with console_rig(tmp_path, grace_ms=300) as rig:
            agents = rig.service.agents
            alice = await agent(rig, "alice")
            await alice.send({"type": "status", "status": "available"})
            await alice.expect("state", where=lambda m: m["me"]["status"] == "available")
            agents.ring("alice", "c-5")
            agents.answered("alice", "c-5")
            await alice.close()                                       # the browser closes mid-call
            await asyncio.sleep(0.5)                                  # longer than the grace period
            during = agents.get("alice").status
            agents.call_ended("alice", "c-5")
            after = agents.get("alice").status
            # idle: a reload within the grace period keeps the status; staying closed goes away
            bob = await agent(rig, "bob")
            await bob.send({"type": "status", "status": "available"})
            await bob.expect("state", where=lambda m: m["me"]["status"] == "available")
            await bob.close()
            bob = await agent(rig, "bob")                             # reloaded at once
            await asyncio.sleep(0.5)
            reloaded = agents.get("bob").status
            await bob.close()
            for _ in range(100):                                      # the grace timer, on a busy machine
                await asyncio.sleep(0.05)
                if agents.get("bob").status != "available":
                    break
            gone = agents.get("bob").status
            return during, after, reloaded, gone
    during, after, reloaded, gone = asyncio.run(go())
    assert during == "on_call"            # the call goes on
    assert after == "away"                # not wrap-up then available: nobody is at the console
    assert reloaded == "available" and gone == "away"


def test_logout_ends_the_socket(tmp_path):
    async def go():
        async with console_rig(tmp_path) as rig:
            alice = await agent(rig, "alice")
            try:
                other = await Agent(rig, "alice").login()             # a second tab's page, same user
                page = await (await alice.http.get("/console")).text()
                csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
                await alice.http.post("/logout", data={"csrf": csrf}, allow_redirects=False)
                await alice.send({"type": "status", "status": "available"})
                bye = await alice.expect("bye")
                closed = await alice.ws.receive(timeout=5)
                await other.close()
            finally:
                await alice.close()
            return bye, closed.type
    bye, closed = asyncio.run(go())
    assert "session has ended" in bye["error"]
    assert closed in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)


def test_supervisor_sees_agents_and_queues_live(tmp_path):
    async def go():
        async with console_rig(tmp_path) as rig:
            sue = await (await Agent(rig, "sue").login()).open(page="supervisor")
            alice = await agent(rig, "alice")
            try:
                page = await sue.http.get("/console/supervisor")
                await alice.send({"type": "status", "status": "available"})
                rig.service.queues.join("c-6", "support", caller="+15550123", reason="billing")
                rig.service.queues.request_callback("c-7", "+15550124", "support")
                view = await sue.expect("supervisor", where=lambda m: m["queues"] and any(
                    a["name"] == "alice" and a["status"] == "available" for a in m["agents"]))
            finally:
                await sue.close()
                await alice.close()
            return page.status, view
    status, view = asyncio.run(go())
    assert status == 200
    alice = next(a for a in view["agents"] if a["name"] == "alice")
    assert alice["connected"] is True and alice["since_s"] > 0
    assert view["queues"] == [{"name": "support", "waiting": 1, "longest_since_s": view["queue"][0]["joined_at_s"],
                               "callbacks": 1, "handle_s": 180.0}]
    assert view["queue"][0]["caller"] == "+15550123" and view["queue"][0]["reason"] == "billing"


def test_screen_pop_url_escapes_values_and_config_refuses_bad_templates(tmp_path):
    from ivr.errors import UserError
    from ivr.service.config import load_config

    assert screen_pop_url(CRM, "c/1", "+1 555&x=1") == "https://crm.example.com/calls/c%2F1?phone=%2B1%20555%26x%3D1"
    good = tmp_path / "ok.yaml"
    good.write_text("console: {dispositions: [done, callback], screen_pop_url: 'https://crm/{caller}', "
                    "disconnect_grace: 5s}\n")
    cfg = load_config(good, env={})
    assert cfg.console.dispositions == ("done", "callback") and cfg.console.disconnect_grace_ms == 5000
    for bad, words in [("screen_pop_url: 'javascript:alert(1)'", "http(s) URL"),
                       ("screen_pop_url: 'https://crm/{password}'", "unknown placeholder"),
                       ("dispositions: []", "distinct names"), ("colour: red", "unknown key console.colour")]:
        path = tmp_path / "bad.yaml"
        path.write_text(f"console: {{{bad}}}\n")
        with pytest.raises(UserError) as err:
            load_config(path, env={})
        assert words in err.value.message


def test_a_reopened_console_gets_the_call_and_its_notes_back(tmp_path):
    async def go():
        async with console_rig(tmp_path) as rig:
            alice = await agent(rig, "alice")
            publish_call(rig.service.hub, "c-8", "alice")
            await alice.expect("pop")
            await alice.send({"type": "notes", "call_id": "c-8", "text": "wants a refund"})
            await alice.send({"type": "ping"})
            await alice.expect("pong")                                # the notes were taken before it
            await alice.ws.close()
            alice.ws = None
            await alice.open(hello=False)
            await alice.send({"type": "hello", "token": alice.token})
            back = await alice.expect("pop")
            await alice.close()
            return back
    back = asyncio.run(go())
    assert back["call"]["call_id"] == "c-8" and back["ringing"] is False and back["notes"] == "wants a refund"


def test_a_call_queued_through_the_dispatcher_pops_on_the_agent_it_picks(tmp_path):
    """The call side's own path: a flow's queue step joins the dispatcher (a bridged call here:
    Twilio/AudioSocket, no phone dialled by the service), which picks the available agent."""
    from ivr.agents.dispatch import Dispatcher

    async def go():
        async with console_rig(tmp_path) as rig:
            dispatcher = Dispatcher(rig.service.agents, rig.service.queues, rig.service.hub.publish)
            alice, bob = await agent(rig, "alice"), await agent(rig, "bob")
            try:
                await alice.send({"type": "status", "status": "available"})
                await alice.expect("state", where=lambda m: m["me"]["status"] == "available")
                request = {"queue": "billing", "caller": "+15550142", "caller_name": "Wei Chen", "language": "en",
                           "intent": "refund", "reason": "caller asked for an agent",
                           "slots": {"card": "************1111"}, "path": ["greet", "main", "agent"],
                           "transcript": [{"heard": "I want a refund", "said": "One moment."}]}
                ticket = dispatcher.join("c-10", request, SimpleNamespace(kind="ws"))
                pop = await alice.expect("pop")
                with pytest.raises(asyncio.TimeoutError):
                    await bob.expect("pop", timeout_s=0.3)
                answered = await asyncio.wait_for(ticket.answered, 5)
                status = rig.service.agents.get("alice").status
                dispatcher.leave(ticket, "answered")
            finally:
                await alice.close()
                await bob.close()
                await dispatcher.close()
            return pop, answered, status
    pop, answered, status = asyncio.run(go())
    call = pop["call"]
    assert (call["caller"], call["caller_name"], call["queue"], call["intent"]) == (
        "+15550142", "Wei Chen", "billing", "refund")
    assert call["reason"] == "caller asked for an agent" and call["slots"] == {"card": "************1111"}
    assert call["turns"][0]["heard"] == "I want a refund" and call["path"] == ["greet", "main", "agent"]
    assert answered == "alice" and status == "on_call"
