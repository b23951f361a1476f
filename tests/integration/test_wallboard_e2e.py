"""Issue 5: the wallboard, in real headless Chromium, counting a real SIPp caller."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import browser, text_of  # noqa: F401 - the fixture
from tests.support.stackfix import Agents, StackUnderTest, resume

pytestmark = pytest.mark.browser  # and integration, as every test under tests/integration


def _wait_text(driver: WebDriver, testid: str, want: str | None, timeout: float = 15) -> None:
    WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: text_of(d, testid) == want,
        message=f"{testid} never showed {want!r} (last {text_of(driver, testid)!r})")


def _wait_snapshot(driver: WebDriver, after: str, timeout: float = 15) -> str:
    """The `updated-at` clock once a snapshot set it to a time other than `after`."""
    def changed(d: WebDriver) -> str | bool:
        now = text_of(d, "updated-at") or ""
        return now if re.fullmatch(r"\d\d:\d\d:\d\d", now) and now != after else False

    found: str = WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        changed, message=f"no snapshot from the stream changed updated-at from {after!r}")
    return found


def test_wallboard_counts_a_waiting_caller_then_the_answer(
        stack: StackUnderTest, agents: Agents, browser: WebDriver) -> None:  # noqa: F811
    agents.phone("a014", "answer")
    agents.login("a014")
    agents.pause("a014")
    browser.get(f"http://127.0.0.1:{stack.stack.ports.app_http}/wallboard")
    # only a snapshot off the stream sets the clock: two different readings prove the
    # stream delivered data and keeps delivering it (an open stream alone reads "Live")
    first = _wait_snapshot(browser, "--:--:--")
    _wait_snapshot(browser, first)
    _wait_text(browser, "conn-status", "Live")
    WebDriverWait(browser, 15).until(lambda d: (text_of(d, "today-answered") or "–") != "–")
    answered_before = int(text_of(browser, "today-answered") or 0)
    with ThreadPoolExecutor(1) as ex:
        call = ex.submit(stack.call, "wait:400,dtmf:2,wait:9000,hangup", None, "1091")
        _wait_text(browser, "waiting-count-phcc", "1")
        resume(agents, "a014")
        _wait_text(browser, "today-answered", str(answered_before + 1))
        _wait_text(browser, "waiting-count-phcc", None)
        res, caller = call.result()
    assert res.ok, res.stderr
    assert stack.record_for(caller)["outcome"] == "answered"
