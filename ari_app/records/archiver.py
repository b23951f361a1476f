"""Move record events and records from the Redis stream into the archive (SQLite
or PostgreSQL), losing none.

An entry holds one event (field `event`, records/events.py) or one whole
version 1 record (field `record`, kept as its call's event 0). Delivery is
at-least-once: entries are XACKed only after the archive's commit, so a crash
between the two re-delivers them, and the archive keeps each event once: a
repeat adds no event and rewrites no row. A consumer that dies leaves entries
pending; any live archiver takes them over with XAUTOCLAIM once they have
idled `claim_idle_ms`.

An entry that can never be archived (not JSON, not a valid event or record,
an event the archive must refuse, events that no longer fold into a valid
record, or a row the database refuses on its own) is copied to the dead-letter
stream with the reason and then acked, so it is kept for a human but never
blocks the stream. Failures of Redis or of the disk as a whole are not the
entry's fault: those entries stay pending and the loop retries with backoff.

Acked entries older than `retain_seconds` are trimmed so the stream does not
grow forever; trimming never passes an entry some group has yet to ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
import structlog
from pydantic import ValidationError
from redis.exceptions import ResponseError

from ari_app.records.agent_events import AGENT_FIELD, AgentEvent, no_reason_fact
from ari_app.records.agent_events import parse as parse_agent_event
from ari_app.records.archive import Archive, Stored
from ari_app.records.events import RecordEvent, problem, record_to_events
from ari_app.records.model import CallRecord, utcnow
from ari_app.records.stream import EVENT_FIELD, RECORD_FIELD, dead_key, records_key

log = structlog.get_logger(__name__)

GROUP = "archiver"

Entry = tuple[bytes, dict[bytes, bytes]]


@dataclass
class Stats:
    archived: int = 0  # entries whose event (or v1 record) was new
    duplicates: int = 0  # entries the archive already had
    rows: int = 0  # calls rows written (new calls, and calls a new event changed)
    dead: int = 0
    claimed: int = 0
    errors: int = 0
    batches: int = 0
    last_error: str | None = field(default=None)


class Archiver:
    def __init__(
        self,
        redis: aioredis.Redis,
        key_prefix: str,
        archive: Archive,
        *,
        consumer: str | None = None,
        batch: int = 500,
        block_ms: int = 1000,
        claim_idle_ms: int = 60_000,
        retain_seconds: float = 86_400.0,
    ) -> None:
        self.redis = redis
        self.archive = archive
        self.key = records_key(key_prefix)
        self.dead_key = dead_key(key_prefix)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.retain_seconds = retain_seconds
        self.stats = Stats()
        self._last_claim = 0.0
        self._claim_from = "0-0"
        self._last_trim = 0.0

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.key, GROUP, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    # -- one step -----------------------------------------------------------

    async def step(self) -> int:
        """Archive one batch: own pending first, then dead consumers', then new.

        Returns the number of entries handled (0 when the stream was idle).
        """
        entries = await self._read("0", block=None)  # delivered to us, never acked
        if not entries and time.monotonic() - self._last_claim >= self.claim_idle_ms / 1000 / 2:
            self._last_claim = time.monotonic()
            entries = await self._claim()
        if not entries:
            entries = await self._read(">", block=self.block_ms)
        if entries:
            await self._handle(entries)
        if time.monotonic() - self._last_trim >= 60:
            self._last_trim = time.monotonic()
            await self._trim()
        return len(entries)

    async def _read(self, since: str, block: int | None) -> list[Entry]:
        resp: Any = await self.redis.xreadgroup(
            GROUP, self.consumer, {self.key: since}, count=self.batch, block=block
        )
        return _entries(resp)

    async def _claim(self) -> list[Entry]:
        resp: Any = await self.redis.xautoclaim(
            self.key, GROUP, self.consumer, self.claim_idle_ms, start_id=self._claim_from,
            count=self.batch,
        )  # fmt: skip
        # XAUTOCLAIM scans a bounded slice of the pending list; resume there next time.
        self._claim_from = _text(resp[0]) if resp else "0-0"
        items = resp[1] if resp else []
        out: list[Entry] = [(eid, fields or {}) for eid, fields in items]
        if out:
            self.stats.claimed += len(out)
            log.info("archiver.claimed", count=len(out), consumer=self.consumer)
        return out

    # -- handling -------------------------------------------------------------

    async def _handle(self, entries: list[Entry]) -> None:
        good: list[tuple[bytes, dict[bytes, bytes], list[RecordEvent | AgentEvent]]] = []
        dead: list[tuple[bytes, dict[bytes, bytes], str]] = []
        for eid, fields in entries:
            reason, events = decode(fields, eid)
            if events is None:
                dead.append((eid, fields, reason))
            else:
                good.append((eid, fields, events))
        stored, refused = await asyncio.to_thread(self._store, [evs for _, _, evs in good])
        for idx, why in refused:
            eid, fields, _ = good[idx]
            dead.append((eid, fields, f"refused by the archive: {why}"))
        for eid, fields, reason in dead:
            await self._dead_letter(eid, fields, reason)
        await self.redis.xack(self.key, GROUP, *[eid for eid, _ in entries])
        self.stats.archived += stored.new
        self.stats.duplicates += stored.duplicates
        self.stats.rows += stored.rows
        self.stats.dead += len(dead)
        self.stats.batches += 1
        log.debug("archiver.batch", entries=len(entries), new=stored.new, rows=stored.rows,
                  waiting=stored.waiting, dead=len(dead))

    def _store(self, batch: list[list[RecordEvent | AgentEvent]]
               ) -> tuple[Stored, list[tuple[int, str]]]:
        """Store the batch; if the archive refuses it, find the entries it refuses alone.

        A transient database error (SQLite's OperationalError: locked, disk
        full, I/O; PostgreSQL's: server down, connection lost, disk full) is
        about the database, not an entry: it propagates so nothing is acked
        and the batch is retried.
        """
        if not batch:
            return Stored(), []
        transient, db_errors = self.archive.transient_errors, self.archive.db_errors
        faults: tuple[type[Exception], ...] = (*db_errors, ValueError, TypeError)
        try:
            return self.archive.add_events(ev for evs in batch for ev in evs), []
        except transient:
            raise
        except faults:
            pass  # some entry in the batch is at fault: find which, one by one
        stored = Stored()
        refused: list[tuple[int, str]] = []
        for i, evs in enumerate(batch):
            try:
                stored.add(self.archive.add_events(evs))
            except transient:
                raise
            except faults as e:
                refused.append((i, str(e) if isinstance(e, ValueError) else repr(e)))
        return stored, refused

    async def _dead_letter(self, eid: bytes, fields: dict[bytes, bytes], reason: str) -> None:
        entry: dict[str, bytes | str] = {
            "id": eid,
            "reason": reason,
            "consumer": self.consumer,
            "at": utcnow(),
        }
        ours = (RECORD_FIELD.encode(), EVENT_FIELD.encode(), AGENT_FIELD.encode())
        for name in ours:  # the original bytes, kept for a human
            if name in fields:
                entry[name.decode()] = fields[name]
        others = {k: v for k, v in fields.items() if k not in ours}
        if others:
            entry["other_fields"] = repr(others)
        await self.redis.xadd(self.dead_key, entry)  # type: ignore[arg-type]
        log.error("archiver.dead_letter", id=eid.decode(), reason=reason)

    async def _trim(self) -> None:
        """Drop entries every group has acked and that are older than the retention."""
        try:
            groups: list[dict[Any, Any]] = await self.redis.xinfo_groups(self.key)
        except ResponseError:
            return
        floor_ms = int((time.time() - self.retain_seconds) * 1000)
        for g in groups:
            # MINID <ms>-0 keeps every entry from that millisecond on, so using
            # the millisecond of the oldest unsafe entry never drops it.
            floor_ms = min(floor_ms, _ms(g.get("last-delivered-id")))
            if int(g.get("pending") or 0):
                pending: Any = await self.redis.xpending(self.key, _text(g.get("name")))
                if pending.get("min"):
                    floor_ms = min(floor_ms, _ms(pending["min"]))
        if floor_ms > 0:
            await self.redis.xtrim(self.key, minid=f"{floor_ms}-0", approximate=False)

    # -- loop -------------------------------------------------------------------

    async def run_forever(self, stop: asyncio.Event) -> Stats:
        backoff = 0.5
        while not stop.is_set():
            try:
                await self.ensure_group()
                while not stop.is_set():
                    await self.step()
                    backoff = 0.5
            except Exception as e:  # noqa: BLE001 - log, back off, retry: never die on a batch
                self.stats.errors += 1
                self.stats.last_error = repr(e)
                log.warning("archiver.retrying", error=repr(e), in_seconds=backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 30.0)
        log.info("archiver.stopped", **self.stats.__dict__)
        return self.stats


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _ms(entry_id: Any) -> int:
    return int(_text(entry_id).split("-")[0])


def _entries(resp: Any) -> list[Entry]:
    if not resp:
        return []
    # RESP2 gives [[key, entries]]; RESP3 gives {key: [entries]} (one list deeper).
    pairs = resp.items() if isinstance(resp, dict) else resp
    out: list[Entry] = []
    for _key, items in pairs:
        if items and isinstance(items[0], list):
            items = items[0]
        for eid, fields in items:
            # A pending entry since deleted from the stream comes back without fields.
            out.append((eid, fields or {}))
    return out


def decode(fields: dict[bytes, bytes], entry_id: bytes | str = b""
           ) -> tuple[str, list[RecordEvent | AgentEvent] | None]:
    """The events an entry carries (a v1 record becomes its event 0; an agent's
    state change is kept by its entry id, with the late fact it implies), or why none."""
    raw_rec = fields.get(RECORD_FIELD.encode())
    raw_ev = fields.get(EVENT_FIELD.encode())
    raw_agent = fields.get(AGENT_FIELD.encode())
    if raw_agent is not None:
        if raw_rec is not None or raw_ev is not None:
            return (f"an '{AGENT_FIELD}' field with another: which one is meant?", None)
        try:
            agent_ev = parse_agent_event(_text(entry_id), raw_agent)
        except ValueError as e:
            return (str(e), None)
        fact = no_reason_fact(agent_ev)
        return ("", [agent_ev] if fact is None else [agent_ev, fact])
    if raw_rec is not None and raw_ev is not None:
        return (f"both a '{RECORD_FIELD}' and an '{EVENT_FIELD}' field: which one is meant?", None)
    if raw_ev is not None:
        try:
            ev = RecordEvent.model_validate_json(raw_ev)
        except ValidationError as e:
            return ("invalid event: " + _errors(e), None)
        except (ValueError, UnicodeDecodeError) as e:
            return (f"undecodable: {e}", None)
        why = problem(ev)
        return (f"bad event: {why}", None) if why else ("", [ev])
    if raw_rec is None:
        return (f"no '{RECORD_FIELD}' field nor '{EVENT_FIELD}' field "
                "(entry deleted or malformed)", None)
    try:
        return ("", [*record_to_events(CallRecord.model_validate_json(raw_rec))])
    except ValidationError as e:
        return ("invalid record: " + _errors(e), None)
    except (ValueError, UnicodeDecodeError) as e:
        return (f"undecodable: {e}", None)


def _errors(e: ValidationError) -> str:
    first = e.errors(include_url=False)[:5]
    return "; ".join(f"{'.'.join(str(p) for p in x['loc']) or '(entry)'}: {x['msg']}"
                     for x in first)


async def run(
    cfg_redis_url: str,
    key_prefix: str,
    db: str | os.PathLike[str],
    stop_event: asyncio.Event,
    *,
    password_file: str | os.PathLike[str] | None = None,
    client: aioredis.Redis | None = None,
    **redis_kwargs: Any,
) -> Stats:
    """`db`: the archive's path or URL (records/backend.py); `redis_kwargs`: the ACL
    login and TLS settings (ari_app.config.secure.redis_kwargs); `client`, when
    given, is used instead of one from the url (a Sentinel-managed client), and
    closed at the end."""
    archive = Archive(db, password_file=password_file)
    if client is None:
        client = aioredis.Redis.from_url(cfg_redis_url, socket_connect_timeout=5,
                                         socket_timeout=30, **redis_kwargs)
    try:
        return await Archiver(client, key_prefix, archive).run_forever(stop_event)
    finally:
        archive.close()
        await client.aclose()
