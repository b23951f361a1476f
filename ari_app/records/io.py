"""Export archived calls (folded records as JSONL/CSV, or their events as JSONL)
and import JSONL back, all-or-nothing.

An import line is detected on its own: an object with a `kind` is an event
(records/events.py), anything else a record of schema 1 or 2 (every version 1
record is a valid version 2 record), which is kept as its call's event 0. So
one file may hold any mix, e.g. an old export plus the late facts tagged since.

Import reads the file twice: once to validate every line (so a bad file is
refused with every bad line named, not just the first), then again to store
it in a single transaction. Memory stays flat however big the file is. What
only the fold can find (a call's events that together do not make a valid
record) is found on the second pass: the whole import is rolled back and the
line named.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from ari_app.records.archive import JSON_COLUMNS, RECORD_COLUMNS, Archive, BadEvent, FoldError
from ari_app.records.events import RecordEvent, problem, record_to_events
from ari_app.records.model import CallRecord, utcnow

# The CSV has one column per archive column, lists as compact JSON text:
# version 1's columns first, then version 2's, so old readers keep their columns.
CSV_COLUMNS: tuple[str, ...] = RECORD_COLUMNS
_BATCH = 5000


def export_events(archive: Archive, start_utc: str, end_utc: str, out: IO[str]) -> int:
    """Write the events of the calls with start_utc <= arrived_at < end_utc, a
    call's events together in fold order; return how many events."""
    n = 0
    for ev in archive.iter_events(start_utc, end_utc):
        out.write(ev.model_dump_json())
        out.write("\n")
        n += 1
    return n


def export(archive: Archive, start_utc: str, end_utc: str, fmt: str, out: IO[str]) -> int:
    """Write records with start_utc <= arrived_at < end_utc; return how many."""
    n = 0
    if fmt == "jsonl":
        for rec in archive.iter_range(start_utc, end_utc):
            out.write(rec.model_dump_json())
            out.write("\n")
            n += 1
    elif fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for rec in archive.iter_range(start_utc, end_utc):
            d = rec.model_dump(mode="json")
            w.writerow(
                [
                    json.dumps(d[c], ensure_ascii=False, separators=(",", ":"))
                    if c in JSON_COLUMNS
                    else ("" if d[c] is None else d[c])
                    for c in CSV_COLUMNS
                ]
            )
            n += 1
    else:
        raise ValueError(f"unknown export format {fmt!r}: jsonl or csv")
    return n


@dataclass
class BadLine:
    line: int
    reason: str


@dataclass
class ImportResult:
    lines: int = 0
    imported: int = 0
    duplicates: int = 0
    bad: list[BadLine] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return bool(self.bad)


def _numbered(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as f:
        for i, raw in enumerate(f, start=1):
            line = raw.rstrip(b"\r\n")
            if line.strip():  # blank lines (e.g. a trailing one) carry nothing
                yield i, line


def _reason(e: ValidationError) -> str:
    parts = []
    for x in e.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in x["loc"]) or "(record)"
        parts.append(f"{where}: {x['msg']}")
    more = e.error_count() - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_line(line: bytes) -> list[RecordEvent]:
    """The events one import line stands for. Raises ValueError (ValidationError
    included) naming what is wrong."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"not a JSON object but {type(obj).__name__}")
    if "kind" in obj:
        ev = RecordEvent.model_validate(obj)
        why = problem(ev)
        if why:
            raise ValueError(f"event: {why}")
        return [ev]
    return record_to_events(CallRecord.model_validate(obj))


def validate_file(path: str | os.PathLike[str]) -> ImportResult:
    res = ImportResult()
    for n, line in _numbered(Path(path)):
        res.lines += 1
        try:
            parse_line(line)
        except ValidationError as e:
            res.bad.append(BadLine(n, _reason(e)))
        except ValueError as e:
            res.bad.append(BadLine(n, str(e)))
    return res


def import_jsonl(archive: Archive, path: str | os.PathLike[str]) -> ImportResult:
    """Validate the whole file; import it only if every line is a valid record or event."""
    res = validate_file(path)
    if res.refused:
        return res
    now = utcnow()
    batch: list[RecordEvent] = []
    line_of: dict[str, int] = {}  # call id -> its last line in the batch, to name a fold error

    def flush() -> None:
        try:
            stored = archive.add_events_in_tx(batch, now)
        except FoldError as e:
            raise _Refused(BadLine(line_of[e.call_id], e.reason)) from e
        except BadEvent as e:  # validate_file let it through: cannot happen, but say so
            raise _Refused(BadLine(0, str(e))) from e
        res.imported += stored.new
        batch.clear()
        line_of.clear()

    try:
        with archive.transaction():
            for n, line in _numbered(Path(path)):
                for ev in parse_line(line):
                    batch.append(ev)
                    line_of[ev.call_id] = n
                if len(batch) >= _BATCH:
                    flush()
            flush()
    except _Refused as r:
        res.imported = 0
        res.bad.append(r.bad)
        return res
    res.duplicates = res.lines - res.imported
    return res


class _Refused(Exception):
    def __init__(self, bad: BadLine) -> None:
        super().__init__(bad.reason)
        self.bad = bad
