"""docker/'s images, built and run with podman: one SIPp call through the
composed stack (Redis, Asterisk, the app, the archiver, each in its container)
reaches the archive. `make test-containers` runs it (scripts/containers.py
builds the images first); `make test` skips it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scripts import containers as ct
from tests.support.sipp import run_caller

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.environ.get("HOTLINE_CONTAINERS"),
                       reason="builds and runs the images: `make test-containers`"),
]


@pytest.fixture(scope="module")
def composed() -> Iterator[ct.Ports]:
    missing = [ct.image(n) for n in ("app", "redis", f"asterisk-{ct.SITE}")
               if not ct.image_exists(ct.image(n))]
    assert not missing, f"images not built ({', '.join(missing)}): scripts/containers.py build"
    t0 = time.monotonic()
    try:
        ct.up()
        print(f"\n[containers] stack up in {time.monotonic() - t0:.1f}s")
        yield ct.ports()
    finally:
        t1 = time.monotonic()
        ct.down(quiet=True)
        print(f"\n[containers] stack down in {time.monotonic() - t1:.1f}s")
    assert ct.ours() == [], "containers left running"


def _archived(caller: str, timeout: float = 30) -> dict[str, object]:
    """The caller's record as the archiver stored it, read back with the image's
    own `hotline records export` (waits for the archiver to move it)."""
    today = datetime.now(UTC).date()
    span = (str(today - timedelta(days=1)), str(today + timedelta(days=1)))
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in ct.export_records(*span) if r.get("caller") == caller]
        if found:
            return found[-1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no archived record for caller {caller} after {timeout}s")
        time.sleep(0.5)


def _no_leftovers(timeout: float = 10) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        left = {what: ct.ari("GET", what)[1] for what in ("channels", "bridges")}
        for what, body in left.items():
            assert isinstance(body, list), f"ARI GET {what}: not a list ({body!r})"
        if not any(left.values()) or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def test_a_call_through_the_containers_reaches_the_archive(
        composed: ct.Ports, tmp_path: Path) -> None:
    caller = f"974{int(time.time()) % 100_000_000:08d}"
    # Arabic menu greets, English (2) chosen, then the caller hangs up in the menu
    res = run_caller(composed.sip, "wait:400,dtmf:2,wait:1000,hangup", caller=caller,
                     timeout=60, workdir=tmp_path)
    assert res.ok, f"SIPp: {res.stdout}\n{res.stderr}"
    record = _archived(caller)
    assert record["outcome"] == "abandoned_in_menu", record
    assert record["language"] == "en", record
    # it went through the containers: their Asterisk and their app, not a rig stack
    assert ct.running("asterisk") and ct.running("app") and ct.running("archiver")
    left = _no_leftovers()
    assert not any(left.values()), f"left behind in the containers' Asterisk: {left}"
