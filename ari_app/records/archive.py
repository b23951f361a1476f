"""The durable archive: every event of every call, and one `calls` row per call
folded from them, in one SQLite file or one PostgreSQL database (backend.py).

Events are the truth; the `calls` row is their fold (records/events.py), kept
up to date so reports stay plain SQL over one row per call. Storing events is
idempotent by event id, and a call is folded again only when it gained an
event it did not have, so every path (stream redelivery, spool drain, a second
import) can repeat itself freely: a repeat adds no event and writes no row.
A version 1 record is kept as its call's event 0 (`record_to_events`), so the
first record per call_id still wins and a later late fact still folds onto it.

On SQLite, WAL lets reports read while the archiver writes; synchronous=NORMAL
in WAL mode can lose the last transactions on power loss but never corrupts the
file. On both, the archiver only XACKs after commit, so at worst those entries
are delivered again and stored again, which changes nothing. Both backends run
the same code: idempotency by event id (INSERT OR IGNORE / ON CONFLICT DO
NOTHING), then a re-fold and an upsert of the calls row (ON CONFLICT DO UPDATE).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pydantic import ValidationError

from ari_app.records.backend import (
    POSTGRESQL,
    ArchiveError,
    Connection,
    PgConnection,
    connect_sqlite,
    parse_target,
)
from ari_app.records.backend import errors as backend_errors
from ari_app.records.backend import password_file as backend_password_file
from ari_app.records.events import RecordEvent, fold, problem, record_to_events
from ari_app.records.model import CallRecord, utcnow
from ari_app.records.schema import (
    ALL_COLUMNS,
    BACKFILL_COLUMNS,
    DERIVED_COLUMNS,
    DIALECTS,
    JSON_COLUMNS,
    RECORD_COLUMNS,
    SCALAR_COLUMNS,
    SCHEMA_VERSION,
    SCHEMA_VERSION_DDL,
    SELECT_CALL,
    SELECT_CALL_EVENTS,
    SELECT_RANGE,
    UPSERT_CALL,
    backfill_event_row,
    event_from_row,
    event_row,
    from_row,
    is_answered,
    migrations,
    queue_seconds,
    to_row,
)

__all__ = [
    "ALL_COLUMNS", "DERIVED_COLUMNS", "JSON_COLUMNS", "RECORD_COLUMNS", "SCALAR_COLUMNS",
    "SCHEMA_VERSION", "Archive", "ArchiveError", "BadEvent", "FoldError", "Stored", "from_row",
    "is_answered", "queue_seconds", "to_row",
]  # fmt: skip

_BACKFILL_BATCH = 5000


_MIGRATION_LOCK = 109_0002  # pg_advisory_xact_lock key: "hotline archive migrations"


class BadEvent(ValueError):
    """An event no archive may keep (events.problem says why)."""

    def __init__(self, event_id: str, reason: str) -> None:
        super().__init__(f"event {event_id}: {reason}")
        self.event_id = event_id
        self.reason = reason


class FoldError(ValueError):
    """A call's events, with the new ones, do not fold into a valid record."""

    def __init__(self, call_id: str, reason: str) -> None:
        super().__init__(f"call {call_id}: events do not fold into a record: {reason}")
        self.call_id = call_id
        self.reason = reason


@dataclass
class Stored:
    new: int = 0  # events the archive did not have
    duplicates: int = 0  # events it already had (redelivery, drain, a second import)
    rows: int = 0  # `calls` rows written: a new call, or one a new event changed
    waiting: int = 0  # calls whose events do not describe a call yet (arrival unseen)

    def add(self, other: Stored) -> None:
        self.new += other.new
        self.duplicates += other.duplicates
        self.rows += other.rows
        self.waiting += other.waiting


class Archive:
    """`Archive(spec)`: spec is a path, `sqlite:///path` or `postgresql://…` (backend.py).

    `upto` stops the migrations at an earlier version (tests build old archives)."""

    def __init__(
        self,
        spec: str | os.PathLike[str],
        *,
        password_file: str | os.PathLike[str] | None = None,
        upto: int = SCHEMA_VERSION,
    ) -> None:
        self.target = parse_target(spec)
        self.db: Connection
        if self.target.dialect == POSTGRESQL:
            self.db = PgConnection(self.target.url, backend_password_file(password_file))
        self.dialect = DIALECTS[self.target.dialect]
        self.transient_errors, self.db_errors = backend_errors(self.target.dialect)
        if self.target.dialect != POSTGRESQL:
            assert self.target.path is not None
            self.path = self.target.path
            try:
                self.db = connect_sqlite(self.target.path)
            except self.db_errors as e:
                raise ArchiveError(f"{self.target.shown}: cannot open or upgrade the archive: "
                                   f"{e}") from e
        try:
            self._migrate(upto)
        except self.db_errors as e:
            self.db.close()
            raise ArchiveError(f"{self.target.shown}: cannot open or upgrade the archive: "
                               f"{str(e).strip()}") from e
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def version(self) -> int:
        row = self.db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def _migrate(self, upto: int = SCHEMA_VERSION) -> None:
        """Apply each missing version in its own transaction. Every step re-reads the
        version under the migration lock, so two programs opening one new or old
        archive at once apply each version once (on PostgreSQL an advisory lock,
        on SQLite BEGIN IMMEDIATE's write lock)."""
        steps = migrations(self.dialect.name)
        # Reading the version first lets a reader with no right to create
        # tables (a report login on PostgreSQL) open an up-to-date archive.
        have = self.version() if self._has_version_table() else 0
        if have == 0:
            with self.transaction():
                self._lock_migrations()
                self.db.execute(SCHEMA_VERSION_DDL)
            have = self.version()
        if have > SCHEMA_VERSION:
            raise ArchiveError(f"{self.target.shown}: archive schema {have} is newer than "
                               f"this program ({SCHEMA_VERSION})")
        for v in range(have + 1, upto + 1):
            with self.transaction():
                self._lock_migrations()
                if self.version() >= v:
                    continue  # another program applied it meanwhile
                for stmt in steps[v]:
                    self.db.execute(stmt)
                if v == 2:
                    self._backfill_events()
                self.db.execute("INSERT INTO schema_version VALUES (?, ?)", (v, utcnow()))

    def _has_version_table(self) -> bool:
        if self.dialect.name == POSTGRESQL:
            sql = "SELECT to_regclass('schema_version') IS NOT NULL"
        else:
            sql = "SELECT COUNT(*) FROM sqlite_master WHERE name = 'schema_version'"
        return bool(self.db.execute(sql).fetchone()[0])

    def _lock_migrations(self) -> None:
        if self.dialect.name == POSTGRESQL:
            self.db.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))

    def _backfill_events(self) -> None:
        """Version 1 kept only rows: give each its event 0, so a late fact can fold onto it.

        The event carries the row's own archived_at: it was archived then."""
        cols = ", ".join(BACKFILL_COLUMNS)
        cur = self.db.execute(f"SELECT {cols}, archived_at FROM calls")  # noqa: S608
        while rows := cur.fetchmany(_BACKFILL_BATCH):
            self.db.executemany(self.dialect.insert_event,
                                [backfill_event_row(row) for row in rows])

    def transaction(self) -> _Tx:
        if isinstance(self.db, PgConnection):
            self.db.ensure_open()
        return _Tx(self.db, self.dialect.begin)

    # -- writing --------------------------------------------------------------

    def insert(self, records: Iterable[CallRecord]) -> int:
        """Store version 1 records in one transaction; return how many were new."""
        with self.transaction():
            return self.insert_in_tx(records, utcnow())

    def insert_in_tx(self, records: Iterable[CallRecord], archived_at: str) -> int:
        new = 0
        for rec in records:
            dump = rec.model_dump(mode="json")
            (ev,) = record_to_events(rec, dump)
            if not self.db.execute(self.dialect.insert_event, event_row(ev, archived_at)).rowcount:
                continue  # the first record per call_id wins
            new += 1
            if self._only_event(rec.call_id):
                # The usual case (a v1 record alone): its fold is the record
                # itself (tested), so skip reading it back and folding it.
                self.db.execute(UPSERT_CALL, to_row(rec, archived_at, dump))
            else:
                self._refold(rec.call_id, archived_at)
        return new

    def _only_event(self, call_id: str) -> bool:
        cur = self.db.execute("SELECT COUNT(*) FROM events WHERE call_id = ?", (call_id,))
        return int(cur.fetchone()[0]) == 1

    def add_events(self, events: Iterable[RecordEvent]) -> Stored:
        """Store events and re-fold their calls, all in one transaction."""
        with self.transaction():
            return self.add_events_in_tx(events, utcnow())

    def add_events_in_tx(self, events: Iterable[RecordEvent], archived_at: str) -> Stored:
        """Keep the events not seen before, then re-fold every call that gained one.

        Raises BadEvent for an event no archive may keep, and FoldError when a
        call's events no longer fold into a valid record; the caller's
        transaction must then be rolled back."""
        out = Stored()
        touched: dict[str, None] = {}
        for ev in events:
            why = problem(ev)
            if why is not None:
                raise BadEvent(ev.id, why)
            if self.db.execute(self.dialect.insert_event, event_row(ev, archived_at)).rowcount:
                out.new += 1
                touched[ev.call_id] = None
            else:
                out.duplicates += 1
        for call_id in touched:
            written = self._refold(call_id, archived_at)
            if written is None:
                out.waiting += 1
            else:
                out.rows += written
        return out

    def _refold(self, call_id: str, archived_at: str) -> int | None:
        """Fold all of a call's events into its row: 1 if written, 0 if unchanged,
        None while they do not describe a call yet."""
        events = self.events_of(call_id)
        try:
            rec = fold(events)
        except ValidationError as e:
            raise FoldError(call_id, _reason(e)) from e
        if rec is None:
            return None
        if rec.call_id != call_id:
            raise FoldError(call_id, f"the events name another call, {rec.call_id!r}")
        row = to_row(rec, archived_at)
        old = self.db.execute(SELECT_CALL, (call_id,)).fetchone()
        if old is not None and tuple(old) == row[:-1]:
            return 0
        self.db.execute(UPSERT_CALL, row)
        return 1

    # -- reading --------------------------------------------------------------

    def events_of(self, call_id: str) -> list[RecordEvent]:
        return [event_from_row(r) for r in self.db.execute(SELECT_CALL_EVENTS, (call_id,))]

    def has(self, call_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        return row is not None

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def count_events(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def iter_range(self, start_utc: str, end_utc: str) -> Iterator[CallRecord]:
        """Records with start_utc <= arrived_at < end_utc, oldest first."""
        for row in self.db.execute(SELECT_RANGE, (start_utc, end_utc)):
            yield from_row(row)

    def iter_events(self, start_utc: str, end_utc: str) -> Iterator[RecordEvent]:
        """The events of the calls with start_utc <= arrived_at < end_utc: calls
        oldest first, each call's events in fold order."""
        for row in self.db.execute(self.dialect.select_events_range, (start_utc, end_utc)):
            yield event_from_row(row)

    def optimize(self) -> None:
        self.db.execute("ANALYZE" if self.dialect.name == POSTGRESQL else "PRAGMA optimize")


def _reason(e: ValidationError) -> str:
    parts = []
    for x in e.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in x["loc"]) or "(record)"
        parts.append(f"{where}: {x['msg']}")
    return "; ".join(parts)


class _Tx:
    """BEGIN (IMMEDIATE on SQLite) ... COMMIT, ROLLBACK on any exception."""

    def __init__(self, db: Connection, begin: str) -> None:
        self.db = db
        self.begin = begin

    def __enter__(self) -> Connection:
        self.db.execute(self.begin)
        return self.db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.db.execute("COMMIT")
            return
        if isinstance(self.db, PgConnection) and (self.db.conn.closed or self.db.conn.broken):
            return  # nothing to roll back: the server ended the transaction with the link
        self.db.execute("ROLLBACK")
