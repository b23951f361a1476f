"""A headless Chromium driven by Selenium, for browser tests of the web pages.

Uses Debian's `chromium` and `chromium-driver` (apt-get install -y chromium
chromium-driver) through an explicit Service path, so Selenium Manager never
tries to download a browser or a driver. Each session gets a fresh profile
directory and a 1920x1080 window (a wall screen).

Selenium calls block: from an async test whose server runs on the same event
loop, call them through `asyncio.to_thread` (see `wait_testid`).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"


def chrome_options(
    profile: Path, *, width: int = 1920, height: int = 1080
) -> webdriver.ChromeOptions:
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--no-default-browser-check", "--disable-extensions",
        "--hide-scrollbars", "--force-device-scale-factor=1",
        f"--window-size={width},{height}", f"--user-data-dir={profile}",
    ):
        opts.add_argument(arg)
    return opts


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """One headless Chromium for the session (fresh profile); pages are loaded per test."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install -y chromium chromium-driver")
    assert shutil.which(CHROMEDRIVER)
    driver = webdriver.Chrome(
        service=Service(CHROMEDRIVER),
        options=chrome_options(tmp_path_factory.mktemp("chromium-profile")),
    )
    driver.set_page_load_timeout(20)
    # the viewport itself is a 1080p wall screen (the window size includes browser chrome)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": False})
    try:
        yield driver
    finally:
        driver.quit()


def by_testid(driver: WebDriver, testid: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]')


def text_of(driver: WebDriver, testid: str) -> str | None:
    """The element's text, or None; the page re-renders every second, so an element
    found a moment ago may be gone: that reads as "not there yet" and is polled again."""
    try:
        found = driver.find_elements(By.CSS_SELECTOR, f'[data-testid="{testid}"]')
        return found[0].text.strip() if found else None
    except StaleElementReferenceException:
        return None


async def wait_testid(driver: WebDriver, testid: str, text: str | None,
                      timeout: float = 10.0) -> None:
    """Until the element's visible text is `text` (None: until no such element)."""
    def until() -> None:
        WebDriverWait(driver, timeout, poll_frequency=0.1).until(
            lambda d: text_of(d, testid) == text,
            message=f"[data-testid={testid}] never showed {text!r} "
                    f"(last: {text_of(driver, testid)!r})",
        )
    await asyncio.to_thread(until)
