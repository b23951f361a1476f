"""Publishing records and events; when Redis is away the spool keeps them and drains them later."""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection

from ari_app.records.archive import Archive
from ari_app.records.archiver import Archiver
from ari_app.records.events import Recorder, RecordEvent
from ari_app.records.model import CallRecord, Outcome
from ari_app.records.spool import Spool
from ari_app.records.stream import (
    Published,
    RecordStream,
    event_line,
    records_key,
    spool_entry,
)
from tests.unit.conftest import NewArchive


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rec(i: int) -> CallRecord:
    return CallRecord(
        call_id=f"s-{i}", arrived_at="2025-03-01T08:00:00.000Z", outcome=Outcome.ANSWERED
    )


async def test_spool_when_redis_unreachable_then_drain(
    new_archive: NewArchive, redis_url: str, tmp_path: Path,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    spool = tmp_path / "spool" / "records.jsonl"
    down = aioredis.Redis.from_url(f"redis://127.0.0.1:{closed_port()}/0")
    offline = RecordStream(down, prefix, spool_path=spool, timeout=1.0)
    for i in range(5):
        assert await offline.publish(rec(i)) is Published.SPOOL
    lines = spool.read_bytes().splitlines()
    assert [CallRecord.model_validate_json(x).call_id for x in lines] == [
        f"s-{i}" for i in range(5)
    ]
    assert await offline.drain_spool() == 0  # still down: nothing sent, nothing lost
    assert offline.spool.has_pending()
    await down.aclose()

    up = aioredis.Redis.from_url(redis_url)
    online = RecordStream(up, prefix, spool_path=spool)
    await online.publish(rec(2))  # already spooled too: the archive keeps one
    assert await online.drain_spool() == 5
    assert not online.spool.has_pending()
    assert await online.drain_spool() == 0
    assert await up.xlen(records_key(prefix)) == 6

    with Archive(new_archive("a")) as archive:
        a = Archiver(up, prefix, archive, block_ms=10)
        await a.ensure_group()
        while await a.step():
            pass
        assert archive.count() == 5
    await up.aclose()


async def test_interrupted_drain_resends_and_new_records_are_not_truncated(
    new_archive: NewArchive, redis_url: str, tmp_path: Path,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    path = tmp_path / "records.jsonl"
    s = Spool(path)
    s.append(rec(1).model_dump_json().encode())
    s.append(b'{"torn": ')  # a crash mid-write leaves this; it must still be passed on
    files = s.pending_files()  # a drain began and renamed the spool aside ...
    assert len(files) == 1 and not path.exists()
    s.append(rec(2).model_dump_json().encode())  # ... while the app spooled another

    up = aioredis.Redis.from_url(redis_url)
    stream = RecordStream(up, prefix, spool_path=path)
    assert await stream.drain_spool() == 3  # the aside file and the fresh one
    assert not stream.spool.has_pending()
    with Archive(new_archive("a")) as archive:
        a = Archiver(up, prefix, archive, block_ms=10)
        await a.ensure_group()
        while await a.step():
            pass
        assert archive.count() == 2 and a.stats.dead == 1
    await up.aclose()


async def test_publish_never_raises_even_without_a_writable_spool(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    down = aioredis.Redis.from_url(f"redis://127.0.0.1:{closed_port()}/0")
    stream = RecordStream(down, "t", spool_path=blocker / "spool.jsonl", timeout=1.0)
    assert await stream.publish(rec(1)) is Published.LOGGED
    await down.aclose()


# -- events -------------------------------------------------------------------


def call_events(call_id: str) -> list[RecordEvent]:
    r = Recorder(CallRecord(call_id=call_id, arrived_at="2025-03-01T08:00:00.000Z"))
    r.emit("arrived")
    r.record.language = "ar"
    r.emit("language_chosen")
    r.record.outcome = Outcome.ABANDONED_IN_MENU
    r.record.ended_at = "2025-03-01T08:00:09.000Z"
    r.emit("ended")
    return r.take()


async def test_a_calls_events_go_in_one_round_trip(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    up = aioredis.Redis.from_url(redis_url)
    await up.ping()  # connect first: the handshake is not the publish's
    stream = RecordStream(up, prefix, spool_path=tmp_path / "spool.jsonl")
    sends: list[int] = []
    real = AbstractConnection.send_packed_command

    async def counted(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        sends.append(1)
        await real(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    events = call_events("e-1")
    assert await stream.publish_events(events) is Published.STREAM
    monkeypatch.undo()
    assert len(sends) == 1
    entries = await up.xrange(records_key(prefix))
    assert [RecordEvent.model_validate_json(f[b"event"]) for _, f in entries] == events
    assert all(set(f) == {b"event"} for _, f in entries)
    await up.aclose()


async def test_events_spool_tagged_and_drain_beside_old_record_lines(
    new_archive: NewArchive, redis_url: str, tmp_path: Path,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    spool = tmp_path / "records.jsonl"
    spool.write_bytes(rec(1).model_dump_json().encode() + b"\n")  # left by an older version
    down = aioredis.Redis.from_url(f"redis://127.0.0.1:{closed_port()}/0")
    offline = RecordStream(down, prefix, spool_path=spool, timeout=1.0)
    events = call_events("e-2")
    assert await offline.publish_events(events) is Published.SPOOL
    assert await offline.publish(rec(2)) is Published.SPOOL
    await down.aclose()
    lines = spool.read_bytes().splitlines()
    assert len(lines) == 5
    assert all(line.startswith(b'{"event":') for line in lines[1:4])
    assert [json.loads(line)["event"]["seq"] for line in lines[1:4]] == [1, 2, 3]
    assert CallRecord.model_validate_json(lines[4]).call_id == "s-2"  # a record stays bare

    up = aioredis.Redis.from_url(redis_url)
    online = RecordStream(up, prefix, spool_path=spool)
    assert await online.drain_spool() == 5
    fields = [set(f) for _, f in await up.xrange(records_key(prefix))]
    assert fields == [{b"record"}, {b"event"}, {b"event"}, {b"event"}, {b"record"}]
    await online.publish_events(events)  # the same events once more: nothing new
    with Archive(new_archive("a")) as archive:
        a = Archiver(up, prefix, archive, block_ms=10)
        await a.ensure_group()
        while await a.step():
            pass
        assert archive.count() == 3 and archive.count_events() == 5
        assert (a.stats.archived, a.stats.duplicates, a.stats.dead) == (5, 3, 0)
        got = archive.db.execute("SELECT language, outcome FROM calls WHERE call_id = 'e-2'")
        assert got.fetchone() == ("ar", "abandoned_in_menu")
    await up.aclose()


def test_spool_lines_say_what_they_hold() -> None:
    payload = call_events("e-3")[0].model_dump_json().encode()
    assert spool_entry(event_line(payload)) == ("event", payload)
    assert spool_entry(b'{"schema_version":1}') == ("record", b'{"schema_version":1}')
    assert spool_entry(payload) == ("event", payload)  # spooled bare (an interim build did)
    assert payload.startswith(b'{"v":2,')
    torn = event_line(payload)[:40]
    assert spool_entry(torn) == ("event", torn[len(b'{"event":'):])  # passed on for the dead letter


async def test_publish_events_never_raises_even_without_a_writable_spool(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    down = aioredis.Redis.from_url(f"redis://127.0.0.1:{closed_port()}/0")
    stream = RecordStream(down, "t", spool_path=blocker / "spool.jsonl", timeout=1.0)
    assert await stream.publish_events(call_events("e-4")) is Published.LOGGED
    assert await stream.publish_events([]) is Published.STREAM  # nothing to say
    await down.aclose()
