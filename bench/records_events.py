"""Benchmark: what records as events cost the archive (issue 11, part 2).

    .venv/bin/python bench/records_events.py [--calls 50000] [--label v2]
    # the same measures on another checkout (e.g. main before the change):
    .venv/bin/python bench/records_events.py --tree /work/main --label v1

Measures, on N synthetic calls (the hand-checked report set of
tests/unit/test_reports_compute.py repeated through March 2025):

* insert_v1:  storing N version 1 records with Archive.insert_in_tx, 5000 a
              transaction (import, bench/reports.py, v1 stream entries);
* report:     compute() for March over that archive, median of 5 (reports
              read only `calls`, so this should not move);
* events:     storing the same calls as the step-by-step events the app emits
              (the equality test's replay), 5000 events a transaction;
* migrate:    opening a version 1 archive of N rows (the in-place upgrade that
              backfills each row's event 0);
* file sizes.

Results are merged into bench/results/records_events.json under --label.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def clones(n: int, template: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """n calls: the template's March calls, shifted to spread over March."""
    march = [c for c in template if c["arrived_at"].startswith("2025-03")]
    out = []
    for i in range(n):
        c = dict(march[i % len(march)])
        day = 1 + (i // len(march)) % 28
        c["call_id"] = f"b{i:07d}"
        for k, v in list(c.items()):
            if isinstance(v, str) and v.startswith("2025-03-0"):
                c[k] = f"2025-03-{day:02d}" + v[10:]
        c.pop("queue", None)
        out.append(c)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=50_000)
    ap.add_argument("--label", default="v2")
    ap.add_argument("--tree", default=str(ROOT), help="checkout whose ari_app to measure")
    ap.add_argument("--out", default=str(ROOT / "bench/results/records_events.json"))
    args = ap.parse_args()
    sys.path.insert(0, args.tree)
    from ari_app.records.archive import Archive
    from ari_app.records.model import CallRecord, utcnow
    from ari_app.reports.compute import Period, Query, compute

    sys.path.insert(1, str(ROOT))  # the test data, from this checkout
    from tests.unit.test_reports_compute import CALLS

    n = args.calls
    records = [CallRecord.model_validate(c) for c in clones(n, CALLS)]
    res: dict[str, Any] = {"calls": n, "tree": args.tree, "python": platform.python_version(),
                           "machine": platform.machine(), "cpus": os.cpu_count(),
                           "measured_at": utcnow(), "loadavg_1m_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as d:
        v1_path = Path(d) / "v1.sqlite3"
        with Archive(v1_path) as a:
            t = time.perf_counter()
            for i in range(0, n, 5000):
                with a.transaction():
                    a.insert_in_tx(records[i : i + 5000], utcnow())
            res["insert_v1_seconds"] = round(time.perf_counter() - t, 3)
            res["insert_v1_per_second"] = round(n / res["insert_v1_seconds"])
            q = Query(period=Period.month("2025-03", "UTC"))
            runs = []
            for _ in range(5):
                t = time.perf_counter()
                rep = compute(a.db, q)
                runs.append(time.perf_counter() - t)
            assert rep.totals.calls == n
            res["report_month_seconds_median"] = round(statistics.median(runs), 4)
            a.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        res["file_bytes_v1_insert"] = v1_path.stat().st_size

        if hasattr(Archive, "add_events"):
            from tests.unit.test_records_equality import as_call_emits

            events = [ev for r in records for ev in as_call_emits(r)]
            ev_path = Path(d) / "events.sqlite3"
            with Archive(ev_path) as a:
                t = time.perf_counter()
                for i in range(0, len(events), 5000):
                    with a.transaction():
                        a.add_events_in_tx(events[i : i + 5000], utcnow())
                res["events"] = len(events)
                res["events_seconds"] = round(time.perf_counter() - t, 3)
                res["events_per_second"] = round(len(events) / res["events_seconds"])
                assert a.count() == n
                a.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            res["file_bytes_events"] = ev_path.stat().st_size
            res["migrate_seconds"] = migrate(Path(d) / "old.sqlite3", records)
            res["migrate_rows_per_second"] = round(n / res["migrate_seconds"])

    res["loadavg_1m_end"] = os.getloadavg()[0]  # other work on the machine skews the rates
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    all_res = json.loads(out.read_text()) if out.exists() else {}
    all_res[args.label] = res
    out.write_text(json.dumps(all_res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    return 0


def migrate(path: Path, records: list[Any]) -> float:
    """Build a version 1 archive of these records, then time opening it."""
    import sqlite3

    from ari_app.records.archive import Archive
    from ari_app.records.schema import (
        ALL_COLUMNS,
        DERIVED_COLUMNS,
        JSON_COLUMNS_V1,
        MIGRATIONS,
        SCALAR_COLUMNS_V1,
        to_row,
    )

    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
    for stmt in MIGRATIONS[1]:
        db.execute(stmt)
    db.execute("INSERT INTO schema_version VALUES (1, '2025-01-01T00:00:00.000Z')")
    cols = [c for c, _ in SCALAR_COLUMNS_V1] + list(JSON_COLUMNS_V1)
    cols += [c for c, _ in DERIVED_COLUMNS]
    idx = [ALL_COLUMNS.index(c) for c in cols]
    sql = f"INSERT INTO calls ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    db.executemany(sql, ([to_row(r, "2025-04-01T00:00:00.000Z")[i] for i in idx]
                         for r in records))
    db.commit()
    db.close()
    t = time.perf_counter()
    with Archive(path) as a:
        assert a.version() == 2 and a.count_events() == len(records)
    return round(time.perf_counter() - t, 3)


if __name__ == "__main__":
    raise SystemExit(main())
