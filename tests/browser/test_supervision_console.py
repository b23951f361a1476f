"""The supervisors' console in a real (headless) Chromium against the real stack:
a supervisor (a021) signs in, sees a live SIPp call to agent a014, listens to it
from their (SIPp) phone and forces an agent's pause with a reason, and both are
audited; an agent's account cannot open the console."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from ari_app.desktop.accounts import set_password
from tests.browser.conftest import by_testid
from tests.browser.test_desktop import sign_in, wait_until
from tests.integration.conftest import agents, nothing_left_behind, stack  # noqa: F401
from tests.support.stackfix import Agents, StackUnderTest, app_config

pytestmark = [pytest.mark.browser, pytest.mark.integration]
PASSWORD = {"a021": "a021 console password", "a014": "a014 desk password"}
ROLES = {"a021": "supervisor", "a014": "agent"}


@pytest.fixture(scope="module")
def console(stack: StackUnderTest) -> Iterator[str]:  # noqa: F811
    s = stack.stack
    creds = s.dir / "secrets" / "console-users.json"
    creds.unlink(missing_ok=True)
    for user, pw in PASSWORD.items():
        set_password(creds, user, pw, ROLES[user], list(PASSWORD))  # type: ignore[arg-type]
    with app_config(stack, desktop={"credentials_file": str(creds)}):
        yield s.app_url


def audit_lines(browser: WebDriver) -> list[str]:
    return [e.text for e in browser.find_elements(By.CSS_SELECTOR,
                                                  '[data-testid="audit-entry"]')]


def test_console_shows_the_live_call_acts_and_audits(
        console: str, browser: WebDriver, stack: StackUnderTest,  # noqa: F811
        agents: Agents) -> None:  # noqa: F811
    agents.phone("a014", "answer")
    sup_phone = agents.phone("a021", "answer")
    agents.login("a014", "a016")

    async def go() -> None:
        await sign_in(browser, f"{console}/desktop", "a021", PASSWORD["a021"])
        await wait_until(browser, lambda: by_testid(browser, "desk-user").text == "a021",
                         "signed in as a021")
        await asyncio.to_thread(browser.get, f"{console}/supervision?lang=ar")
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("dir") == "rtl"
        await asyncio.to_thread(browser.get, f"{console}/supervision")
        await wait_until(browser, lambda: by_testid(browser, "sup-user").text == "a021",
                         "the console for a021")
        row = await wait_until(browser, lambda: browser.find_element(
            By.CSS_SELECTOR, 'tr[data-agent="a014"]'), "the live call of a014", 30)
        call_id = row.get_attribute("data-testid").removeprefix("call-")
        by_testid(browser, f"listen-{call_id}").click()
        await wait_until(browser, lambda: any(f"a021 listen {call_id}" in line
                                              for line in audit_lines(browser)),
                         "the listen audited", 30)
        assert "(" in browser.find_element(
            By.CSS_SELECTOR, f'[data-testid="call-{call_id}"]').text  # supervised (mode)
        by_testid(browser, "force-reason").send_keys("coaching session")
        by_testid(browser, "pause-a016").click()
        await wait_until(browser, lambda: any("a021 pause a016 — coaching session" in line
                                              for line in audit_lines(browser)),
                         "the forced pause audited")

    with ThreadPoolExecutor(1) as pool:
        caller = pool.submit(stack.call, "wait:400,dtmf:2,wait:24000,hangup", None, "1091")
        asyncio.run(go())
        res, number = caller.result(timeout=90)
    assert res.ok, res.stderr
    assert str(agents.status("a016").state) == "paused"
    rec = stack.record_for(number)
    assert [(a["supervisor"], a["action"]) for a in rec["supervision"]][:1] == [
        ("a021", "listen")], rec["supervision"]
    deadline = time.monotonic() + 10
    while "BYE sip:" not in sup_phone.messages() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "BYE sip:" in sup_phone.messages()  # the call's end hung the supervisor up


def test_an_agent_cannot_open_the_console(console: str, browser: WebDriver) -> None:
    async def go() -> None:
        await asyncio.to_thread(browser.delete_all_cookies)
        await sign_in(browser, f"{console}/desktop", "a014", PASSWORD["a014"])
        await wait_until(browser, lambda: by_testid(browser, "desk-user").text == "a014",
                         "signed in as a014")
        await asyncio.to_thread(browser.get, f"{console}/supervision")
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "supervisor" in body and "a014" in body, body  # the 403's reason
        assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="calls"]')
        status = browser.execute_async_script("""
            const done = arguments[0];
            fetch('/supervision/api/state').then(r => done(r.status));""")
        assert status == 403

    asyncio.run(go())
