"""The wallboard in a real (headless) Chromium, over a WebServer and real Redis state.

No SIPp call, Asterisk or app here (tests/integration/test_wallboard_e2e.py places one):
these are `browser` tests, run by `make test` and `pytest -m browser`.

Asserted from the DOM through stable data-testid attributes; screenshots go to
docs/img/ for the documentation.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from ari_app.agents.pool import CandidateQuery
from tests.browser.conftest import by_testid, text_of, wait_testid
from tests.unit.test_web_server import Stack, web_stack

# a real browser over a real Redis and web server; no call is placed, so not integration
pytestmark = pytest.mark.browser

IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


async def open_page(browser: WebDriver, url: str) -> None:
    await asyncio.to_thread(browser.get, url)
    await wait_testid(browser, "conn-status", "Live" if "lang=ar" not in url else "مباشر")


async def test_waiting_caller_then_answered(browser: WebDriver, redis_url: str) -> None:
    async with web_stack(redis_url) as st:
        await st.waiting.join("phcc", "c1", "ar", arrival=time.time() - 25)
        await st.pool.login("a001")
        st.counters.queued_call("phcc")
        await open_page(browser, st.url + "/wallboard")
        await wait_testid(browser, "waiting-count-phcc", "1")
        await wait_testid(browser, "waiting-total", "1")
        assert text_of(browser, "waiting-name-phcc") == "Primary Health Care Corporation"
        assert text_of(browser, "today-offered") == "1"
        assert text_of(browser, "today-answered") == "0"
        assert text_of(browser, "site-doha_hq-available") == "1"
        assert text_of(browser, "waiting-empty") == ""  # hidden
        longest = text_of(browser, "waiting-longest-phcc") or ""
        assert longest.startswith("0:2") or longest.startswith("0:3"), longest

        # an agent answers: the caller leaves the queue, today's answered goes up
        assert await st.waiting.remove("phcc", "c1")
        st.counters.answered(26.0)
        await wait_testid(browser, "waiting-total", "0")
        await wait_testid(browser, "today-answered", "1")
        await wait_testid(browser, "waiting-row-phcc", None)
        assert text_of(browser, "waiting-empty") == "Nobody is waiting"
        assert text_of(browser, "today-asa") == "26 s"
        assert text_of(browser, "today-service-level") == "0%"


async def busy_floor(st: Stack) -> None:
    """A plausible mid-morning: agents in every state, callers waiting at several entities."""
    cfg, pool = st.cfg, st.pool
    for i, a in enumerate(cfg.agents):
        if i % 5 in (0, 1):
            await pool.login(a.id)
    langs = ("ar", "en")
    skills = sorted({s for a in cfg.agents for s in a.skills})
    calls = []
    for n in range(64):
        offer = await pool.take(CandidateQuery((skills[n % len(skills)],), langs), f"call-{n}")
        if offer is not None:
            calls.append((offer.agent.id, f"call-{n}"))
    for k, (agent_id, call) in enumerate(calls):
        if k % 12 == 11:
            continue  # still ringing
        await pool.answered(agent_id, call)
        if k % 5 == 4:
            await pool.release(agent_id, 600, call)
    logged = [a.id for i, a in enumerate(cfg.agents) if i % 5 in (0, 1)]
    for agent_id in logged[-12:]:
        await pool.pause(agent_id, "break")
    for agent_id in logged[-16:-13]:
        await pool.set_reachable(agent_id, False)
    now = time.time()
    queues = {"phcc": (4, 95), "moi": (2, 35), "hmc": (1, 8), "qcb": (3, 15)}
    for entity, (n, oldest) in queues.items():
        for k in range(n):
            await st.waiting.join(entity, f"w-{entity}-{k}", "ar", arrival=now - oldest + 3 * k)
    c = st.counters
    for k in range(1240):
        c.queued_call("phcc")
        if k < 1127:
            c.answered(4 + (k % 23))
        elif k < 1179:
            c.abandoned_in_queue(40)
    for _ in range(61):
        c.abandoned_in_menu()
    c.set_in_menus(9)


async def test_screenshots_english_and_arabic(browser: WebDriver, redis_url: str) -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    async with web_stack(redis_url) as st:
        await busy_floor(st)
        await open_page(browser, st.url + "/wallboard")
        await wait_testid(browser, "waiting-count-phcc", "4")
        await wait_testid(browser, "waiting-total", "10")
        assert text_of(browser, "today-answered") == "1127"
        assert await asyncio.to_thread(browser.save_screenshot, str(IMG / "wallboard-en.png"))

        await open_page(browser, st.url + "/wallboard?lang=ar")
        html = await asyncio.to_thread(browser.find_element, "css selector", "html")
        assert html.get_attribute("dir") == "rtl" and html.get_attribute("lang") == "ar"
        await wait_testid(browser, "waiting-name-phcc", "مؤسسة الرعاية الصحية الأولية")
        assert text_of(browser, "waiting-empty") == ""
        # right-to-left: the entity column starts at the right edge of its table
        name = by_testid(browser, "waiting-name-phcc")
        count = by_testid(browser, "waiting-count-phcc")
        assert name.location["x"] > count.location["x"]
        assert await asyncio.to_thread(browser.save_screenshot, str(IMG / "wallboard-ar.png"))
