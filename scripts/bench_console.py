"""Screen-pop latency of the agent console: from the `AgentRinging` publish on the hub to the pop
arriving at the agent, over the real HTTP listener on 127.0.0.1.

    .venv/bin/python scripts/bench_console.py [--pops 200] [--browser-pops 40] [--json build/bench/console.json]

The service side is tests/test_console.py's rig: HealthServer with the real hub (privacy
filter), agent directory, queue manager and SQLite records store. Each pop is a whole call's
events published as the call side publishes them (CallBegan, two turns, QueueJoined,
AgentRinging), timed from the AgentRinging publish (its `at_s`, wall clock, same machine).

- ws: an aiohttp WebSocket client logged in as the agent; time until the pop message is read;
- ws, busy: the same with 20 other agents' consoles open and a background stream of ~200 call
  events/s from other calls on the hub (what a busy service's console subscriber sees);
- decision: from the transfer decision (the flow's queue step joining the dispatcher,
  `ivr.agents.dispatch`, with alice available) to the pop at her WebSocket: the dispatcher's
  pairing, the directory, the AgentRinging publish, the hub, the console. A bridged call
  (Twilio/AudioSocket: the service dials no phone, so the transport offers no `dial_agent`);
- browser: Debian's headless chromium (selenium, /usr/bin/chromedriver): the page stamps
  `data-pop-at-ms` (Date.now()) when it has rendered the pop; latency = that - publish time.

Bounded in count and time. On a shared 2-core machine: figures are noisy, see docs/BENCHMARKS.md.
"""

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import machine_info  # noqa: E402

from ivr import callevents as ev  # noqa: E402
from tests.test_console import PASSWORDS, agent, console_rig, publish_call  # noqa: E402

MAX_WALL_S = 300


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)


def summary(ms: list[float]) -> dict:
    return {"n": len(ms), "p50_ms": pct(ms, 0.5), "p95_ms": pct(ms, 0.95), "max_ms": round(max(ms), 2),
            "mean_ms": round(statistics.fmean(ms), 2)}


async def ws_pops(rig, pops: int, busy: bool) -> list[float]:
    alice = await agent(rig, "alice")
    others, stop = [], asyncio.Event()
    if busy:
        for i in range(20):
            name = f"agent{i}"
            rig.service.agents.add(name, f"sip:{name}@127.0.0.1:6{i:03d}", status="available")
        for _ in range(20):
            others.append(await agent(rig, "bob"))   # bob's 20 tabs: sockets the pusher serves too
    noise = asyncio.create_task(background(rig.service.hub, stop)) if busy else None
    out = []
    started = time.monotonic()
    try:
        for i in range(pops):
            if time.monotonic() - started > MAX_WALL_S:
                break
            call_id = f"b-{int(busy)}-{i}"
            publish_call(rig.service.hub, call_id, "alice")
            at_ms = time.time() * 1000   # publish_call stamps AgentRinging last, just before this
            msg = await alice.expect("pop", where=lambda m, c=call_id: m["call"]["call_id"] == c)
            out.append(time.time() * 1000 - min(at_ms, msg["published_at_s"] * 1000))
            rig.service.hub.publish(ev.CallEnded(call_id=call_id, at_s=time.time(), kind="transfer"))
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        if noise is not None:
            await noise
        for conn in (alice, *others):
            await conn.close()
    return out


async def background(hub, stop: asyncio.Event) -> None:
    """~200 events/s from 16 other calls (turns with text), until stopped."""
    i = 0
    while not stop.is_set():
        for c in range(16):
            hub.publish(ev.TurnEnded(call_id=f"noise-{c}", at_s=time.time(), index=i, kind="speech", step="main",
                                     heard="where is my order please", said=("Let me check.",), sentiment=0.1))
        i += 1
        await asyncio.sleep(0.08)


def browser_pops(pops: int) -> list[float]:
    import os
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.test_console_browser import CHROMEDRIVER, CHROMIUM, FLAGS

    os.environ.setdefault("SE_OFFLINE", "true")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    ready, done = {}, asyncio.Event()
    folder = Path(tempfile.mkdtemp(prefix="bench-console-"))

    async def hold():
        async with console_rig(folder) as rig:
            ready["rig"] = rig
            await done.wait()

    held = asyncio.run_coroutine_threadsafe(hold(), loop)
    while "rig" not in ready and not held.done():
        time.sleep(0.02)
    rig = ready["rig"]
    profile = tempfile.mkdtemp(prefix="ivr-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    out = []
    try:
        driver.get(rig.base + "/console")
        driver.find_element(By.ID, "user").send_keys("alice")
        driver.find_element(By.ID, "password").send_keys(PASSWORDS["alice"])
        driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
        wait = WebDriverWait(driver, 30, poll_frequency=0.01)
        wait.until(lambda d: d.find_element(By.ID, "link-state").text == "live")
        started = time.monotonic()
        for i in range(pops):
            if time.monotonic() - started > MAX_WALL_S:
                break
            call_id = f"br-{i}"
            publish_call(rig.service.hub, call_id, "alice")
            at_ms = time.time() * 1000
            wait.until(lambda d, c=call_id: d.execute_script("return document.body.dataset.popCall") == c)
            popped_ms = float(driver.execute_script("return document.body.dataset.popAtMs"))
            out.append(popped_ms - at_ms)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        loop.call_soon_threadsafe(done.set)
        held.result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        shutil.rmtree(folder, ignore_errors=True)
    return out


async def decision_pops(rig, pops: int) -> list[float]:
    from types import SimpleNamespace

    from ivr.agents.dispatch import Dispatcher

    directory, hub = rig.service.agents, rig.service.hub
    dispatcher = Dispatcher(directory, rig.service.queues, hub.publish)
    bridged = SimpleNamespace(kind="ws")   # a bridge's transport: no dial_agent
    alice = await agent(rig, "alice")
    out = []
    started = time.monotonic()
    try:
        for i in range(pops):
            if time.monotonic() - started > MAX_WALL_S:
                break
            directory.set_status("alice", "available")
            call_id = f"d-{i}"
            request = {"queue": "support", "caller": "+15550101", "caller_name": "Ann Lee", "language": "en",
                       "intent": "track", "reason": "order late", "slots": {"order_id": "A123"},
                       "path": ["greet", "main", "agent"], "transcript": [{"heard": "my order is late"}]}
            t0_ms = time.time() * 1000
            ticket = dispatcher.join(call_id, request, bridged)
            await alice.expect("pop", where=lambda m, c=call_id: m["call"]["call_id"] == c)
            out.append(time.time() * 1000 - t0_ms)
            await asyncio.wait_for(ticket.answered, 5)
            dispatcher.leave(ticket, "caller_hangup")
            directory.set_status("alice", "available")
            hub.publish(ev.CallEnded(call_id=call_id, at_s=time.time(), kind="transfer"))
            await asyncio.sleep(0.01)
    finally:
        await alice.close()
        await dispatcher.close()
    return out


async def ws_runs(pops: int) -> dict:
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        async with console_rig(Path(folder)) as rig:
            try:
                results["decision"] = summary(await decision_pops(rig, pops))
            except ImportError as exc:
                results["decision"] = f"not measured: {exc}"
    for busy in (False, True):
        with tempfile.TemporaryDirectory() as folder:
            async with console_rig(Path(folder)) as rig:
                results["ws_busy" if busy else "ws"] = summary(await ws_pops(rig, pops, busy))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pops", type=int, default=200)
    parser.add_argument("--browser-pops", type=int, default=40)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    out = {"machine": machine_info(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    out.update(asyncio.run(ws_runs(min(args.pops, 2000))))
    if args.browser_pops and Path("/usr/bin/chromium").exists():
        out["browser"] = summary(browser_pops(min(args.browser_pops, 500)))
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
