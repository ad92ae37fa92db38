"""The agent console in a real browser: Debian's chromium, headless, driven by selenium through
/usr/bin/chromedriver (nothing downloaded). The service's HTTP listener (with the real hub,
agent directory, queue manager and SQLite records store of tests/test_console.py) runs on
127.0.0.1 in its own loop thread; the agent logs in, goes available, the call side's events
for a call put through to her are published on the hub (an utterance holds a <script>), and
the page must show the pop's context as text; the disposition she saves must be in the
database. Screenshot: build/test-artifacts/console.png."""

import asyncio
import json
import threading
import time

import pytest

from tests.chromium import ARTIFACTS, chromium
from tests.test_console import EVIL, PASSWORDS, console_rig, publish_call


@pytest.fixture
def served(tmp_path):
    """(rig, loop): the console rig entered in its own event loop thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="console-http", daemon=True)
    thread.start()
    ready: dict = {}
    done = asyncio.Event()

    async def hold():
        async with console_rig(tmp_path) as rig:
            ready["rig"] = rig
            await done.wait()

    held = asyncio.run_coroutine_threadsafe(hold(), loop)
    deadline = time.monotonic() + 30
    while "rig" not in ready and time.monotonic() < deadline and not held.done():
        time.sleep(0.02)
    if "rig" not in ready:
        held.result(1)   # raises what went wrong
    try:
        yield ready["rig"], loop
    finally:
        loop.call_soon_threadsafe(done.set)
        held.result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture
def browser():
    with chromium() as driver:
        yield driver


def on_loop(loop, fn, *args):
    """Run a sync call on the service's loop (the directory arms its timers there)."""
    async def call():
        return fn(*args)
    return asyncio.run_coroutine_threadsafe(call(), loop).result(10)


def test_agent_console_in_chromium(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    rig, loop = served
    wait = WebDriverWait(browser, 30)
    browser.get(rig.base + "/console")
    assert "/login" in browser.current_url                                  # behind the login
    browser.find_element(By.ID, "user").send_keys("alice")
    browser.find_element(By.ID, "password").send_keys(PASSWORDS["alice"])
    browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    try:
        wait.until(lambda b: b.find_element(By.ID, "link-state").text == "live")
    except Exception:
        print("page at timeout:", browser.current_url, browser.page_source[:3000], browser.get_log("browser"))
        raise
    title = browser.title
    browser.find_element(By.ID, "set-available").click()
    wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-status") == "available")
    assert on_loop(loop, lambda: rig.service.agents.get("alice").status) == "available"

    # the call side: the caller queued, alice's phone rings (the directory and the hub, as the dispatcher does)
    on_loop(loop, rig.service.agents.ring, "alice", "c-1")
    publish_call(rig.service.hub, "c-1", "alice")
    wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-pop-call") == "c-1")
    text = {name: browser.find_element(By.ID, f"pop-{name}").text
            for name in ("caller", "name", "language", "intent", "reason", "queue", "path")}
    assert text == {"caller": "+15550101", "name": "Ann Lee", "language": "en", "intent": "track",
                    "reason": "order late", "queue": "support", "path": "greet → main → order_id → agent"}
    slots = {row.find_element(By.TAG_NAME, "th").text: row.find_element(By.TAG_NAME, "td").text
             for row in browser.find_elements(By.CSS_SELECTOR, "#pop-slots tr")}
    assert slots == {"order_id": "A123", "pin": "****"}                      # masked as the flow masked it
    heard = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#pop-transcript .heard")]
    assert heard == [f"my order is late {EVIL}"]                             # shown as text ...
    assert not browser.find_elements(By.CSS_SELECTOR, "#pop-transcript script")   # ... never parsed
    assert browser.title == title                                            # the script did not run
    said = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#pop-transcript .said")]
    assert said == ["Welcome to Acme.", "Let me get someone to help."]
    assert "sentiment -0.60" in browser.find_element(By.CSS_SELECTOR, "#pop-transcript .sent.neg").text
    assert "late_delivery" in browser.find_element(By.ID, "pop-faq").text
    crm = browser.find_element(By.ID, "pop-crm")
    assert crm.get_attribute("href") == "https://crm.example.com/calls/c-1?phone=%2B15550101"

    # she answers, talks, the call ends: notes and a disposition, saved to the records database
    on_loop(loop, rig.service.agents.answered, "alice", "c-1")
    browser.find_element(By.ID, "notes").send_keys("Refund promised <b>today</b>")
    rig.service.hub.publish(__import__("ivr.callevents", fromlist=["CallEnded"]).CallEnded(
        call_id="c-1", at_s=time.time(), kind="transfer"))
    wait.until(lambda b: "ended" in b.find_element(By.ID, "pop-state").text)
    Select(browser.find_element(By.ID, "disposition")).select_by_value("resolved")
    browser.find_element(By.ID, "save-disposition").click()
    wait.until(lambda b: b.find_element(By.ID, "saved").text == "Saved: resolved")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "console.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000

    rig.service.store.flush()
    rows = rig.service.store.backend.fetch("SELECT * FROM dispositions WHERE call_id = 'c-1'")
    assert [(r["agent"], r["disposition"], r["notes"]) for r in rows] == [
        ("alice", "resolved", "Refund promised <b>today</b>")]
    assert json.loads(rows[0]["data"])["queue"] == "support"
    # no CSP violation or script error in the browser's console
    logs = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE" and "favicon.ico" not in e["message"]]
    assert not logs, logs

    # the supervisor view, live: alice on her call, a caller waiting in the support queue
    browser.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
    wait.until(lambda b: "/login" in b.current_url)                           # logged out
    browser.get(rig.base + "/console/supervisor")
    wait.until(lambda b: b.find_elements(By.ID, "user"))
    browser.find_element(By.ID, "user").send_keys("sue")
    browser.find_element(By.ID, "password").send_keys(PASSWORDS["sue"])
    browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    try:
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#agents tr[data-agent='alice']"))
    except Exception:
        print("page at timeout:", browser.current_url, browser.page_source[:3000], browser.get_log("browser"))
        raise
    on_loop(loop, lambda: rig.service.queues.join("c-2", "support", caller="+15550177", reason="billing"))
    # the tables are rebuilt on every update: wait for the state, and read each row's cells in one go
    read = "return Array.from(document.querySelectorAll(arguments[0] + ' td'), td => td.textContent)"
    support = "#queues tr[data-queue='support']"
    wait.until(lambda b: (b.execute_script(read, support) or ["", ""])[1] == "1")
    cells = browser.execute_script(read, "#agents tr[data-agent='alice']")
    assert cells[:2] == ["alice", "on-call"] and cells[3].endswith("c-1")
    queue = browser.execute_script(read, support)
    assert queue[:2] == ["support", "1"]
    wait.until(lambda b: "+15550177" in b.execute_script("return document.getElementById('queue').textContent"))
    browser.save_screenshot(str(ARTIFACTS / "console-supervisor.png"))
