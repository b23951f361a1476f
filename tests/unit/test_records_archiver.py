"""Stream -> archiver -> SQLite against the real Redis: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ari_app.records.archive import ALL_COLUMNS, RECORD_COLUMNS, Archive
from ari_app.records.archiver import GROUP, Archiver, decode, run
from ari_app.records.model import CallRecord, Outcome
from ari_app.records.stream import Published, RecordStream, dead_key, records_key
from tests.unit.conftest import NewArchive


def rec(i: int, outcome: Outcome | None = Outcome.ANSWERED, **kw: object) -> CallRecord:
    base: dict[str, object] = {
        "call_id": f"c-{i:05d}",
        "arrived_at": f"2025-03-01T08:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
        "outcome": outcome,
    }
    base.update(kw)
    return CallRecord.model_validate(base)


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def r(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def archive(new_archive: NewArchive, tmp_path: Path) -> Iterator[Archive]:
    a = Archive(new_archive("archive"))
    yield a
    a.close()


async def wait_count(archive: Archive, n: int, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while archive.count() < n:
        assert asyncio.get_running_loop().time() < deadline, f"{archive.count()} of {n} archived"
        await asyncio.sleep(0.02)


def test_keys_share_one_cluster_slot() -> None:
    assert records_key("hotline") == "{hotline}:records"
    assert dead_key("hotline") == "{hotline}:records:dead"


def test_every_record_field_has_an_archive_column() -> None:
    assert set(RECORD_COLUMNS) == set(CallRecord.model_fields)
    assert len(set(ALL_COLUMNS)) == len(ALL_COLUMNS)


async def test_a_record_of_each_outcome_reaches_the_archive(
    r: aioredis.Redis, prefix: str, archive: Archive, tmp_path: Path,
) -> None:
    stream = RecordStream(r, prefix, spool_path=tmp_path / "spool.jsonl")
    for i, o in enumerate(Outcome):
        assert await stream.publish(rec(i, o)) is Published.STREAM
    assert await stream.publish(rec(99, None)) is Published.STREAM  # a call cut off early
    stop = asyncio.Event()
    task = asyncio.create_task(Archiver(r, prefix, archive, block_ms=50).run_forever(stop))
    await wait_count(archive, len(Outcome) + 1)
    stop.set()
    stats = await task
    got = dict(archive.db.execute("SELECT call_id, outcome FROM calls").fetchall())
    assert got == {f"c-{i:05d}": o.value for i, o in enumerate(Outcome)} | {"c-00099": None}
    assert stats.archived == len(Outcome) + 1 and stats.dead == 0
    assert (await r.xpending(records_key(prefix), GROUP))["pending"] == 0


async def test_the_same_record_twice_is_archived_once(
    r: aioredis.Redis, prefix: str, archive: Archive, tmp_path: Path,
) -> None:
    stream = RecordStream(r, prefix, spool_path=tmp_path / "spool.jsonl")
    first = rec(1, talk_seconds=10.0)
    await stream.publish(first)
    await stream.publish(first)
    await stream.publish(rec(1, talk_seconds=99.0))  # same call id, later copy: ignored
    a = Archiver(r, prefix, archive, block_ms=10)
    await a.ensure_group()
    while await a.step():
        pass
    assert archive.count() == 1
    assert archive.db.execute("SELECT talk_seconds FROM calls").fetchone()[0] == 10.0
    assert a.stats.archived == 1 and a.stats.duplicates == 2


async def test_stopping_mid_stream_loses_nothing_and_it_catches_up(
    r: aioredis.Redis, prefix: str, archive: Archive, tmp_path: Path,
) -> None:
    stream = RecordStream(r, prefix, spool_path=tmp_path / "spool.jsonl")
    for i in range(300):
        await stream.publish(rec(i))
    first = Archiver(r, prefix, archive, batch=25, block_ms=10)
    await first.ensure_group()
    for _ in range(3):  # three batches, then "stopped"
        await first.step()
    assert archive.count() == 75

    # While it is down, a second consumer takes a batch and dies before XACK.
    await r.xreadgroup(GROUP, "crashed", {records_key(prefix): ">"}, count=40)
    for i in range(300, 400):
        await stream.publish(rec(i))
    await asyncio.sleep(0.05)

    stop = asyncio.Event()
    again = Archiver(r, prefix, archive, batch=25, block_ms=10, claim_idle_ms=20)
    task = asyncio.create_task(again.run_forever(stop))
    await wait_count(archive, 400)
    stop.set()
    await task
    assert again.stats.claimed == 40
    ids = {row[0] for row in archive.db.execute("SELECT call_id FROM calls")}
    assert ids == {f"c-{i:05d}" for i in range(400)}
    assert (await r.xpending(records_key(prefix), GROUP))["pending"] == 0


async def test_bad_entries_go_to_dead_letter_and_do_not_block(
    r: aioredis.Redis, prefix: str, archive: Archive,
) -> None:
    key = records_key(prefix)
    await r.xadd(key, {"record": b"{not json"})
    await r.xadd(key, {"record": json.dumps({"call_id": "", "arrived_at": "x"})})
    await r.xadd(key, {"something": "else"})
    await r.xadd(key, {"record": rec(7).model_dump_json()})
    a = Archiver(r, prefix, archive, block_ms=10)
    await a.ensure_group()
    while await a.step():
        pass
    assert archive.count() == 1 and archive.has("c-00007")
    dead = await r.xrange(dead_key(prefix))
    reasons = [fields[b"reason"].decode() for _, fields in dead]
    assert len(reasons) == 3
    assert reasons[0].startswith("invalid record") or reasons[0].startswith("undecodable")
    assert "call_id" in reasons[1]
    assert "no 'record' field" in reasons[2]
    assert dead[0][1][b"record"] == b"{not json"  # the original bytes are kept
    assert (await r.xpending(key, GROUP))["pending"] == 0


async def test_run_entry_point_stops_on_event(
    new_archive: NewArchive, redis_url: str, prefix: str, tmp_path: Path,
) -> None:
    r = aioredis.Redis.from_url(redis_url)
    await RecordStream(r, prefix, spool_path=tmp_path / "s.jsonl").publish(rec(1))
    stop = asyncio.Event()
    db = new_archive("a")
    task = asyncio.create_task(run(redis_url, prefix, db, stop))
    with Archive(db) as archive:
        await wait_count(archive, 1)
    stop.set()
    stats = await asyncio.wait_for(task, 5)
    assert stats.archived == 1
    await r.aclose()


async def test_archiver_survives_redis_being_unreachable(
    new_archive: NewArchive, tmp_path: Path, prefix: str,
) -> None:
    from tests.unit.test_records_stream import closed_port

    r = aioredis.Redis.from_url(f"redis://127.0.0.1:{closed_port()}/0")
    with Archive(new_archive("a")) as archive:
        stop = asyncio.Event()
        a = Archiver(r, prefix, archive, block_ms=10)
        task = asyncio.create_task(a.run_forever(stop))
        await asyncio.sleep(0.3)
        stop.set()
        stats = await asyncio.wait_for(task, 5)
    assert stats.errors >= 1 and stats.archived == 0
    await r.aclose()


async def test_trim_drops_only_acked_entries_past_retention(
    r: aioredis.Redis, prefix: str, archive: Archive, tmp_path: Path,
) -> None:
    stream = RecordStream(r, prefix, spool_path=tmp_path / "spool.jsonl")
    for i in range(30):
        await stream.publish(rec(i))
    a = Archiver(r, prefix, archive, batch=20, block_ms=10, retain_seconds=0, claim_idle_ms=1)
    await a.ensure_group()
    a._last_claim = asyncio.get_running_loop().time()  # no claiming in the first step
    await a.step()  # 20 archived and acked, 10 never read
    await r.xreadgroup(GROUP, "other", {records_key(prefix): ">"}, count=5)  # 5 left pending
    await a._trim()
    left = [int(eid.decode().split("-")[1]) for eid, _ in await r.xrange(records_key(prefix))]
    assert archive.count() == 20
    assert len(left) >= 10  # the 5 pending and 5 unread survive (plus any same-ms ones)
    await asyncio.sleep(0.01)
    while await a.step():
        pass
    assert archive.count() == 30


# -- events -------------------------------------------------------------------


async def test_events_and_a_late_tag_delivered_twice_change_the_call_once(
    r: aioredis.Redis, prefix: str, archive: Archive, tmp_path: Path,
) -> None:
    from ari_app.records.events import late_fact
    from tests.unit.test_records_equality import BY_ID, as_call_emits

    stream = RecordStream(r, prefix, spool_path=tmp_path / "spool.jsonl")
    events = as_call_emits(BY_ID["t1"])
    await stream.publish_events(events)
    a = Archiver(r, prefix, archive, block_ms=10)
    await a.ensure_group()
    while await a.step():
        pass
    assert archive.count() == 1 and archive.count_events() == len(events)
    assert a.stats.rows >= 1

    tag = late_fact("t1", "tagged", "desktop", {"reason": "complaint", "note": "rude IVR"})
    await stream.publish_events([tag])
    await stream.publish_events([tag])  # e.g. the desktop retried after a timeout
    rows_before = a.stats.rows
    while await a.step():
        pass
    assert archive.count() == 1 and archive.count_events() == len(events) + 1
    assert a.stats.rows - rows_before == 1  # the row was rewritten once, not twice
    assert archive.db.execute("SELECT reason, note, outcome FROM calls").fetchone() == (
        "complaint", "rude IVR", "answered")
    assert (await r.xpending(records_key(prefix), GROUP))["pending"] == 0


async def test_redelivered_events_after_a_crash_before_ack_add_nothing(
    r: aioredis.Redis, prefix: str, archive: Archive, tmp_path: Path,
) -> None:
    """An archiver committed a batch and died before XACK: another one claims the
    entries and stores them again; the archive ends exactly as before."""
    from tests.unit.test_records_equality import BY_ID, as_call_emits

    stream = RecordStream(r, prefix, spool_path=tmp_path / "spool.jsonl")
    calls = ("t2", "t3", "t4")
    events = [ev for c in calls for ev in as_call_emits(BY_ID[c])]
    for c in calls:
        await stream.publish_events(as_call_emits(BY_ID[c]))
    crashed = Archiver(r, prefix, archive, consumer="crashed", block_ms=10)
    await crashed.ensure_group()
    entries = await crashed._read(">", block=None)
    assert len(entries) == len(events)
    await asyncio.to_thread(crashed._store, [decode(f)[1] or [] for _, f in entries])
    # ... and died here, before XACK
    snapshot = archive.db.execute("SELECT * FROM calls ORDER BY call_id").fetchall()
    assert (archive.count(), archive.count_events()) == (3, len(events))

    await asyncio.sleep(0.03)
    again = Archiver(r, prefix, archive, block_ms=10, claim_idle_ms=20)
    again._last_claim = 0.0
    while await again.step():
        pass
    assert again.stats.claimed == len(events)
    assert (again.stats.archived, again.stats.duplicates, again.stats.rows) == (0, len(events), 0)
    assert (archive.count(), archive.count_events()) == (3, len(events))
    assert archive.db.execute("SELECT * FROM calls ORDER BY call_id").fetchall() == snapshot
    assert (await r.xpending(records_key(prefix), GROUP))["pending"] == 0


async def test_bad_events_go_to_dead_letter_with_the_reason(
    r: aioredis.Redis, prefix: str, archive: Archive,
) -> None:
    from ari_app.records.events import Recorder

    key = records_key(prefix)
    rc = Recorder(CallRecord(call_id="ev-1", arrived_at="2025-03-01T08:00:00.000Z"))
    arrived = rc.emit("arrived")
    assert arrived is not None
    bad_outcome = arrived.model_copy(update={"id": "ev-1:2", "seq": 2, "kind": "ended",
                                             "data": {"set": {"outcome": "lost"}}})
    await r.xadd(key, {"event": b"{not json"})
    await r.xadd(key, {"event": json.dumps({"id": "x:1", "call_id": "x"})})
    await r.xadd(key, {"event": arrived.model_copy(update={"id": "ev-9:1"}).model_dump_json()})
    await r.xadd(key, {"event": arrived.model_dump_json(), "record": rec(1).model_dump_json()})
    await r.xadd(key, {"event": arrived.model_dump_json()})
    await r.xadd(key, {"event": bad_outcome.model_dump_json()})
    a = Archiver(r, prefix, archive, block_ms=10)
    await a.ensure_group()
    while await a.step():
        pass
    assert archive.count() == 1 and archive.count_events() == 1  # only the good arrival
    dead = await r.xrange(dead_key(prefix))
    reasons = [f[b"reason"].decode() for _, f in dead]
    assert len(reasons) == 5, reasons
    assert reasons[0].startswith("invalid event") or reasons[0].startswith("undecodable")
    assert "seq" in reasons[1] and "at" in reasons[1]  # the missing fields are named
    assert "own event must be" in reasons[2]
    assert "both a 'record' and an 'event' field" in reasons[3]
    assert "refused by the archive" in reasons[4] and "outcome" in reasons[4]
    assert dead[0][1][b"event"] == b"{not json"  # the original bytes are kept
    assert dead[4][1][b"event"] == bad_outcome.model_dump_json().encode()
    assert (await r.xpending(key, GROUP))["pending"] == 0
