"""The agent desktop in a real (headless) Chromium against the real stack: Asterisk,
Redis, the app, the archiver, SIPp callers and a SIPp agent phone.

The agent a014 signs in through the page; a SIPp caller chooses English and the
Primary Health Care Corporation through the menus; the screen-pop shows both
while the phone still rings (its display time is compared with the archived
answer time), the agent tags the call from the page, pauses with a reason and
resumes. The offer-to-display delays of the calls go to
bench/results/desktop-screenpop.json; the screenshots in English and Arabic to
docs/images/ for docs/agent-desktop.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from ari_app.desktop.accounts import set_password
from ari_app.records.model import parse_iso
from tests.browser.conftest import by_testid, text_of, wait_testid
from tests.integration.conftest import agents, nothing_left_behind, stack  # noqa: F401
from tests.support.stackfix import Agents, StackUnderTest, app_config

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
IMG = ROOT / "docs" / "images"
BENCH = ROOT / "bench" / "results" / "desktop-screenpop.json"
PASSWORD = {"a014": "a014 desk password", "a015": "a015 desk password"}
# English (2), then Health (1), then the Primary Health Care Corporation (1)
EN_PHCC = "wait:400,dtmf:2,wait:900,dtmf:1,wait:900,dtmf:1"
PHCC_EN = "Primary Health Care Corporation"
PHCC_AR = "مؤسسة الرعاية الصحية الأولية"
NOTE = '<b>bold</b> <img src=x onerror="window.pwned=1"> \x07bell'


@pytest.fixture(scope="module")
def desk(stack: StackUnderTest) -> Iterator[str]:  # noqa: F811
    """The app restarted with the desktop on: accounts for a014 and a015, the
    stack's archive for the callers' history, a low sign-in limit."""
    s = stack.stack
    creds = s.dir / "secrets" / "desktop-users.json"
    creds.unlink(missing_ok=True)
    ids = ["a014", "a015"]
    for user, pw in PASSWORD.items():
        set_password(creds, user, pw, "agent", ids)
    with app_config(stack, desktop={"credentials_file": str(creds),
                                    "signin_fail_per_user": 3},
                    archive={"url": str(s.archive)}):
        yield s.app_url


def viewport(browser: WebDriver, width: int, height: int) -> None:
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1,
                             "mobile": False})


async def sign_in(browser: WebDriver, url: str, user: str, password: str) -> None:
    await asyncio.to_thread(browser.get, url)
    await wait_until(browser, lambda: by_testid(browser, "signin").is_displayed(), "sign-in form")
    for testid, value in (("signin-user", user), ("signin-password", password)):
        el = by_testid(browser, testid)
        el.clear()
        el.send_keys(value)
    by_testid(browser, "signin-submit").click()


async def wait_until(browser: WebDriver, check: Any, what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = await asyncio.to_thread(check)
        except Exception:  # noqa: BLE001 - the page re-renders; polled again
            got = None
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what} within {timeout}s")
        await asyncio.sleep(0.05)


def page_fetch(browser: WebDriver, path: str, body: dict[str, Any], csrf: bool) -> Any:
    """A request made by page script (what an XSS or a rogue tab could do)."""
    return browser.execute_async_script("""
        const [path, body, withToken, done] = arguments;
        fetch('/desktop/api/me').then(r => r.json()).then(me => fetch(path, {
            method: 'POST', body: JSON.stringify(body),
            headers: Object.assign({'Content-Type': 'application/json'},
                                   withToken ? {'X-CSRF-Token': me.csrf} : {})}))
          .then(async r => done({status: r.status, body: await r.json()}));
    """, path, body, csrf)


def archived(db: Path, call_filter: str, args: tuple[Any, ...]) -> list[Any]:
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(f"SELECT call_id, outcome, reason, note FROM calls WHERE {call_filter}",
                           args).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


async def wait_archived(db: Path, caller: str, n: int, timeout: float = 30.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        rows = archived(db, "caller = ?", (caller,))
        if len(rows) >= n:
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"{n} archived call(s) of the caller not seen in {timeout}s")
        await asyncio.sleep(0.2)


async def pop_of(browser: WebDriver, call_seen: set[str]) -> dict[str, Any]:
    """The next pop on the page (a call id not seen before), with its two times."""
    def read() -> dict[str, Any] | None:
        el = by_testid(browser, "pop")
        cid = el.get_attribute("data-call-id")
        if not el.is_displayed() or not cid or cid in call_seen:
            return None
        return {"call_id": cid, "offered_at": int(el.get_attribute("data-offered-at") or 0),
                "shown_at": int(el.get_attribute("data-shown-at") or 0)}
    got: dict[str, Any] = await wait_until(browser, read, "a new screen-pop", 40)
    call_seen.add(got["call_id"])
    return got


async def test_screen_pop_tag_pause_resume_in_english_and_arabic(
        desk: str, stack: StackUnderTest, agents: Agents,  # noqa: F811
        browser: WebDriver) -> None:
    viewport(browser, 1366, 768)
    try:
        await _desk_session(desk, stack, agents, browser)
    finally:
        viewport(browser, 1920, 1080)
        await asyncio.to_thread(browser.delete_all_cookies)


async def _desk_session(url: str, stack: StackUnderTest, agents: Agents,  # noqa: F811
                        browser: WebDriver) -> None:
    # the phone rings 2.5 s before it answers: the pop must be on screen before that
    await asyncio.to_thread(agents.phone, "a014", "answer", ring_ms=2500)
    await sign_in(browser, url + "/desktop", "a014", PASSWORD["a014"])
    await wait_testid(browser, "agent-state", "Logged out")
    assert text_of(browser, "desk-user") == "a014"
    await wait_testid(browser, "conn-status", "Live")
    by_testid(browser, "btn-login").click()
    await wait_testid(browser, "agent-state", "Available")
    # 1366x768: nothing spills sideways, every control is on screen
    sizes = browser.execute_script(
        "return [document.documentElement.scrollWidth, innerWidth, "
        "document.querySelector('[data-testid=btn-pause]').getBoundingClientRect().bottom,"
        " innerHeight]")
    assert sizes[0] <= sizes[1] and sizes[2] <= sizes[3], sizes

    caller = stack.new_caller()
    seen: set[str] = set()
    delays: list[float] = []
    call = asyncio.create_task(asyncio.to_thread(
        stack.call, f"{EN_PHCC},wait:14000,hangup", caller))
    try:
        pop = await pop_of(browser, seen)
        # the pop shows the caller's choices and a masked number
        assert text_of(browser, "pop-entity") == PHCC_EN
        assert text_of(browser, "pop-language") == "English"
        assert text_of(browser, "pop-path") == f"Health › {PHCC_EN}"
        masked = text_of(browser, "pop-caller") or ""
        assert masked.endswith(caller[-2:]) and caller[:-2] not in masked
        assert masked.count("•") == len(caller) - 2
        assert text_of(browser, "pop-kind") == "Direct call"
        delays.append(pop["shown_at"] - pop["offered_at"])
        await wait_testid(browser, "agent-state", "On a call")
        await wait_until(browser, lambda: text_of(browser, "history-status") == "No earlier calls",
                         "the (empty) call history")
        await asyncio.to_thread(browser.save_screenshot, str(IMG / "desktop-en.png"))

        # hostile, from page script: no CSRF token; another agent; markup in a note
        no_token = page_fetch(browser, "/desktop/api/pause", {"reason": "meal"}, False)
        assert no_token["status"] == 403 and "CSRF" in no_token["body"]["error"]
        other = page_fetch(browser, "/desktop/api/logout", {"agent": "a015"}, True)
        assert other["status"] == 403 and "only for yourself" in other["body"]["error"]
        Select(by_testid(browser, "wrapup-kind")).select_by_value("complaint")
        browser.execute_script(
            "document.querySelector('[data-testid=wrapup-note]').value = arguments[0]", NOTE)
        by_testid(browser, "wrapup-submit").click()
        await wait_until(browser, lambda: "Complaint" in (text_of(browser, "wrapup-saved") or ""),
                         "the saved reason")
        saved = text_of(browser, "wrapup-saved") or ""
        assert '<b>bold</b> <img src=x onerror="window.pwned=1">' in saved, saved
        assert "\x07" not in saved and "bell" in saved
        assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid=wrapup-saved] *')
        assert browser.execute_script("return window.pwned") is None

        # the same call, the same desk, in Arabic: the pop is read back on reconnect
        by_testid(browser, "lang-switch").click()
        await wait_testid(browser, "pop-entity", PHCC_AR)
        assert text_of(browser, "pop-language") == "English"
        assert browser.execute_script("return document.documentElement.dir") == "rtl"
        assert text_of(browser, "agent-state") == "في مكالمة"
        await asyncio.to_thread(browser.save_screenshot, str(IMG / "desktop-ar.png"))
        by_testid(browser, "lang-switch").click()
        await wait_testid(browser, "agent-state", "On a call")
    finally:
        res, _ = await call
    assert res.ok, res.stderr
    rec = await asyncio.to_thread(stack.record_for, caller)
    assert rec["agent"] == "a014" and rec["outcome"] == "answered"
    # shown before the phone answered (the page's and the app's clocks are the host's)
    assert pop["shown_at"] / 1000 < parse_iso(rec["agent_answered_at"]).timestamp()
    rows = await wait_archived(stack.stack.archive, caller, 1)
    await wait_until(browser, lambda: archived(stack.stack.archive, "call_id = ?",
                                               (rows[0][0],))[0][2] == "complaint",
                     "the reason in the archived call", 30)

    # pause with a reason, resume
    await wait_testid(browser, "agent-state", "Available", timeout=15)
    Select(by_testid(browser, "pause-reason")).select_by_value("prayer")
    by_testid(browser, "btn-pause").click()
    await wait_testid(browser, "agent-state", "Paused")
    await wait_testid(browser, "agent-reason", "Prayer")
    assert (await asyncio.to_thread(agents.status, "a014")).reason == "prayer"
    by_testid(browser, "btn-resume").click()
    await wait_testid(browser, "agent-state", "Available")

    # more calls of the same caller: each pop lists the earlier, archived ones
    for n in range(1, 4):
        call = asyncio.create_task(asyncio.to_thread(
            stack.call, "wait:400,dtmf:2,wait:5000,hangup", caller, "1091"))
        try:
            pop = await pop_of(browser, seen)
            delays.append(pop["shown_at"] - pop["offered_at"])
            await wait_until(browser, lambda n=n: len(browser.find_elements(
                By.CSS_SELECTOR, '[data-testid="history-row"]')) == n, f"{n} earlier call(s)")
            # the oldest, the first call: its reason and its note, as text
            oldest = browser.find_elements(By.CSS_SELECTOR, '[data-testid="history-row"]')[-1]
            assert "Complaint" in oldest.text and "<b>bold</b>" in oldest.text, oldest.text
        finally:
            res, _ = await call
        assert res.ok, res.stderr
        await wait_archived(stack.stack.archive, caller, n + 1)
        await wait_testid(browser, "agent-state", "Available", timeout=15)
    # no line the desktop logged holds the caller's number (call.start's own line does)
    desk_lines = [json.dumps(x) for x in stack.log_lines()
                  if str(x.get("event", "")).startswith("desktop.")]
    assert desk_lines and not [x for x in desk_lines if caller in x]
    record_delays(delays)


async def test_wrong_password_is_rate_limited_on_the_page(
        desk: str, browser: WebDriver) -> None:
    try:
        for _ in range(3):
            await sign_in(browser, desk + "/desktop", "a015", "not the password")
            await wait_until(browser, lambda: "wrong user or password" in (
                text_of(browser, "signin-error") or ""), "the refusal")
        await sign_in(browser, desk + "/desktop", "a015", PASSWORD["a015"])
        await wait_until(browser, lambda: "too many failed sign-ins" in (
            text_of(browser, "signin-error") or ""), "the rate limit")
        assert not by_testid(browser, "desk").is_displayed()
    finally:
        await asyncio.to_thread(browser.delete_all_cookies)


def record_delays(delays: list[float]) -> None:
    """Adds this run's offer-to-display delays (ms) to the bench file; p50/p95 over all runs."""
    data: dict[str, Any] = {"what": "screen-pop delay, offer (Ringing state, app clock) to "
                                    "display (page, browser clock), same host, ms",
                            "runs": []}
    if BENCH.exists():
        data = json.loads(BENCH.read_text(encoding="utf-8"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT, check=False).stdout.strip()
    data["runs"].append({"commit": commit, "date": datetime.now(UTC).isoformat(timespec="seconds"),
                         "machine": f"{platform.node()} {platform.machine()} "
                                    f"{os.cpu_count()} cpu",
                         "load_avg_1m": round(os.getloadavg()[0], 2),
                         "samples_ms": delays})
    samples = sorted(s for run in data["runs"] for s in run["samples_ms"])
    q = statistics.quantiles(samples, n=20, method="inclusive") if len(samples) > 1 else samples
    data["summary"] = {"samples": len(samples), "p50_ms": statistics.median(samples),
                       "p95_ms": q[-1] if len(samples) > 1 else samples[0],
                       "max_ms": samples[-1]}
    BENCH.parent.mkdir(parents=True, exist_ok=True)
    BENCH.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
