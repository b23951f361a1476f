"""Counting a call's record at both ends: every event in the Redis stream once, and in
the archive one `calls` row per caller and one `events` row per streamed event, counted
with SELECTs (the archive's INSERT OR IGNORE would hide a duplicate, not a count)."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ari_app.records.events import RecordEvent
from ari_app.records.stream import EVENT_FIELD


@dataclass(frozen=True)
class StreamCount:
    events: dict[str, list[RecordEvent]]  # call id -> its events, in stream order
    repeated: list[str]  # event ids the stream holds more than once

    def seqs(self, call_id: str) -> list[int]:
        """The call's own numbered events (late facts from other sources aside)."""
        return sorted(e.seq for e in self.events.get(call_id, [])
                      if e.id == f"{call_id}:{e.seq}")

    def ended(self, call_id: str) -> bool:
        return any(e.kind == "ended" for e in self.events.get(call_id, []))


def count_stream(client: Any, key: str = "{hotline}:records") -> StreamCount:
    """`client`: a synchronous redis.Redis on the stream's server."""
    by_call: dict[str, list[RecordEvent]] = {}
    ids: Counter[str] = Counter()
    for _eid, fields in client.xrange(key):
        raw = fields.get(EVENT_FIELD.encode())
        if raw is None:
            continue
        ev = RecordEvent.model_validate_json(raw)
        by_call.setdefault(ev.call_id, []).append(ev)
        ids[ev.id] += 1
    return StreamCount(by_call, [i for i, n in ids.items() if n > 1])


@dataclass(frozen=True)
class ArchiveCount:
    calls: dict[str, list[tuple[str, str]]]  # caller -> [(call id, outcome)]
    events: dict[str, int]  # call id -> rows in `events`


def count_archive(db: Path, callers: list[str], events_per_call: dict[str, int],
                  timeout: float = 30) -> ArchiveCount:
    """Poll the SQLite archive until every caller has a row and every call id has as
    many event rows as the stream holds events (or the deadline): what it holds then."""
    deadline = time.monotonic() + timeout
    while True:
        got = _read(db, callers, list(events_per_call))
        done = len(got.calls) == len(callers) and all(
            got.events.get(c, 0) >= n for c, n in events_per_call.items())
        if done or time.monotonic() > deadline:
            return got
        time.sleep(0.3)


def _read(db: Path, callers: list[str], call_ids: list[str]) -> ArchiveCount:
    calls: dict[str, list[tuple[str, str]]] = {}
    events: dict[str, int] = {}
    if not db.exists():
        return ArchiveCount(calls, events)
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        marks = ",".join("?" * len(callers))
        for caller, cid, outcome in con.execute(
                f"SELECT caller, call_id, outcome FROM calls WHERE caller IN ({marks})",
                callers):
            calls.setdefault(caller, []).append((cid, outcome))
        marks = ",".join("?" * len(call_ids))
        # "untagged" (no reason given) is folded in by the archiver from the agents'
        # state history, not from the call's stream: it has no stream event to match
        for cid, n in con.execute(
                f"SELECT call_id, COUNT(*) FROM events WHERE call_id IN ({marks}) "
                "AND kind != 'untagged' GROUP BY call_id", call_ids):
            events[cid] = n
    except sqlite3.OperationalError:  # the archiver has not created its tables yet
        pass
    finally:
        con.close()
    return ArchiveCount(calls, events)
