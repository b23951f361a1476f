"""The proof for records as events: the same calls archived as version 1 records
and as the version 2 events the app emits give the identical report.

The calls are the hand-checked set of tests/unit/test_reports_compute.py plus
calls that exercise what that set lacks (transfers, offers that ring out,
fallbacks out of a queue, a consult, a failure). Each call's events are built
the way a call builds them: a Recorder whose record is filled in step by step,
emitting at each step, so stints and offers reach the archive as list patches
(a stint first open, then closed) rather than as one finished record.
"""

from __future__ import annotations

import argparse
import json
import random
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from ari_app.records.archive import ALL_COLUMNS, Archive
from ari_app.records.archiver import Archiver
from ari_app.records.events import Recorder, RecordEvent, fold
from ari_app.records.model import CallRecord, Consult, Offer, QueueStint
from ari_app.records.stream import Published, RecordStream
from ari_app.reports import cli as reports_cli
from tests.unit.conftest import NewArchive
from tests.unit.test_reports_compute import CALLS

MORE: list[dict[str, Any]] = [
    # rang out at one agent, answered by the next, transferred to moph and answered there
    dict(call_id="t1", app="hotline", caller="55500001", dialled="109", entity="moph",
         language="ar", language_source="digit", entity_path=["main", "moph"], digits="12",
         prompts=["welcome", "lang", "main", "queue"], menu_retries=0, menu_seconds=8.0,
         arrived_at="2025-03-04T09:00:00.000Z", answered_at="2025-03-04T09:00:00.100Z",
         menu_left_at="2025-03-04T09:00:08.000Z", queue_joined_at="2025-03-04T09:00:10.000Z",
         offers=[Offer(agent="a001", site="doha", at="2025-03-04T09:00:12.000Z",
                       result="no_answer", ring_seconds=15.0),
                 Offer(agent="a002", site="doha", at="2025-03-04T09:00:28.000Z",
                       result="answered", ring_seconds=2.0),
                 Offer(agent="a010", site="wakra", at="2025-03-04T09:02:05.000Z",
                       result="answered", ring_seconds=3.0)],
         queue=[QueueStint(entity="phcc", joined_at="2025-03-04T09:00:10.000Z",
                           left_at="2025-03-04T09:00:30.000Z", result="transferred"),
                QueueStint(entity="moph", joined_at="2025-03-04T09:02:00.000Z",
                           left_at="2025-03-04T09:02:08.000Z", result="answered")],
         agent_answered_at="2025-03-04T09:00:30.000Z", agent="a002", site="doha",
         speed_of_answer=20.0, talk_seconds=262.0, wrapup_seconds=30.0, hangup_by="caller",
         outcome="answered", ended_at="2025-03-04T09:05:00.000Z"),
    # no agent could take moci: straight to the fallback
    dict(call_id="t2", entity="moci", language="en", language_source="remembered",
         arrived_at="2025-03-04T10:00:00.000Z", queue_joined_at="2025-03-04T10:00:09.000Z",
         queue=[QueueStint(entity="moci", joined_at="2025-03-04T10:00:09.000Z",
                           left_at="2025-03-04T10:00:09.500Z", result="fallback")],
         outcome="no_agent_fallback", hangup_by="app", ended_at="2025-03-04T10:00:40.000Z"),
    # hung up while an agent's phone rang
    dict(call_id="t3", entity="phcc", language="ar", language_source="default",
         arrived_at="2025-03-04T11:00:00.000Z", queue_joined_at="2025-03-04T11:00:10.000Z",
         offers=[Offer(agent="a003", site="wakra", at="2025-03-04T11:00:40.000Z",
                       result="caller_gone", ring_seconds=4.0)],
         queue=[QueueStint(entity="phcc", joined_at="2025-03-04T11:00:10.000Z",
                           left_at="2025-03-04T11:00:44.000Z", result="abandoned")],
         outcome="abandoned_in_queue", hangup_by="caller", ended_at="2025-03-04T11:00:44.000Z"),
    # answered, the agent consulted a supervisor and came back
    dict(call_id="t4", entity="mehe", language="en", language_source="digit",
         arrived_at="2025-03-05T08:00:00.000Z", queue_joined_at="2025-03-05T08:00:12.000Z",
         offers=[Offer(agent="a004", site="doha", at="2025-03-05T08:00:13.000Z",
                       result="answered", ring_seconds=1.5)],
         queue=[QueueStint(entity="mehe", joined_at="2025-03-05T08:00:12.000Z",
                           left_at="2025-03-05T08:00:15.000Z", result="answered")],
         agent_answered_at="2025-03-05T08:00:15.000Z", agent="a004", site="doha",
         speed_of_answer=3.0,
         consults=[Consult(at="2025-03-05T08:01:00.000Z", by="a004", target_kind="supervisor",
                           target="sup1", agent="s001", site="doha",
                           answered_at="2025-03-05T08:01:04.000Z",
                           ended_at="2025-03-05T08:01:30.000Z", result="returned")],
         talk_seconds=120.0, hangup_by="agent", outcome="answered",
         ended_at="2025-03-05T08:02:15.000Z"),
    # lost in the menus after two retries
    dict(call_id="t5", language="ar", language_source="digit", digits="9#9", menu_retries=2,
         entity_path=["main", "health"], sector="health", prompts=["welcome", "main", "retry"],
         arrived_at="2025-03-05T09:00:00.000Z", outcome="abandoned_in_menu", hangup_by="caller",
         ended_at="2025-03-05T09:00:31.000Z"),
    dict(call_id="t6", arrived_at="2025-03-05T10:00:00.000Z", outcome="failed",
         failure="ARI 500 on answer", hangup_by="app", ended_at="2025-03-05T10:00:00.500Z"),
]  # fmt: skip

ALL = [CallRecord.model_validate(c) for c in CALLS + MORE]
BY_ID = {c.call_id: c for c in ALL}


def as_v1(rec: CallRecord) -> CallRecord:
    return rec.model_copy(update={"schema_version": 1})


def as_call_emits(final: CallRecord) -> list[RecordEvent]:
    """The events a call emits on its way to `final`, one step at a time, the
    way the call path fills its record in (queue/states.py)."""
    arrived = {k: getattr(final, k) for k in (
        "call_id", "app", "channel_uniqueid", "linkedid", "caller", "dialled", "arrived_at",
        "answered_at")}  # fmt: skip
    r = Recorder(CallRecord.model_validate(arrived))
    rec = r.record
    r.emit("arrived")
    if final.language:
        rec.language, rec.language_source = final.language, final.language_source
        r.emit("language_chosen")
    for i, prompt in enumerate(final.prompts):  # each menu step plays one more prompt
        rec.prompts.append(prompt)
        rec.digits = final.digits[: i + 1]
        r.emit("menu")
    for k in ("entity_path", "sector", "entity", "digits", "menu_retries", "menu_left_at",
              "menu_seconds"):
        setattr(rec, k, getattr(final, k))
    if final.queue:
        rec.entity = final.queue[0].entity  # a transfer changes it later
    r.emit("menu")

    # the queue part, in the order it happened: (time, tie-break, step)
    steps: list[tuple[str, int, Callable[[], str]]] = []
    for i, stint in enumerate(final.queue):
        def join(i: int = i, stint: QueueStint = stint) -> str:
            if i:  # the agent transferred the call: the last stint says so
                rec.queue[i - 1] = final.queue[i - 1]
                rec.entity = stint.entity
            else:
                rec.queue_joined_at = final.queue_joined_at
            rec.queue.append(QueueStint(entity=stint.entity, joined_at=stint.joined_at))
            return "transferred" if i else "queued"

        def answer(i: int = i, stint: QueueStint = stint) -> str:
            rec.queue[i] = stint.model_copy(update={"result": "answered"})
            if rec.agent_answered_at is None:  # a transferred call is answered once
                for k in ("agent", "site", "agent_answered_at", "speed_of_answer"):
                    setattr(rec, k, getattr(final, k))
            return "agent_answered"

        steps.append((stint.joined_at, 0, join))
        if stint.result in ("answered", "transferred") and stint.left_at:
            steps.append((stint.left_at, 2, answer))
    for offer in final.offers:
        def offered(offer: Offer = offer) -> str:
            rec.offers.append(offer)
            return "offered"

        steps.append((offer.at, 1, offered))
    for j, consult in enumerate(final.consults):
        def consulted(consult: Consult = consult) -> str:
            rec.consults.append(Consult(at=consult.at, by=consult.by,
                                        target_kind=consult.target_kind, target=consult.target))
            return "consulted"

        def consult_over(j: int = j, consult: Consult = consult) -> str:
            rec.consults[j] = consult
            return "consulted"

        steps.append((consult.at, 0, consulted))
        steps.append((consult.ended_at or "", 2, consult_over))
    for _, _, step in sorted(steps, key=lambda s: (s[0], s[1])):
        r.emit(step())
    if final.queue_joined_at and not final.queue:
        rec.queue_joined_at = final.queue_joined_at
        r.emit("queued")
    if final.agent_answered_at and rec.agent_answered_at is None:
        for k in ("agent", "site", "agent_answered_at", "speed_of_answer"):
            setattr(rec, k, getattr(final, k))
        r.emit("agent_answered")

    rec.queue = [q.model_copy() for q in final.queue]  # stints that ended with the call
    for k in ("entity", "agent", "site", "speed_of_answer", "ended_at", "talk_seconds",
              "wrapup_seconds", "hangup_by", "outcome", "failure"):
        setattr(rec, k, getattr(final, k))
    r.emit("ended")
    assert rec == final, f"{final.call_id}: the replay does not rebuild the call"
    return r.take()


def test_the_replay_is_step_by_step_and_folds_back() -> None:
    for final in ALL:
        events = as_call_emits(final)
        assert fold(events) == final
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert events[0].kind == "arrived" and events[-1].kind == "ended"
    t1 = as_call_emits(BY_ID["t1"])
    # the phcc stint went out open, then came back closed as a patch of its own slot
    stint_patches = [e.data["lists"]["queue"] for e in t1 if "queue" in e.data.get("lists", {})]
    assert {"from": 0, "items": [{"entity": "phcc", "joined_at": "2025-03-04T09:00:10.000Z",
                                  "left_at": None, "result": None}]} in stint_patches
    assert any(p["from"] == 0 and p["items"][0]["result"] == "answered" for p in stint_patches)
    assert {e.kind for e in t1} >= {"arrived", "language_chosen", "menu", "queued", "offered",
                                    "agent_answered", "transferred", "ended"}


@pytest.fixture
async def r(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def drain(r: aioredis.Redis, prefix: str, archive: Archive) -> Archiver:
    a = Archiver(r, prefix, archive, batch=7, block_ms=10)  # small batches: calls span them
    await a.ensure_group()
    while await a.step():
        pass
    return a


def report_json(db: str, tmp_path: Path) -> dict[str, Any]:
    """`hotline report --format json` for March, as the CLI writes it."""
    p = argparse.ArgumentParser(prog="hotline")
    p.add_argument("--config")
    reports_cli.register(p.add_subparsers(dest="cmd", required=True))
    out = tmp_path / f"{uuid.uuid4().hex}.json"
    args = p.parse_args(["report", "--month", "2025-03", "--format", "json", "--tz", "UTC",
                         "--db", str(db), "--out", str(out)])  # fmt: skip
    assert args.func(args) == 0
    d: dict[str, Any] = json.loads(out.read_text())
    d.pop("generated_at")
    return d


def calls_rows(db: str) -> dict[str, tuple[Any, ...]]:
    """Every column but when it was written and the record's schema version."""
    skip = {"archived_at", "schema_version"}
    cols = [c for c in ALL_COLUMNS if c not in skip]
    with Archive(db) as a:
        rows = a.db.execute(f"SELECT {', '.join(cols)} FROM calls").fetchall()
    return {row[0]: tuple(row) for row in rows}


async def test_v1_records_and_v2_events_give_the_identical_report(
    new_archive: NewArchive, r: aioredis.Redis, tmp_path: Path,
) -> None:
    v1_db, v2_db = new_archive("v1"), new_archive("v2")

    p1 = f"t{uuid.uuid4().hex[:10]}"
    s1 = RecordStream(r, p1, spool_path=tmp_path / "s1.jsonl")
    for rec in ALL:
        assert await s1.publish(as_v1(rec)) is Published.STREAM
    with Archive(v1_db) as a:
        await drain(r, p1, a)
        assert a.count() == len(ALL) and a.count_events() == len(ALL)

    # The app publishes each call's events as it goes, calls interleaved; the
    # archiver sees them in whatever order the stream has them.
    p2 = f"t{uuid.uuid4().hex[:10]}"
    s2 = RecordStream(r, p2, spool_path=tmp_path / "s2.jsonl")
    per_call = [as_call_emits(rec) for rec in ALL]
    n_events = sum(len(evs) for evs in per_call)
    rng = random.Random(109)
    pending = [list(evs) for evs in per_call]
    while any(pending):
        evs = rng.choice([p for p in pending if p])
        take = rng.randint(1, 3)
        assert await s2.publish_events(evs[:take]) is Published.STREAM
        del evs[:take]
    with Archive(v2_db) as a:
        archiver = await drain(r, p2, a)
        assert a.count() == len(ALL) and a.count_events() == n_events
        assert archiver.stats.archived == n_events and archiver.stats.dead == 0

    assert n_events > 5 * len(ALL)  # really step by step, not one event a call
    v1_report, v2_report = report_json(v1_db, tmp_path), report_json(v2_db, tmp_path)
    assert v2_report["totals"]["calls"] == 16  # 10 March calls of the hand set + 6 more
    assert v2_report["totals"]["answered"] == 6
    assert v2_report == v1_report
    assert calls_rows(v2_db) == calls_rows(v1_db)  # and every column, not only the figures


def test_the_same_events_in_any_order_fold_to_the_same_record() -> None:
    rng = random.Random(7)
    for final in ALL:
        events = as_call_emits(final)
        for _ in range(5):
            rng.shuffle(events)
            assert fold(events) == final


async def test_stream_delivery_order_does_not_matter(
    new_archive: NewArchive, tmp_path: Path,
) -> None:
    """Events stored in any order (one call's later steps before its arrival)
    end in the same row; the row appears once the arrival is there."""
    final = BY_ID["t1"]  # transferred, three offers
    events = as_call_emits(final)
    a_db, b_db = new_archive("a"), new_archive("b")
    with Archive(a_db) as a:
        late_first = list(reversed(events))
        stored = a.add_events(late_first[:-1])  # everything but the arrival
        assert (stored.new, stored.rows, stored.waiting) == (len(events) - 1, 0, 1)
        assert not a.has(final.call_id)
        stored = a.add_events(late_first[-1:])
        assert (stored.new, stored.rows) == (1, 1)
        with Archive(b_db) as b:
            for ev in events:
                b.add_events([ev])
            assert calls_rows(a_db) == calls_rows(b_db)



def test_records_in_stream_folds_ended_calls_and_counts_a_second_end() -> None:
    """What the tests and the demo read from the stream: v1 records as they are, a
    call's events folded once it ended, a redelivered event once, a second
    `ended` as a second record (so a double write cannot hide)."""
    from ari_app.records.events import Recorder, records_in_stream
    from ari_app.records.model import CallRecord

    rec = CallRecord(call_id="c1", arrived_at="2026-12-02T10:00:00.000Z", caller="1")
    r = Recorder(rec)
    r.emit("arrived")
    rec.ended_at = "2026-12-02T10:01:00.000Z"
    ended = r.emit("ended")
    assert ended is not None
    v1 = CallRecord(call_id="c2", arrived_at="2026-12-02T10:00:00.000Z", caller="2")
    open_call = Recorder(CallRecord(call_id="c3", arrived_at="2026-12-02T10:00:00.000Z"))
    open_call.emit("arrived")  # not ended: no record yet
    entries = [{b"event": e.model_dump_json().encode()} for e in r.take()]
    entries.append({b"event": ended.model_dump_json().encode()})  # redelivered
    entries.append({b"record": v1.model_dump_json().encode()})
    entries += [{b"event": e.model_dump_json().encode()} for e in open_call.take()]
    got = records_in_stream(entries)
    assert sorted(x["call_id"] for x in got) == ["c1", "c2"]
    assert next(x for x in got if x["call_id"] == "c1")["ended_at"] == rec.ended_at
    again = r.emit("ended")  # a bug: the call ended twice
    assert again is not None
    entries.append({b"event": again.model_dump_json().encode()})
    assert [x["call_id"] for x in records_in_stream(entries)].count("c1") == 2
