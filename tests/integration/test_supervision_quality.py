"""Supervision and quality with real SIPp callers and agents on the real Asterisk:
an answered call is recorded by Asterisk (a bridge recording) into a file named
by the call id, and retention deletes it later, leaving a late fact on the call;
when the agent hangs up first the caller answers the post-call survey, whose
score reaches the archive and `hotline report`."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.recovery import until
from tests.support.stackfix import Agents, StackUnderTest, app_config

PHCC_EN = "wait:400,dtmf:2"  # 1091 is the PHCC line; 2 picks English


def recordings_dir(stack: StackUnderTest) -> Path:
    """Asterisk's recording spool of the test stack, as the host sees it (the
    chroot's instance dir: astspooldir is <instance>/spool)."""
    return stack.stack.inst / "spool" / "recording"


@pytest.fixture(scope="module")
def supervised(stack: StackUnderTest) -> Iterator[StackUnderTest]:
    settings = {"recording": {"share": 100, "directory": str(recordings_dir(stack)),
                              "retention_days": 1, "retention_check_seconds": 1},
                "survey": {"entities": ["phcc"], "questions": 1, "answer_timeout": 3}}
    with app_config(stack, supervision=settings):
        yield stack


def events_of(stack: StackUnderTest, call_id: str) -> list[dict[str, Any]]:
    r = redis.Redis(port=stack.stack.ports.redis)
    try:
        out = []
        for _id, fields in r.xrange("{hotline}:records"):
            if b"event" in fields:
                ev = json.loads(fields[b"event"])
                if ev["call_id"] == call_id:
                    out.append(ev)
        return out
    finally:
        r.close()


def duration(path: Path, timeout: float = 10.0) -> float:
    """The file's length by soxi, once Asterisk has finished writing it."""
    deadline = time.monotonic() + timeout
    last = -1.0
    while True:
        proc = subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True)
        if proc.returncode == 0:
            now = float(proc.stdout.strip())
            if now == last and now > 0:
                return now
            last = now
        if time.monotonic() > deadline:
            raise AssertionError(f"{path}: no stable length in {timeout}s ({proc.stderr})")
        time.sleep(0.3)


def test_answered_call_is_recorded_then_retention_deletes_it(
        supervised: StackUnderTest, agents: Agents) -> None:
    stack = supervised
    agents.phone("a014", "answer")  # waits for the hotline's BYE
    agents.login("a014")
    res, caller = stack.call(f"{PHCC_EN},wait:6000,hangup", number="1091")
    assert res.ok, res.stderr
    rec = stack.record_for(caller)
    assert rec["outcome"] == "answered" and rec["agent"] == "a014", rec
    call_id = rec["call_id"]
    assert rec["recording"] == f"hotline/{call_id}.wav"
    kinds = [e["kind"] for e in events_of(stack, call_id)]
    assert "recording_started" in kinds, kinds
    path = recordings_dir(stack) / rec["recording"]
    until(f"{path} exists", path.exists)
    length = duration(path)
    # the file holds the conversation: caller and agent bridged until the hang-up
    assert abs(length - rec["talk_seconds"]) <= 0.5, (length, rec["talk_seconds"])

    # retention: a file past the limit (1 day here) is deleted by the app's job,
    # and the call gains a late fact that says when
    old = time.time() - 2 * 86_400
    os.utime(path, (old, old))
    until(f"{path} deleted", lambda: not path.exists())
    deleted = until("recording_deleted event", lambda: [
        e for e in events_of(stack, call_id) if e["kind"] == "recording_deleted"])
    assert deleted[0]["source"] == "retention"
    later = stack.record_for(caller)
    assert later["recording_deleted_at"] == deleted[0]["data"]["set"]["recording_deleted_at"]
    assert later["recording"] == rec["recording"]  # the call still says it was recorded


def archived(stack: StackUnderTest, call_id: str, *cols: str, timeout: float = 20) -> tuple:  # type: ignore[type-arg]
    """The call's archived columns once its survey has been folded in."""
    def row() -> tuple | None:  # type: ignore[type-arg]
        if not stack.stack.archive.exists():
            return None
        con = sqlite3.connect(f"file:{stack.stack.archive}?mode=ro", uri=True)
        try:
            return con.execute(f"SELECT {', '.join(cols)} FROM calls WHERE call_id = ? "
                               "AND survey_result IS NOT NULL", (call_id,)).fetchone()
        except sqlite3.OperationalError:
            return None
        finally:
            con.close()
    return until(f"archived survey of {call_id}", row, timeout)


def test_survey_answered_with_4_is_archived_and_reported(
        supervised: StackUnderTest, agents: Agents) -> None:
    stack = supervised
    agents.phone("a014", "answer_hangup", talk_ms=1500)  # the agent hangs up first
    agents.login("a014")
    # the caller stays; 4 is pressed while the question plays (barge-in)
    res, caller = stack.call(f"{PHCC_EN},wait:8000,dtmf:4,expect_bye:30000", number="1091")
    assert res.ok, res.stderr
    rec = stack.record_for(caller)
    assert rec["outcome"] == "answered" and rec["hangup_by"] == "agent", rec
    assert (rec["survey_q1"], rec["survey_result"]) == (4, "answered"), rec
    assert any(p.endswith("survey-q1") for p in rec["prompts"]), rec["prompts"]
    assert archived(stack, rec["call_id"], "survey_q1", "survey_result", "agent",
                    "entity") == (4, "answered", "a014", "phcc")
    day = rec["arrived_at"][:10]  # in Qatar (UTC+3) the same day unless near midnight
    out = subprocess.run(
        [sys.executable, "-m", "ari_app", "report", "--from", day, "--to", day, "--tz", "UTC",
         "--db", str(stack.stack.archive), "--format", "json"],
        capture_output=True, text=True, timeout=60, check=True)
    survey = json.loads(out.stdout)["survey"]
    for dim, key in (("entity", "phcc"), ("agent", "a014"), ("language", "en")):
        row = next(r for r in survey[dim] if r["key"] == key)
        # every answered survey in this module pressed 4
        assert row["answered"] >= 1 and row["q1_average"] == 4.0, (dim, row)


def test_survey_without_an_answer_ends_the_call_politely(
        supervised: StackUnderTest, agents: Agents) -> None:
    stack = supervised
    agents.phone("a014", "answer_hangup", talk_ms=1000)
    agents.login("a014")
    res, caller = stack.call(f"{PHCC_EN},expect_bye:40000", number="1091")
    assert res.ok, res.stderr  # the hotline hung up on the silent caller
    rec = stack.record_for(caller)
    assert rec["outcome"] == "answered" and rec["hangup_by"] == "agent", rec
    assert (rec["survey_q1"], rec["survey_result"]) == (None, "no_answer"), rec
    assert rec["prompts"][-1].endswith("goodbye"), rec["prompts"][-3:]
    assert archived(stack, rec["call_id"], "survey_result") == ("no_answer",)
