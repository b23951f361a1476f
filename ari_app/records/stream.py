"""Hand finished call records to Redis; fall back to a local spool when it is away.

The app calls `publish` once per call. It never raises: a record goes to the
stream, else to the fsync'd spool, else (disk gone too) into the error log in
full, so an operator can still recover it. `drain_spool` re-publishes spooled
lines once Redis answers again; duplicates are harmless because the archive
keeps the first record per call_id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from enum import StrEnum
from pathlib import Path

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from ari_app.records.events import RecordEvent
from ari_app.records.model import CallRecord
from ari_app.records.spool import Spool

log = structlog.get_logger(__name__)

RECORD_FIELD = "record"
EVENT_FIELD = "event"
DEFAULT_SPOOL = Path(os.environ.get("HOTLINE_SPOOL", "var/records.spool.jsonl"))


def records_key(prefix: str) -> str:
    # The braces are a Redis Cluster hash tag: every key of one prefix maps to
    # one slot, so a move to Cluster keeps multi-key commands working.
    return f"{{{prefix}}}:records"


def dead_key(prefix: str) -> str:
    return f"{records_key(prefix)}:dead"


class Published(StrEnum):
    STREAM = "stream"
    SPOOL = "spool"
    LOGGED = "logged"


class RecordStream:
    def __init__(
        self,
        redis: aioredis.Redis,
        key_prefix: str,
        *,
        spool_path: str | os.PathLike[str] = DEFAULT_SPOOL,
        timeout: float = 2.0,
    ) -> None:
        self.redis = redis
        self.key = records_key(key_prefix)
        self.spool = Spool(spool_path)
        # Bounds how long a hung connection can hold up the end of a call;
        # a timed-out XADD may still have landed, which the dedup absorbs.
        self.timeout = timeout

    async def _xadd(self, payload: bytes) -> None:
        async with asyncio.timeout(self.timeout):
            await self.redis.xadd(self.key, {RECORD_FIELD: payload})

    async def publish(self, rec: CallRecord) -> Published:
        try:
            payload = rec.model_dump_json().encode()
        # Never crash on a record: whatever went wrong, keep what we can of it.
        except Exception as e:  # noqa: BLE001
            log.error("record.unserialisable", call_id=rec.call_id, error=repr(e), record=repr(rec))
            return Published.LOGGED
        try:
            await self._xadd(payload)
            return Published.STREAM
        except (RedisError, OSError, TimeoutError) as e:
            log.warning("record.stream_unavailable", call_id=rec.call_id, error=repr(e))
        try:
            await asyncio.to_thread(self.spool.append, payload)
            log.info("record.spooled", call_id=rec.call_id, spool=str(self.spool.path))
            return Published.SPOOL
        except Exception as e:  # noqa: BLE001 - last resort: the log is the spool now
            log.error(
                "record.lost_to_log", call_id=rec.call_id, error=repr(e), record=payload.decode()
            )
            return Published.LOGGED

    async def publish_events(self, events: list[RecordEvent]) -> Published:
        """All of one interaction's events in one round trip (interim: the archive
        side is being built)."""
        if not events:
            return Published.STREAM
        payloads = [e.model_dump_json().encode() for e in events]
        try:
            async with asyncio.timeout(self.timeout):
                async with self.redis.pipeline(transaction=False) as p:
                    for payload in payloads:
                        p.xadd(self.key, {EVENT_FIELD: payload})
                    await p.execute()
            return Published.STREAM
        except (RedisError, OSError, TimeoutError) as e:
            log.warning("record.stream_unavailable", call_id=events[0].call_id, error=repr(e))
        try:
            for payload in payloads:
                await asyncio.to_thread(self.spool.append, payload)
            return Published.SPOOL
        except Exception as e:  # noqa: BLE001 - last resort: the log is the spool now
            log.error("record.lost_to_log", call_id=events[0].call_id, error=repr(e),
                      events=[p.decode() for p in payloads])
            return Published.LOGGED

    async def drain_spool(self) -> int:
        """Re-publish every spooled line; return how many were sent.

        Stops (leaving the rest for next time) at the first Redis failure and
        never raises for one.
        """
        if not self.spool.has_pending():
            return 0
        sent = 0
        for path in await asyncio.to_thread(self.spool.pending_files):
            lines = await asyncio.to_thread(_read_lines, path)
            try:
                for line in lines:
                    await self._xadd(line)
                    sent += 1
            except (RedisError, OSError, TimeoutError) as e:
                log.warning("spool.drain_interrupted", file=str(path), sent=sent, error=repr(e))
                return sent
            await asyncio.to_thread(Spool.done, path)
            log.info("spool.drained", file=str(path), lines=len(lines))
        return sent

    async def drain_forever(self, stop: asyncio.Event, interval: float = 5.0) -> None:
        """Background task for the app: keep emptying the spool until stopped."""
        while not stop.is_set():
            try:
                await self.drain_spool()
            except Exception as e:  # noqa: BLE001 - the drainer must outlive a bad moment
                log.error("spool.drain_failed", error=repr(e))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)


def _read_lines(path: Path) -> list[bytes]:
    return list(Spool.lines(path))
