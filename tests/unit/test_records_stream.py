"""Publishing when Redis is away: the spool keeps records and drains them later."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import redis.asyncio as aioredis

from ari_app.records.archive import Archive
from ari_app.records.archiver import Archiver
from ari_app.records.model import CallRecord, Outcome
from ari_app.records.spool import Spool
from ari_app.records.stream import Published, RecordStream, records_key


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rec(i: int) -> CallRecord:
    return CallRecord(
        call_id=f"s-{i}", arrived_at="2025-03-01T08:00:00.000Z", outcome=Outcome.ANSWERED
    )


async def test_spool_when_redis_unreachable_then_drain(redis_url: str, tmp_path: Path) -> None:
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

    with Archive(tmp_path / "a.sqlite3") as archive:
        a = Archiver(up, prefix, archive, block_ms=10)
        await a.ensure_group()
        while await a.step():
            pass
        assert archive.count() == 5
    await up.aclose()


async def test_interrupted_drain_resends_and_new_records_are_not_truncated(
    redis_url: str, tmp_path: Path
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
    with Archive(tmp_path / "a.sqlite3") as archive:
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
