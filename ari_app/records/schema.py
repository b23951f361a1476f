"""The archive's tables, how a record maps onto a `calls` row, and the migrations.

Columns are listed by the schema version that added them: a migration never
rewrites an earlier version's DDL, it only adds to it, so an archive created
fresh and one upgraded from version 1 have the same tables.

Two derived columns, `answered` and `queue_seconds`, are computed whenever a
row is written so reports are plain SQL sums over millions of rows; both are
facts about the call, not report policy (docs/records.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ari_app.records.agent_events import AGENT_EVENT_COLUMNS
from ari_app.records.backend import POSTGRESQL, SQLITE
from ari_app.records.events import RecordEvent, diff
from ari_app.records.model import CallRecord, Outcome, seconds_between

SCHEMA_VERSION = 5

# (column, SQL type), version 1. Every CallRecord field appears once across versions.
SCALAR_COLUMNS_V1: tuple[tuple[str, str], ...] = (
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
JSON_COLUMNS_V1: tuple[str, ...] = ("entity_path", "prompts", "queue", "offers")
# version 2: the late facts, and the consult legs
SCALAR_COLUMNS_V2: tuple[tuple[str, str], ...] = (
    ("reason", "TEXT"),
    ("reason_detail", "TEXT"),
    ("note", "TEXT"),
)
JSON_COLUMNS_V2: tuple[str, ...] = ("consults",)
# version 4, "supervision": the recording, the supervisors' actions, the survey
SCALAR_COLUMNS_V4: tuple[tuple[str, str], ...] = (
    ("recording", "TEXT"),
    ("recording_deleted_at", "TEXT"),
    ("survey_q1", "INTEGER"),
    ("survey_q2", "INTEGER"),
    ("survey_result", "TEXT"),
)
JSON_COLUMNS_V4: tuple[str, ...] = ("supervision",)

# version 3, "wrapup": who tagged the call reason (a late fact), and the agents'
# state history (records/agent_events.py)
SCALAR_COLUMNS_V3: tuple[tuple[str, str], ...] = (("tagged_by", "TEXT"),)

# version 5, "callback": the queued callback, JSON (null when none)
JSON_COLUMNS_V5: tuple[str, ...] = ("callback",)

SCALAR_COLUMNS = SCALAR_COLUMNS_V1 + SCALAR_COLUMNS_V2 + SCALAR_COLUMNS_V3 + SCALAR_COLUMNS_V4
JSON_COLUMNS = JSON_COLUMNS_V1 + JSON_COLUMNS_V2 + JSON_COLUMNS_V4 + JSON_COLUMNS_V5
DERIVED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("answered", "INTEGER NOT NULL"),
    ("queue_seconds", "REAL"),
    ("archived_at", "TEXT NOT NULL"),
)
# The order rows are read and written in (not the physical order, which
# ALTER TABLE decides): version 1's columns first, so a v1 export keeps its shape.
RECORD_COLUMNS: tuple[str, ...] = (
    tuple(c for c, _ in SCALAR_COLUMNS_V1) + JSON_COLUMNS_V1
    + tuple(c for c, _ in SCALAR_COLUMNS_V2) + JSON_COLUMNS_V2
    + tuple(c for c, _ in SCALAR_COLUMNS_V3)
    + tuple(c for c, _ in SCALAR_COLUMNS_V4) + JSON_COLUMNS_V4
    + JSON_COLUMNS_V5
)  # fmt: skip
ALL_COLUMNS = RECORD_COLUMNS + tuple(c for c, _ in DERIVED_COLUMNS)
# what a version 1 row is read as when version 2 backfills its events (before
# any later version's columns exist)
RECORD_COLUMNS_V2 = RECORD_COLUMNS[
    : len(RECORD_COLUMNS) - len(SCALAR_COLUMNS_V3) - len(SCALAR_COLUMNS_V4)
    - len(JSON_COLUMNS_V4) - len(JSON_COLUMNS_V5)]
_JSON = frozenset(JSON_COLUMNS)

_DDL_V1 = [
    "CREATE TABLE calls (\n  "
    + ",\n  ".join(
        [f"{c} {t}" for c, t in SCALAR_COLUMNS_V1]
        + [f"{c} TEXT NOT NULL DEFAULT '[]'" for c in JSON_COLUMNS_V1]
        + [f"{c} {t}" for c, t in DERIVED_COLUMNS]
    )
    + "\n)",
    "CREATE INDEX calls_arrived ON calls(arrived_at)",
    "CREATE INDEX calls_entity_arrived ON calls(entity, arrived_at)",
    "CREATE INDEX calls_site_arrived ON calls(site, arrived_at)",
    "CREATE INDEX calls_language_arrived ON calls(language, arrived_at)",
    "CREATE INDEX calls_outcome_arrived ON calls(outcome, arrived_at)",
]
EVENT_COLUMNS = ("event_id", "call_id", "seq", "at", "kind", "source", "data", "archived_at")
_DDL_V2 = [
    *(f"ALTER TABLE calls ADD COLUMN {c} {t}" for c, t in SCALAR_COLUMNS_V2),
    *(f"ALTER TABLE calls ADD COLUMN {c} TEXT NOT NULL DEFAULT '[]'" for c in JSON_COLUMNS_V2),
    "CREATE TABLE events (\n"
    "  event_id TEXT NOT NULL PRIMARY KEY,\n"
    "  call_id TEXT NOT NULL,\n"
    "  seq INTEGER NOT NULL,\n"
    "  at TEXT NOT NULL,\n"
    "  kind TEXT NOT NULL,\n"
    "  source TEXT NOT NULL,\n"
    "  data TEXT NOT NULL,\n"
    "  archived_at TEXT NOT NULL\n"
    ")",
    "CREATE INDEX events_call ON events(call_id)",
]
_DDL_V4_SUPERVISION = [
    *(f"ALTER TABLE calls ADD COLUMN {c} {t}" for c, t in SCALAR_COLUMNS_V4),
    *(f"ALTER TABLE calls ADD COLUMN {c} TEXT NOT NULL DEFAULT '[]'" for c in JSON_COLUMNS_V4),
    # survey reports read only the calls that were surveyed
    "CREATE INDEX calls_survey_arrived ON calls(survey_result, arrived_at)",
]
# SQL per version; archive.py also backfills the events of version 1 rows
# when it applies version 2 (that part needs the fold's own code, not SQL).
_DDL_V3_WRAPUP = [
    *(f"ALTER TABLE calls ADD COLUMN {c} {t}" for c, t in SCALAR_COLUMNS_V3),
    "CREATE TABLE agent_events (\n"
    "  event_id TEXT NOT NULL PRIMARY KEY,\n"
    "  agent TEXT NOT NULL,\n"
    "  site TEXT NOT NULL,\n"
    "  kind TEXT NOT NULL,\n"
    "  state TEXT NOT NULL,\n"
    "  reason TEXT,\n"
    "  call_id TEXT,\n"
    "  reachable INTEGER NOT NULL,\n"
    "  at TEXT NOT NULL,\n"
    "  at_ms BIGINT NOT NULL,\n"
    "  data TEXT NOT NULL,\n"
    "  archived_at TEXT NOT NULL\n"
    ")",
    "CREATE INDEX agent_events_agent_at ON agent_events(agent, at_ms)",
    "CREATE INDEX agent_events_at ON agent_events(at_ms)",
]
_DDL_V5_CALLBACK = [
    f"ALTER TABLE calls ADD COLUMN {c} TEXT NOT NULL DEFAULT 'null'" for c in JSON_COLUMNS_V5
]
MIGRATIONS: dict[int, list[str]] = {1: _DDL_V1, 2: _DDL_V2, 3: _DDL_V3_WRAPUP,
                                    4: _DDL_V4_SUPERVISION, 5: _DDL_V5_CALLBACK}
MIGRATION_NAMES = {1: "calls", 2: "events", 3: "wrapup", 4: "supervision", 5: "callback"}


def _pg_ddl(stmt: str) -> str:
    """SQLite's DDL in PostgreSQL's types. Text compares bytewise ("C"), as in
    SQLite: ISO times and ids must sort and range-compare the same on both,
    whatever the database's default collation."""
    stmt = re.sub(r"\bREAL\b", "DOUBLE PRECISION", stmt)
    return re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', stmt)


# The same versions on PostgreSQL: one migration list, two spellings.
PG_MIGRATIONS: dict[int, list[str]] = {
    v: [_pg_ddl(s) for s in stmts] for v, stmts in MIGRATIONS.items()
}
SCHEMA_VERSION_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_version "
    "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
)


def migrations(dialect: str) -> dict[int, list[str]]:
    return PG_MIGRATIONS if dialect == POSTGRESQL else MIGRATIONS

# Column names below come from the constants above, never from input.
_COLS = ", ".join(ALL_COLUMNS)
UPSERT_CALL = (
    f"INSERT INTO calls ({_COLS}) VALUES ({', '.join('?' * len(ALL_COLUMNS))}) "  # noqa: S608
    "ON CONFLICT(call_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in ALL_COLUMNS[1:])
)
# what a row is compared on to tell whether a new fold changed it
SELECT_CALL = f"SELECT {', '.join(ALL_COLUMNS[:-1])} FROM calls WHERE call_id = ?"  # noqa: S608
SELECT_RANGE = (
    f"SELECT {', '.join(RECORD_COLUMNS)} FROM calls "  # noqa: S608
    "WHERE arrived_at >= ? AND arrived_at < ? ORDER BY arrived_at, call_id"
)
INSERT_EVENT = (
    f"INSERT OR IGNORE INTO events ({', '.join(EVENT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
)
# PostgreSQL's spelling: only a repeated event id is ignored (what OR IGNORE
# meets in practice; any other violation is the entry's fault on both).
PG_INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))}) ON CONFLICT (event_id) DO NOTHING"
)
_AE_COLS = ", ".join(AGENT_EVENT_COLUMNS)
INSERT_AGENT_EVENT = (
    f"INSERT OR IGNORE INTO agent_events ({_AE_COLS}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(AGENT_EVENT_COLUMNS))})"
)
PG_INSERT_AGENT_EVENT = (
    f"INSERT INTO agent_events ({_AE_COLS}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(AGENT_EVENT_COLUMNS))}) ON CONFLICT (event_id) DO NOTHING"
)
SELECT_CALL_EVENTS = (
    "SELECT event_id, call_id, seq, at, kind, source, data FROM events WHERE call_id = ?"
)
# A call's events in fold order (own by seq, then late facts by time), calls by arrival.
SELECT_EVENTS_RANGE = (
    "SELECT e.event_id, e.call_id, e.seq, e.at, e.kind, e.source, e.data "
    "FROM calls c INDEXED BY calls_arrived JOIN events e ON e.call_id = c.call_id "
    "WHERE c.arrived_at >= ? AND c.arrived_at < ? "
    "ORDER BY c.arrived_at, c.call_id, e.source != 'call', "
    "CASE WHEN e.source = 'call' THEN e.seq END, e.at, e.event_id"
)
PG_SELECT_EVENTS_RANGE = SELECT_EVENTS_RANGE.replace(" INDEXED BY calls_arrived", "")


@dataclass(frozen=True)
class Dialect:
    """The statements that differ between the two archives."""

    name: str
    insert_event: str
    select_events_range: str
    begin: str  # SQLite takes the write lock at BEGIN, so two writers never deadlock
    insert_agent_event: str = INSERT_AGENT_EVENT


DIALECTS = {
    SQLITE: Dialect(SQLITE, INSERT_EVENT, SELECT_EVENTS_RANGE, "BEGIN IMMEDIATE"),
    POSTGRESQL: Dialect(POSTGRESQL, PG_INSERT_EVENT, PG_SELECT_EVENTS_RANGE, "BEGIN",
                        PG_INSERT_AGENT_EVENT),
}


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


_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def to_row(
    rec: CallRecord, archived_at: str, dump: dict[str, Any] | None = None
) -> tuple[Any, ...]:
    """The ALL_COLUMNS row of a record (`dump`: its model_dump(mode="json"), if at hand)."""
    d = dump if dump is not None else rec.model_dump(mode="json")
    row: list[Any] = [_json(d[c]) if c in _JSON else d[c] for c in RECORD_COLUMNS]
    row += [int(is_answered(rec)), queue_seconds(rec), archived_at]
    return tuple(row)


def from_row(row: Sequence[Any]) -> CallRecord:
    """Rebuild the record from the RECORD_COLUMNS prefix of a row."""
    d = {c: json.loads(row[i]) if c in _JSON else row[i] for i, c in enumerate(RECORD_COLUMNS)}
    return CallRecord.model_validate(d)


def event_row(ev: RecordEvent, archived_at: str) -> tuple[Any, ...]:
    return (ev.id, ev.call_id, ev.seq, ev.at, ev.kind, ev.source, _json(ev.data), archived_at)


def event_from_row(row: Sequence[Any]) -> RecordEvent:
    """An event as stored (it was validated on the way in, so no validation again)."""
    return RecordEvent.model_construct(
        id=row[0], call_id=row[1], seq=row[2], at=row[3], kind=row[4], source=row[5],
        data=json.loads(row[6]),
    )  # fmt: skip


def backfill_event_row(row: Sequence[Any]) -> tuple[Any, ...]:
    """The event 0 of a version 1 row (RECORD_COLUMNS_V2 then archived_at), as
    `record_to_events` would make it, straight from the row: no validation, so
    a row today's model would refuse cannot stop an archive's upgrade (its
    call keeps its row; only a later fold of it would be refused)."""
    d = {c: json.loads(row[i]) if c in _JSON else row[i]
         for i, c in enumerate(RECORD_COLUMNS_V2)}
    return (f"{d['call_id']}:0", d["call_id"], 0, d["ended_at"] or d["arrived_at"], "record",
            "call", _json(diff({}, d)), row[-1])
