"""Agents, queues and callbacks without a call: status moves, longest idle first, misses, wrap-up,
the wait estimate, callback tasks (one taker; kept in the records database), the users file's
phone addresses, the RFC 7433 header, the flow's queue step checks and the agents config."""

import asyncio
import subprocess
import sys

import pytest

from ivr.agents import AgentDirectory, QueueManager
from ivr.errors import UserError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def agents(clock, *names, wrap_up_s=10.0, max_misses=2):
    directory = AgentDirectory(wrap_up_s=wrap_up_s, max_misses=max_misses, clock=clock)
    for name in names:
        directory.add(name, f"sip:{name}@127.0.0.1:5070", status="available")
        clock.now += 1
    return directory


def test_longest_idle_first_and_the_state_machine():
    clock = Clock()
    d = agents(clock, "ann", "ben", "cat")
    assert d.pick().name == "ann"
    d.ring("ann", "c1")
    d.answered("ann", "c1")
    assert d.pick().name == "ben"
    assert d.pick(exclude={"ben"}).name == "cat"
    with pytest.raises(UserError, match="cannot go from available to on_call"):
        d.set_status("ben", "on_call")
    with pytest.raises(UserError, match="unknown agent status"):
        d.set_status("ben", "lunch")
    with pytest.raises(UserError, match="no agent"):
        d.set_status("zed", "available")
    d.call_ended("ann", "c1")
    assert d.get("ann").status == "wrap_up" and d.pick().name == "ben"
    clock.now += 10.5                                 # wrap-up ends by itself
    assert d.get("ann").status == "available"
    assert d.pick().name == "ben"                      # ann is idle only since her wrap-up ended


def test_misses_send_an_agent_away_and_a_cancelled_ring_is_no_miss():
    clock = Clock()
    d = agents(clock, "ann", max_misses=2)
    d.ring("ann", "c1")
    d.released("ann", "c1")                            # the caller hung up while it rang
    assert (d.get("ann").status, d.get("ann").misses) == ("available", 0)
    for call in ("c2", "c3"):
        d.ring("ann", call)
        d.missed("ann", call)
    assert d.get("ann").status == "away" and d.pick() is None


def test_going_away_during_a_call_applies_when_it_ends():
    clock = Clock()
    d = agents(clock, "ann")
    d.ring("ann", "c1")
    d.answered("ann", "c1")
    snap = d.set_status("ann", "offline")              # closed the browser mid-call: the call goes on
    assert snap["status"] == "on_call" and snap["after_call"] == "offline"
    d.call_ended("ann", "c1")
    assert d.get("ann").status == "offline"


def test_wrap_up_timer_makes_the_agent_available_and_tells_listeners():
    async def go():
        d = AgentDirectory(wrap_up_s=0.05)
        d.add("ann", "sip:ann@127.0.0.1:5070", status="available")
        seen = []
        d.on_change(lambda snap: seen.append(snap["status"]))
        d.ring("ann", "c1")
        d.answered("ann", "c1")
        d.call_ended("ann", "c1")
        await asyncio.sleep(0.2)
        return seen

    assert asyncio.run(go()) == ["ringing", "on_call", "wrap_up", "available"]


def test_estimated_wait_formula():
    clock = Clock()
    d = agents(clock, "ann", "ben")
    q = QueueManager(d, default_handle_s=120, clock=clock)
    for n in range(4):
        q.join(f"c{n}", "sales")
    assert [q.position(f"c{n}") for n in range(4)] == [1, 2, 3, 4]
    assert q.estimated_wait_s("c1") == 0              # two agents free: positions 1 and 2 go now
    assert q.estimated_wait_s("c3") == 2 * 120 / 2    # (p - f) * H / n
    for talk_s in (50, 60, 70):
        q.record_handle("sales", talk_s)
    assert q.handle_time_s("sales") == 60 + 10         # talk + wrap-up
    d.set_status("ann", "away")
    assert q.estimated_wait_s("c3") == 3 * 70 / 1
    d.set_status("ben", "offline")
    assert q.estimated_wait_s("c3") is None            # nobody logged in: no estimate
    q.leave("c0", "caller_hangup")
    assert q.position("c1") == 1


def test_callbacks_one_taker_and_stored(tmp_path):
    from ivr.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'r.sqlite3'}", spool_dir=tmp_path / "spool").start()
    try:
        q = QueueManager(AgentDirectory(), store=store)
        task = q.request_callback("c1", "+15551234", "sales", caller="+15551234", reason="billing")
        q.take_callback(task.callback_id, "ann")
        with pytest.raises(UserError, match="taken by ann"):
            q.take_callback(task.callback_id, "ben")    # two agents taking the same task: one wins
        with pytest.raises(UserError, match="ann's"):
            q.finish_callback(task.callback_id, "ben")
        q.finish_callback(task.callback_id, "ann", "done")
        other = q.request_callback("c2", "+15559999", "sales")
        with pytest.raises(UserError, match="needs a number"):
            q.request_callback("c3", "", "sales")
        store.flush()
        rows = store.backend.fetch("SELECT callback_id, status, agent FROM callbacks ORDER BY created_at")
        assert rows == [{"callback_id": task.callback_id, "status": "done", "agent": "ann"},
                        {"callback_id": other.callback_id, "status": "open", "agent": ""}]
        again = QueueManager(AgentDirectory(), store=store)     # a restart: open tasks come back
        again.load()
        assert [t.callback_id for t in again.callbacks.tasks()] == [other.callback_id]
    finally:
        store.close()


def test_users_file_keeps_agent_phones(tmp_path):
    from ivr.web.users import UserStore

    users = UserStore(tmp_path / "users.json", cost=(2, 1, 1))
    users.set_user("ann", "agent", "password-1", must_exist=False, sip="sip:ann@127.0.0.1:5070")
    users.set_user("boss", "supervisor", "password-2", must_exist=False)
    with pytest.raises(UserError, match="bad SIP address"):
        users.set_user("ann", None, None, must_exist=True, sip="http://example.com")
    users.set_user("ann", None, "password-3", must_exist=True)        # a new password keeps the phone
    d = AgentDirectory()
    d.sync_users(users.read())
    assert [(a["name"], a["address"], a["status"]) for a in d.snapshot()] == [
        ("ann", "sip:ann@127.0.0.1:5070", "offline")]


def test_cli_users_add_with_a_phone(tmp_path):
    path = tmp_path / "users.json"
    run = [sys.executable, "-m", "ivr", "users", "--file", str(path)]
    out = subprocess.run([*run, "add", "ann", "--role", "agent", "--sip", "sip:ann@127.0.0.1:5070",
                          "--password-stdin"], input="a-long-password\n", capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    listed = subprocess.run([*run, "list"], capture_output=True, text=True).stdout
    assert "ann\tagent\tsip:ann@127.0.0.1:5070" in listed


def test_user_to_user_header_is_rfc7433():
    from ivr.transports.sip.bridge import user_to_user

    name, value = user_to_user("20261128-abc")
    assert name == "User-to-User"
    data, *params = value.split(";")
    assert bytes.fromhex(data).decode() == "20261128-abc"
    assert params == ["encoding=hex", "purpose=call-id"]


def test_agents_config_section(tmp_path):
    from ivr.service.config import load_config

    path = tmp_path / "serve.yaml"
    path.write_text("agents: {wrap_up: 45s, ring_timeout: 12s, max_misses: 3}\n")
    cfg = load_config(path, env={})
    assert (cfg.agents.wrap_up_s, cfg.agents.ring_timeout_s, cfg.agents.max_misses) == (45, 12, 3)
    path.write_text("agents: {ring_timeout: 12}\n")
    with pytest.raises(UserError, match=r"agents\.ring_timeout must be a duration"):
        load_config(path, env={})


def test_validate_checks_the_queue_step(tmp_path):
    flow = tmp_path / "q.yaml"
    flow.write_text("""\
name: q
language: en-US
start: wait
steps:
  wait:
    queue: {name: support, hold_music: missing.wav, callback_after: 1m, on_timeout: nowhere}
""")
    out = subprocess.run([sys.executable, "-m", "ivr", "validate", str(flow)], capture_output=True, text=True)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "hold music not found" in text and "no callback_key" in text and "nowhere" in text


@pytest.mark.parametrize(("language", "position_text", "wait_text"), [
    ("en-US", "You are number 3 in the queue.", "The wait is about 4 minutes."),
    ("zh-CN", "您前面还有2位客户，您排在第3位。", "预计等待时间约4分钟。"),
])
def test_queue_step_in_the_pure_interpreter(tmp_path, language, position_text, wait_text):
    from ivr.events import CallStarted, Digits, EnterQueue, Hangup, Play, QueueLeft, QueueUpdate
    from ivr.flow.interpreter import CallState, Interpreter
    from ivr.flow.loader import load_flow

    path = tmp_path / "q.yaml"
    path.write_text(f"""\
name: q
language: {language}
start: wait
steps:
  wait:
    queue: {{name: support, callback_after: 1m, callback_key: "9"}}
""")
    it = Interpreter(load_flow(path))
    state, out = it.handle(CallState(), CallStarted("anonymous", "100"))
    assert isinstance(out[-1], EnterQueue) and out[-1].queue == "support" and out[-1].callback_key == "9"
    state, out = it.handle(state, QueueUpdate(3, 240.0, 10_000))
    assert [p.text for p in out] == [position_text, wait_text]          # no offer before callback_after
    _, out = it.handle(state, QueueUpdate(3, 240.0, 70_000))
    assert len(out) == 3 and "9" in out[-1].text
    _, out = it.handle(state, Digits("9"))                               # no number to call back on
    assert len(out) == 1 and isinstance(out[0], Play) and out[0].text == it.defaults["queue_callback_no_number"]
    done, out = it.handle(state, QueueLeft("timeout"))                   # no on_timeout: goodbye
    assert done.ended and out[0].text == it.defaults["queue_timeout"] and isinstance(out[-1], Hangup)
