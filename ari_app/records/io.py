"""Export archived records to JSONL/CSV and import JSONL back, all-or-nothing.

Import reads the file twice: once to validate every line (so a bad file is
refused with every bad line named, not just the first), then again to insert
in a single transaction. Memory stays flat however big the file is, and a
line that somehow fails the second time rolls the whole import back.
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

from ari_app.records.archive import JSON_COLUMNS, SCALAR_COLUMNS, Archive
from ari_app.records.model import CallRecord, utcnow

# The CSV has one column per archive column, lists as compact JSON text.
CSV_COLUMNS: tuple[str, ...] = tuple(c for c, _ in SCALAR_COLUMNS) + JSON_COLUMNS
_BATCH = 5000


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


def validate_file(path: str | os.PathLike[str]) -> ImportResult:
    res = ImportResult()
    for n, line in _numbered(Path(path)):
        res.lines += 1
        try:
            CallRecord.model_validate_json(line)
        except ValidationError as e:
            res.bad.append(BadLine(n, _reason(e)))
    return res


def import_jsonl(archive: Archive, path: str | os.PathLike[str]) -> ImportResult:
    """Validate the whole file; import it only if every line is a valid record."""
    res = validate_file(path)
    if res.refused:
        return res
    now = utcnow()
    batch: list[CallRecord] = []
    with archive.transaction():
        for _n, line in _numbered(Path(path)):
            batch.append(CallRecord.model_validate_json(line))
            if len(batch) >= _BATCH:
                res.imported += archive.insert_in_tx(batch, now)
                batch.clear()
        res.imported += archive.insert_in_tx(batch, now)
    res.duplicates = res.lines - res.imported
    return res
