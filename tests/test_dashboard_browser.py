"""The dashboard in a real browser: Debian's chromium, headless, driven by selenium through
/usr/bin/chromedriver (nothing downloaded). The service's HTTP listener runs on 127.0.0.1
over a database of a few hundred synthetic calls written through the store's API; the
browser logs in as a supervisor made with the users module, checks the SVG charts drew the
seeded numbers, and leaves a screenshot in build/test-artifacts/dashboard.png."""

import asyncio
import threading
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from ivr.report.synthetic import seed_calls
from ivr.store import open_store
from tests.chromium import ARTIFACTS, chromium

START_S = datetime(2026, 11, 2, tzinfo=UTC).timestamp()
CALLS = 400


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{folder / 'ivr.sqlite3'}"
    store = open_store(url, folder / "spool").start()
    try:
        outcomes = seed_calls(store, CALLS, START_S, 7 * 86400, seed=3)
    finally:
        store.close()
    return url, outcomes, folder


@pytest.fixture(scope="module")
def served(seeded_db):
    """The service's HTTP listener in its own event loop thread: (base URL, outcomes)."""
    from ivr.service.config import ServeConfig
    from ivr.service.listeners import HealthServer
    from ivr.web.auth import AuthSettings
    from ivr.web.users import UserStore

    url, outcomes, folder = seeded_db
    users = UserStore(folder / "users.json", cost=(2 ** 10, 8, 1))
    users.set_user("sue", "supervisor", "sue-password-1", must_exist=False)
    cfg = ServeConfig(database=url, auth=AuthSettings(users_file=users.path), agent_cost_per_minute=0.5,
                      currency="EUR")
    server = HealthServer(SimpleNamespace(cfg=cfg, metrics=None, transfers={}, health=lambda: {"ok": True}),
                          "127.0.0.1", 0)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="dashboard-http", daemon=True)
    thread.start()
    host, port = asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
    try:
        yield f"http://{host}:{port}", outcomes
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture
def browser():
    with chromium(2400) as driver:
        yield driver


def test_dashboard_in_chromium(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, outcomes = served
    browser.get(base + "/dashboard?since=2026-11-01&until=2026-11-10")
    assert "/login" in browser.current_url                      # behind the login
    browser.find_element(By.ID, "user").send_keys("sue")
    browser.find_element(By.ID, "password").send_keys("sue-password-1")
    browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    try:
        WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.ID, "total-calls") or b.find_elements(
            By.CLASS_NAME, "error"))
    except Exception:
        print("page at timeout:", browser.current_url, browser.page_source[:3000], browser.get_log("browser"))
        raise
    assert browser.find_element(By.TAG_NAME, "h1").text == "Calls dashboard", browser.page_source[:2000]
    assert browser.find_element(By.ID, "total-calls").text == str(CALLS)

    # the charts drew the seeded data: one bar per hour of the day, summing to every call
    hours = browser.find_elements(By.CSS_SELECTOR, "#chart-hours rect.bar")
    assert len(hours) == 24
    assert sum(float(bar.get_attribute("data-value")) for bar in hours) == CALLS
    assert max(float(bar.get_attribute("height")) for bar in hours) > 50      # drawn, not zero-height
    outcome_bars = {bar.get_attribute("data-value") for bar in
                    browser.find_elements(By.CSS_SELECTOR, "#chart-outcomes rect.bar")}
    assert str(outcomes["hangup"]) in outcome_bars and str(outcomes["caller_hangup"]) in outcome_bars
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart-timeline rect.bar")) >= 24 * 6
    assert browser.find_elements(By.CSS_SELECTOR, "#chart-sentiment circle.point")
    assert browser.find_elements(By.CSS_SELECTOR, "#chart-topics rect.bar")
    # the same numbers are in the accessible tables
    rows = browser.find_elements(By.CSS_SELECTOR, "#table-outcomes tr")
    assert {r.text for r in rows} >= {f"hangup {outcomes['hangup']}"}
    # the browser's console saw no CSP violation or script error
    logs = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE" and "favicon.ico" not in e["message"]]
    assert not logs, logs

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    browser.set_window_size(1280, min(height + 200, 9000))    # the whole page in one picture
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
