"""Two nodes, one browser (issue 13): the supervisor's page on node B lists a call that runs on
node A, with its node, in headless chromium (tests/chromium.py). The nodes are tests/test_relay.py's
(real PostgreSQL, real hubs, relays and HTTP listeners on 127.0.0.1), in their own loop thread."""

import asyncio
import threading
import time

import pytest

from ivr import callevents as ev
from tests.chromium import ARTIFACTS, chromium
from tests.pg_fixture import pg_server
from tests.test_console import PASSWORDS
from tests.test_relay import call_to_alice, listening, node


@pytest.fixture(scope="module")
def pg():
    yield from pg_server()


def test_supervisor_on_node_b_sees_node_a_calls_in_chromium(pg, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url = pg.new_database()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="relay-nodes", daemon=True)
    thread.start()
    ready: dict = {}
    done = asyncio.Event()

    async def hold():
        async with node(tmp_path, url, "node-a") as a, node(tmp_path, url, "node-b") as b:
            await listening(a, b)
            ready["nodes"] = a, b
            await done.wait()

    held = asyncio.run_coroutine_threadsafe(hold(), loop)
    try:
        deadline = time.monotonic() + 60
        while "nodes" not in ready and time.monotonic() < deadline and not held.done():
            time.sleep(0.02)
        if "nodes" not in ready:
            held.result(1)   # raises what went wrong
        a, b = ready["nodes"]
        with chromium() as browser:
            wait = WebDriverWait(browser, 30)
            browser.get(b.base + "/console/supervisor")
            wait.until(lambda d: d.find_elements(By.ID, "user"))
            browser.find_element(By.ID, "user").send_keys("sue")
            browser.find_element(By.ID, "password").send_keys(PASSWORDS["sue"])
            browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
            wait.until(lambda d: d.find_element(By.ID, "link-state").text == "live")
            loop.call_soon_threadsafe(call_to_alice, a.service.hub, "c-a1")
            row = "#calls tr[data-call='c-a1']"
            # The row appears with CallBegan and fills in as the queue and agent events arrive (the
            # table is rebuilt on each update), so wait for the last of them and read the cells in one go.
            read = "return Array.from(document.querySelectorAll(arguments[0] + ' td'), td => td.textContent)"
            wait.until(lambda d: (d.execute_script(read, row) or [""] * 6)[5] == "alice")
            cells = browser.execute_script(read, row)
            assert cells[0] == "node-a" and cells[1] == "+15550101 (Ann Lee)" and cells[2] == "retail_en"
            assert cells[3] == "agent · support" and cells[5] == "alice"
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(ARTIFACTS / "console-supervisor-two-nodes.png"))
            loop.call_soon_threadsafe(a.service.hub.publish, ev.CallEnded(call_id="c-a1", at_s=time.time(),
                                                                           kind="transfer"))
            wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, row))
            logs = [e for e in browser.get_log("browser")
                    if e.get("level") == "SEVERE" and "favicon.ico" not in e["message"]]
            assert not logs, logs
    finally:
        loop.call_soon_threadsafe(done.set)
        held.result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
