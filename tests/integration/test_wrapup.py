"""Wrap-up and pause reasons on the real stack: a call answered by a SIPp agent is
tagged after hang-up and reaches the archive and `hotline report` once; an
untagged wrap-up that times out records no_reason_given; a pause with a reason
digit dialled from the agent's phone shows under that reason in the agent report."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.integration.test_hostile_journey import run_scenario
from tests.support.sipp import SIPP_DIR
from tests.support.stackfix import Agents, StackUnderTest

PHCC_EN = "wait:400,dtmf:2"  # English, then Primary Health Care (number 1091)
AGENT = "a014"
T = TypeVar("T")

# an authenticated agent phone dials a feature code: the app answers, beeps, hangs up
FEATURE_XML = (SIPP_DIR / "agent_dial.xml").read_text().replace("@CODE@", "200").replace(
    "</scenario>", """  <recv request="BYE"/>
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
</scenario>""")


def dial_feature(stack: StackUnderTest, agent: str, code: str) -> None:
    pw = (stack.stack.dir / f"secrets/agents/{agent}.secret").read_text().strip()
    proc = run_scenario(stack.sip_port, FEATURE_XML.replace("@AGENT@", f"agent-{agent}"),
                        service=code, timeout=20,
                        extra=["-au", f"agent-{agent}", "-ap", pw])
    assert proc.returncode == 0, proc.stdout[-800:]


def with_services(stack: StackUnderTest, agents: Agents,
                  fn: Callable[[Any, Any, Any], Awaitable[T]]) -> T:
    """Run fn(pool, wrapups, history) against the stack's Redis, as the desktop would."""
    import redis.asyncio as aioredis

    from ari_app.agents.history import AgentHistory
    from ari_app.agents.pool import AgentPool
    from ari_app.agents.wrapup import WrapUps
    from ari_app.records.stream import RecordStream

    async def go() -> T:
        r = aioredis.from_url(f"redis://127.0.0.1:{stack.stack.ports.redis}/0")
        try:
            pool = AgentPool(r, agents.cfg.agents)
            spool = Path(tempfile.mkdtemp(prefix="wrapup-spool-")) / "spool.jsonl"
            wu = WrapUps(pool, RecordStream(r, "hotline", spool_path=spool),
                         agents.cfg.agent_work)
            return await fn(pool, wu, AgentHistory(r))
        finally:
            await r.aclose()

    return asyncio.run(go())


def archived(stack: StackUnderTest, sql: str, args: tuple[Any, ...], ok: Callable[[Any], bool],
             timeout: float = 20) -> Any:
    """The first result of `sql` on the stack's archive that satisfies `ok` (polled)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if stack.stack.archive.exists():
            con = sqlite3.connect(f"file:{stack.stack.archive}?mode=ro", uri=True)
            try:
                last = con.execute(sql, args).fetchall()
            except sqlite3.OperationalError:
                last = None
            finally:
                con.close()
            if last is not None and ok(last):
                return last
        time.sleep(0.2)
    raise AssertionError(f"archive never satisfied the check: {sql} {args} -> {last!r}")


def report(stack: StackUnderTest, *args: str) -> dict[str, Any]:
    today = datetime.now(UTC).date().isoformat()
    out = subprocess.run(
        [sys.executable, "-m", "ari_app", "report", "--from", today, "--to", today, "--tz",
         "UTC", "--format", "json", "--db", str(stack.stack.archive), *args],
        capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def complaints(stack: StackUnderTest) -> int:
    rows = report(stack, "--kind", "reasons", "--entity", "phcc")["rows"]
    return sum(r["complaint"] for r in rows)


def test_a_complaint_tagged_after_hang_up_is_archived_once_and_reported(
        stack: StackUnderTest, agents: Agents) -> None:
    agents.phone(AGENT, "answer")
    agents.login(AGENT)
    before = complaints(stack)
    t0 = int(time.time() * 1000)  # the stack's archive outlives a session: look from here

    async def scenario(pool: Any, wu: Any, hist: Any) -> tuple[Any, str]:
        async with (hist.subscribed() as live, asyncio.timeout(60),
                    asyncio.TaskGroup() as tg):
            calling = tg.create_task(asyncio.to_thread(
                stack.call, f"{PHCC_EN},wait:3000,hangup", None, "1091"))
            async for ch in live:  # the agent's wrap-up begins once the caller hangs up
                if ch.agent == AGENT and ch.kind == "wrapup":
                    break
            # the test config's 2 s wrap-up is stretched so the tag and *25 land in it
            assert await wu.extend(AGENT, 60) > time.time() + 30
            await wu.tag(AGENT, ch.call, "complaint", None, "<b>rude</b>\x07 reply")
        res, _caller = calling.result()
        return res, str(ch.call)

    res, call_id = with_services(stack, agents, scenario)
    assert res.ok, res.stderr
    dial_feature(stack, AGENT, "*25")  # wrap-up done from the phone
    deadline = time.monotonic() + 10
    while str(agents.status(AGENT).state) != "available":
        assert time.monotonic() < deadline, agents.status(AGENT)
        time.sleep(0.1)
    row = archived(stack, "SELECT reason, note, tagged_by, entity FROM calls WHERE call_id = ?",
                   (call_id,), lambda r: bool(r) and r[0][0] is not None)
    assert row == [("complaint", "<b>rude</b> reply", AGENT, "phcc")]
    late = archived(stack, "SELECT kind, source FROM events WHERE call_id = ? "
                    "AND source <> 'call'", (call_id,), lambda r: bool(r))
    assert late == [("tagged", "wrapup")]  # once, and no "no reason" after a tagged wrap-up
    done = archived(stack, "SELECT data FROM agent_events WHERE agent = ? AND at_ms >= ? "
                    "AND kind = 'wrapup_done'", (AGENT, t0), lambda r: bool(r))
    assert len(done) == 1 and "noreason" not in done[0][0]  # the wrap-up had its tag
    assert complaints(stack) == before + 1


def test_an_untagged_wrapup_that_times_out_records_no_reason_given(
        stack: StackUnderTest, agents: Agents) -> None:
    agents.phone(AGENT, "answer")
    agents.login(AGENT)
    res, caller = stack.call(f"{PHCC_EN},wait:3000,hangup", number="1091")
    assert res.ok, res.stderr
    call_id = stack.record_for(caller)["call_id"]
    # nobody touches the pool: the app's wrap-up timer ends it (test config: 2 s)
    row = archived(stack, "SELECT reason, tagged_by FROM calls WHERE call_id = ?", (call_id,),
                   lambda r: bool(r) and r[0][0] is not None)
    assert row == [("no_reason_given", AGENT)]
    kinds = archived(stack, "SELECT kind FROM agent_events WHERE agent = ? AND at_ms >= "
                     "(SELECT MAX(at_ms) FROM agent_events WHERE agent = ? AND kind = 'on_call')"
                     " ORDER BY at_ms", (AGENT, AGENT), lambda r: len(r) >= 3)
    assert [k for (k,) in kinds[:3]] == ["on_call", "wrapup", "wrapup_timeout"]


def test_a_pause_with_a_reason_digit_shows_under_that_reason(
        stack: StackUnderTest, agents: Agents) -> None:
    agents.phone(AGENT, "answer")
    agents.login(AGENT)
    before = prayer(stack)  # the stack's archive outlives a session: count from here
    t0 = int(time.time() * 1000)
    dial_feature(stack, AGENT, "*232")  # digit 2: prayer (config agent_work.pause_reasons)
    st = agents.status(AGENT)
    assert str(st.state) == "paused" and st.reason == "prayer", st
    dial_feature(stack, AGENT, "*24")
    assert str(agents.status(AGENT).state) == "available"
    dial_feature(stack, AGENT, "*239")  # no reason has digit 9: refused, state unchanged
    assert str(agents.status(AGENT).state) == "available"
    spans = archived(
        stack, "SELECT kind, at_ms FROM agent_events WHERE agent = ? AND at_ms >= ? "
        "AND kind IN ('paused', 'resume') ORDER BY at_ms", (AGENT, t0),
        lambda r: [k for k, _ in r] == ["paused", "resume"])
    paused_s = (spans[1][1] - spans[0][1]) / 1000
    assert paused_s > 0
    assert prayer(stack) == pytest.approx(before + paused_s, abs=0.01)


def prayer(stack: StackUnderTest) -> float:
    """The agent's prayer pause time today in the agent report (and the same in total)."""
    rep = report(stack, "--kind", "agents", "--agent", AGENT)
    mine = rep["by_agent"][0]["pause_by_reason"].get("prayer", 0.0) if rep["by_agent"] else 0.0
    assert rep["totals"]["pause_by_reason"].get("prayer", 0.0) == mine
    return float(mine)
