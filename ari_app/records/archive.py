"""The durable archive: one SQLite file, one row per call, first record per call_id wins.

WAL lets reports read while the archiver writes; synchronous=NORMAL in WAL
mode can lose the last transactions on power loss but never corrupts the file,
and the archiver only XACKs after commit, so at worst those entries are
delivered again and re-inserted. `INSERT OR IGNORE` on the call_id primary key
is what makes every path (stream redelivery, spool drain, import) idempotent.

Two derived columns, `answered` and `queue_seconds`, are computed once at
insert so reports are plain SQL sums over millions of rows; both are facts
about the call, not report policy (docs/records.md).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ari_app.records.model import CallRecord, Outcome, seconds_between, utcnow

SCHEMA_VERSION = 1

# (column, SQL type). Order is the row order; every CallRecord field appears once.
SCALAR_COLUMNS: tuple[tuple[str, str], ...] = (
    ("call_id", "TEXT NOT NULL PRIMARY KEY"),
    ("schema_version", "INTEGER NOT NULL"),
    ("app", "TEXT NOT NULL"),
    ("channel_uniqueid", "TEXT NOT NULL"),
    ("linkedid", "TEXT NOT NULL"),
    ("caller", "TEXT NOT NULL"),
    ("dialled", "TEXT NOT NULL"),
    ("arrived_at", "TEXT NOT NULL"),
    ("answered_at", "TEXT"),
    ("menu_left_at", "TEXT"),
    ("queue_joined_at", "TEXT"),
    ("agent_answered_at", "TEXT"),
    ("ended_at", "TEXT"),
    ("language", "TEXT"),
    ("language_source", "TEXT"),
    ("entity", "TEXT"),
    ("sector", "TEXT"),
    ("menu_retries", "INTEGER NOT NULL"),
    ("menu_seconds", "REAL"),
    ("digits", "TEXT NOT NULL"),
    ("agent", "TEXT"),
    ("site", "TEXT"),
    ("speed_of_answer", "REAL"),
    ("talk_seconds", "REAL"),
    ("wrapup_seconds", "REAL"),
    ("hangup_by", "TEXT"),
    ("outcome", "TEXT"),
    ("failure", "TEXT"),
)
JSON_COLUMNS: tuple[str, ...] = ("entity_path", "prompts", "queue", "offers")
DERIVED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("answered", "INTEGER NOT NULL"),
    ("queue_seconds", "REAL"),
    ("archived_at", "TEXT NOT NULL"),
)
RECORD_COLUMNS = tuple(c for c, _ in SCALAR_COLUMNS) + JSON_COLUMNS
ALL_COLUMNS = RECORD_COLUMNS + tuple(c for c, _ in DERIVED_COLUMNS)

_DDL_V1 = [
    "CREATE TABLE calls (\n  "
    + ",\n  ".join(
        [f"{c} {t}" for c, t in SCALAR_COLUMNS]
        + [f"{c} TEXT NOT NULL DEFAULT '[]'" for c in JSON_COLUMNS]
        + [f"{c} {t}" for c, t in DERIVED_COLUMNS]
    )
    + "\n)",
    "CREATE INDEX calls_arrived ON calls(arrived_at)",
    "CREATE INDEX calls_entity_arrived ON calls(entity, arrived_at)",
    "CREATE INDEX calls_site_arrived ON calls(site, arrived_at)",
    "CREATE INDEX calls_language_arrived ON calls(language, arrived_at)",
    "CREATE INDEX calls_outcome_arrived ON calls(outcome, arrived_at)",
]
MIGRATIONS: dict[int, list[str]] = {1: _DDL_V1}

# Column names below come from the constants above, never from input.
_INSERT = (
    f"INSERT OR IGNORE INTO calls ({', '.join(ALL_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(ALL_COLUMNS))})"
)
_SELECT_RANGE = (
    f"SELECT {', '.join(RECORD_COLUMNS)} FROM calls "  # noqa: S608
    "WHERE arrived_at >= ? AND arrived_at < ? ORDER BY arrived_at, call_id"
)


class ArchiveError(Exception):
    pass


def is_answered(rec: CallRecord) -> bool:
    """An agent picked the call up. Transferred calls count only if one did first."""
    return rec.outcome == Outcome.ANSWERED or rec.agent_answered_at is not None


def queue_seconds(rec: CallRecord) -> float | None:
    """Time in queue before an agent answered or the call left the queue unanswered."""
    if rec.queue_joined_at is None:
        return None
    if is_answered(rec):
        if rec.speed_of_answer is not None:
            return rec.speed_of_answer
        return seconds_between(rec.queue_joined_at, rec.agent_answered_at)
    left = next((q.left_at for q in reversed(rec.queue) if q.left_at), None)
    return seconds_between(rec.queue_joined_at, left or rec.ended_at)


def to_row(rec: CallRecord, archived_at: str) -> tuple[Any, ...]:
    d = rec.model_dump(mode="json")
    row: list[Any] = [d[c] for c, _ in SCALAR_COLUMNS]
    row += [json.dumps(d[c], ensure_ascii=False, separators=(",", ":")) for c in JSON_COLUMNS]
    row += [int(is_answered(rec)), queue_seconds(rec), archived_at]
    return tuple(row)


def from_row(row: Sequence[Any]) -> CallRecord:
    """Rebuild the record from the RECORD_COLUMNS prefix of a row."""
    d: dict[str, Any] = {c: row[i] for i, (c, _) in enumerate(SCALAR_COLUMNS)}
    base = len(SCALAR_COLUMNS)
    for j, c in enumerate(JSON_COLUMNS):
        d[c] = json.loads(row[base + j])
    return CallRecord.model_validate(d)


class Archive:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # The archiver runs SQLite in worker threads one call at a time, so the
        # connection is shared but never used concurrently.
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=10000")
        self.db.execute("PRAGMA temp_store=MEMORY")
        self.db.execute("PRAGMA cache_size=-65536")  # 64 MiB: enough for a year's GROUP BY
        self._migrate()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def version(self) -> int:
        row = self.db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def _migrate(self) -> None:
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        have = self.version()
        if have > SCHEMA_VERSION:
            raise ArchiveError(
                f"{self.path}: archive schema {have} is newer than this program ({SCHEMA_VERSION})"
            )
        for v in range(have + 1, SCHEMA_VERSION + 1):
            with self.transaction():
                for stmt in MIGRATIONS[v]:
                    self.db.execute(stmt)
                self.db.execute("INSERT INTO schema_version VALUES (?, ?)", (v, utcnow()))

    def transaction(self) -> _Tx:
        return _Tx(self.db)

    def insert(self, records: Iterable[CallRecord]) -> int:
        """Insert in one transaction; return how many were new (the rest were duplicates)."""
        now = utcnow()
        with self.transaction():
            return self.insert_in_tx(records, now)

    def insert_in_tx(self, records: Iterable[CallRecord], archived_at: str) -> int:
        before = self.db.total_changes
        self.db.executemany(_INSERT, (to_row(r, archived_at) for r in records))
        return self.db.total_changes - before

    def has(self, call_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        return row is not None

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def iter_range(self, start_utc: str, end_utc: str) -> Iterator[CallRecord]:
        """Records with start_utc <= arrived_at < end_utc, oldest first."""
        cur = self.db.execute(_SELECT_RANGE, (start_utc, end_utc))
        for row in cur:
            yield from_row(row)

    def optimize(self) -> None:
        self.db.execute("PRAGMA optimize")


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT, ROLLBACK on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")
