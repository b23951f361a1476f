"""Hand call records and record events to Redis; fall back to a local spool when it is away.

`publish_events` sends all of one call's new events (records/events.py) in one
pipelined round trip; `publish` sends a whole version 1 record (old spools,
other producers). Neither raises: what cannot go to the stream goes to the
fsync'd spool, else (disk gone too) into the error log in full, so an operator
can still recover it. `drain_spool` re-publishes spooled lines once Redis
answers again; duplicates are harmless because the archive keeps each event
(and each v1 record, its call's event 0) once.

A spool line says what it holds: `{"event":<event JSON>}` for an event, the
bare record JSON for a v1 record (what every spool line was before events),
so a spool written by any version drains into the right stream field.
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
_EVENT_LINE = b'{"' + EVENT_FIELD.encode() + b'":'
_BARE_EVENT = b'{"v":'  # RecordEvent's JSON starts with its version; a record never does
_DRAIN_CHUNK = 200
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
        """All of one call's new events, in one pipelined round trip."""
        if not events:
            return Published.STREAM
        call_id = events[0].call_id
        try:
            payloads = [e.model_dump_json().encode() for e in events]
        except Exception as e:  # noqa: BLE001 - never crash on a record
            log.error("events.unserialisable", call_id=call_id, error=repr(e),
                      events=repr(events))
            return Published.LOGGED
        try:
            await self._xadd_many([(EVENT_FIELD, p) for p in payloads])
            return Published.STREAM
        except (RedisError, OSError, TimeoutError) as e:
            # Some may have landed before the failure; the archive keeps each event once.
            log.warning("events.stream_unavailable", call_id=call_id, error=repr(e))
        try:
            await asyncio.to_thread(self.spool.append_many, [event_line(p) for p in payloads])
            log.info("events.spooled", call_id=call_id, events=len(payloads),
                     spool=str(self.spool.path))
            return Published.SPOOL
        except Exception as e:  # noqa: BLE001 - last resort: the log is the spool now
            log.error("events.lost_to_log", call_id=call_id, error=repr(e),
                      events=[p.decode() for p in payloads])
            return Published.LOGGED

    async def _xadd_many(self, entries: list[tuple[str, bytes]]) -> None:
        async with asyncio.timeout(self.timeout):
            async with self.redis.pipeline(transaction=False) as pipe:
                for name, payload in entries:
                    pipe.xadd(self.key, {name: payload})
                await pipe.execute()

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
                for i in range(0, len(lines), _DRAIN_CHUNK):
                    chunk = lines[i : i + _DRAIN_CHUNK]
                    await self._xadd_many([spool_entry(line) for line in chunk])
                    sent += len(chunk)
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


def event_line(payload: bytes) -> bytes:
    """The spool line of one event's JSON."""
    return _EVENT_LINE + payload + b"}"


def spool_entry(line: bytes) -> tuple[str, bytes]:
    """The stream field and payload a spool line goes back as. Passed on
    verbatim, never parsed: a torn line reaches the dead-letter stream whole."""
    if line.startswith(_EVENT_LINE):
        body = line[len(_EVENT_LINE):]
        return EVENT_FIELD, body[:-1] if body.endswith(b"}") else body
    if line.startswith(_BARE_EVENT):  # an event spooled bare by an interim build
        return EVENT_FIELD, line
    return RECORD_FIELD, line
