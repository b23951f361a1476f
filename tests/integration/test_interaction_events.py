"""A real call's record is a sequence of events with ids: the app emits them as
things happen, the archiver folds them, and a late fact (a call reason tagged
after the call) updates the archived call exactly once."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import redis

from ari_app.records.events import RecordEvent, fold, late_fact
from tests.support.stackfix import Agents, StackUnderTest

PHCC_EN = "wait:400,dtmf:2"
STREAM = "{hotline}:records"


def _events(stack: StackUnderTest, call_id: str) -> list[RecordEvent]:
    r = redis.Redis(port=stack.stack.ports.redis)
    try:
        out = []
        for _id, fields in r.xrange(STREAM):
            if b"event" in fields:
                ev = RecordEvent.model_validate_json(fields[b"event"])
                if ev.call_id == call_id:
                    out.append(ev)
        return out
    finally:
        r.close()


def _archived(stack: StackUnderTest, call_id: str, want: Any, timeout: float = 20) -> Any:
    """(calls row as a dict, number of stored events) once `want(row, n)` holds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if stack.stack.archive.exists():
            con = sqlite3.connect(f"file:{stack.stack.archive}?mode=ro", uri=True)
            con.row_factory = sqlite3.Row
            try:
                row = con.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)).fetchone()
                n = con.execute("SELECT COUNT(*) FROM events WHERE call_id = ?",
                                (call_id,)).fetchone()[0]
                last = (dict(row) if row else None, n)
            except sqlite3.OperationalError:
                last = None
            finally:
                con.close()
            if last is not None and last[0] is not None and want(*last):
                return last
        time.sleep(0.2)
    raise AssertionError(f"archive never showed what was expected for {call_id}: {last}")


def test_an_answered_call_is_its_events_and_a_late_reason_lands_once(
        stack: StackUnderTest, agents: Agents) -> None:
    agents.phone("a014", "answer")
    agents.login("a014")
    res, caller = stack.call(f"{PHCC_EN},wait:2500,hangup", number="1091")
    assert res.ok, res.stderr
    rec = stack.record_for(caller)
    events = _events(stack, rec["call_id"])
    kinds = [e.kind for e in events]
    # the story of the call, in order, each step once
    for kind in ("arrived", "language_chosen", "entity_chosen", "queued", "offered",
                 "agent_answered", "ended"):
        assert kinds.count(kind) == 1, kinds
    assert kinds[0] == "arrived" and kinds[-1] == "ended"
    assert kinds.index("queued") < kinds.index("offered") < kinds.index("agent_answered")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len({e.id for e in events}) == len(events)
    # the fold of the events is the record, in the app as in the archive
    folded = fold(events)
    assert folded is not None and folded.model_dump(mode="json") == rec
    row, n = _archived(stack, rec["call_id"], lambda row, n: n == len(events))
    assert row["outcome"] == "answered" and row["agent"] == "a014" and row["reason"] is None

    # a call reason tagged in wrap-up, delivered twice (a retry after a timeout)
    fact = late_fact(rec["call_id"], "tagged", "desktop", {"reason": "complaint"})
    r = redis.Redis(port=stack.stack.ports.redis)
    try:
        for _ in range(2):
            r.xadd(STREAM, {"event": fact.model_dump_json()})
    finally:
        r.close()
    row, n = _archived(stack, rec["call_id"], lambda row, n: row["reason"] == "complaint")
    assert n == len(events) + 1  # stored once
    assert row["outcome"] == "answered" and row["talk_seconds"] == rec["talk_seconds"]
