"""Issue 5: every call's record reaches the SQLite archive, even across an archiver outage."""

from __future__ import annotations

import sqlite3
import time

from tests.support.stackfix import Agents, StackUnderTest

PHCC_EN = "wait:400,dtmf:2"


def _archived(stack: StackUnderTest, callers: list[str], timeout: float = 20) -> dict[str, str]:
    """caller -> outcome for those callers once all are in the archive."""
    deadline = time.monotonic() + timeout
    found: dict[str, str] = {}
    while time.monotonic() < deadline:
        if stack.stack.archive.exists():
            con = sqlite3.connect(f"file:{stack.stack.archive}?mode=ro", uri=True)
            try:
                marks = ",".join("?" * len(callers))
                found = dict(con.execute(
                    f"SELECT caller, outcome FROM calls WHERE caller IN ({marks})", callers))
            except sqlite3.OperationalError:
                found = {}
            finally:
                con.close()
            if len(found) == len(callers):
                return found
        time.sleep(0.2)
    return found


def test_each_outcome_reaches_the_archive(stack: StackUnderTest, agents: Agents) -> None:
    expected: dict[str, str] = {}
    _, c = stack.call("wait:400,dtmf:2,wait:1000,hangup")
    expected[c] = "abandoned_in_menu"
    _, c = stack.call(f"{PHCC_EN},expect_bye:30000", number="1091")
    expected[c] = "no_agent_fallback"
    agents.phone("a014", "answer")
    agents.login("a014")
    agents.pause("a014")
    _, c = stack.call(f"{PHCC_EN},wait:3000,hangup", number="1091")
    expected[c] = "abandoned_in_queue"
    from tests.support.stackfix import resume

    resume(agents, "a014")
    _, c = stack.call(f"{PHCC_EN},wait:3000,hangup", number="1091")
    expected[c] = "answered"
    assert _archived(stack, list(expected)) == expected


def test_stopping_the_archiver_loses_nothing(stack: StackUnderTest) -> None:
    s = stack.stack
    s.stop("archiver")
    callers = []
    try:
        for _ in range(2):
            res, c = stack.call("wait:400,dtmf:2,wait:800,hangup")
            assert res.ok, res.stderr
            callers.append(c)
        # the app kept taking calls and published both records to the stream
        assert all(stack.records_for(c) for c in callers)
        assert _archived(stack, callers, timeout=1) == {}
    finally:
        s.start_archiver()
    assert _archived(stack, callers) == dict.fromkeys(callers, "abandoned_in_menu")
