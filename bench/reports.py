"""Benchmark: the month and year reports over a 4M-call archive.

    .venv/bin/python bench/reports.py [--db /tmp/hotline-bench.sqlite3] [--regen] [--runs 3]
        [--pg auto|postgresql://user@host:port/db] [--json-out FILE]

Builds (once; reused while its row count matches) an archive of 4,000,000
synthetic calls for 2025, of which March holds exactly 340,541 with the
ministry's entity mix, loaded through Archive.insert_in_tx in batches. Then
times, each in a fresh child process so ru_maxrss is that run's own peak:

* baseline-count: SELECT COUNT(*) over the range (index only),
* baseline-scan:  one pass reading every row of the range (SUM of a column),
* report:         compute() -- every figure and breakdown -- for the range,

for March (month) and the whole year, in Asia/Qatar time. Not part of the tests.

With --pg, the same calls are copied into a PostgreSQL archive (COPY from the
SQLite one, so both hold identical rows; `auto` starts a throwaway server with
scripts/stack.py) and every measurement runs on both backends; the report's
statement must come out the same on both.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ari_app.records.archive import Archive  # noqa: E402
from ari_app.records.model import CallRecord, Outcome, iso  # noqa: E402
from ari_app.reports.compute import Period, Query, compute  # noqa: E402

TZ = "Asia/Qatar"
YEAR = 2025
YEAR_TOTAL = 4_000_000
MARCH_TOTAL = 340_541
MARCH_MIX = {"phcc": 124_341, "moph": 46_091, "mehe": 19_155, "moci": 21_412}
# The ministry's "other departments" (129,542 in March): the generic "other"
# option, calls that ended before a department was chosen (NO_DEPT), and eight
# smaller entities, each below MEHE so the named four stay the ministry's four.
NO_DEPT = "-"
OTHER_SPLIT = {
    "other": 0.30, NO_DEPT: 0.12, "moi": 0.13, "adlsa": 0.10, "mme": 0.09, "moj": 0.07,
    "mof": 0.07, "kahramaa": 0.05, "mocs": 0.04, "mota": 0.03,
}  # fmt: skip
OTHER_MARCH = MARCH_TOTAL - sum(MARCH_MIX.values())
# Outcomes of calls that reached a department, and of those that did not.
OUTCOMES = [
    (Outcome.ANSWERED, 0.89), (Outcome.ABANDONED_IN_QUEUE, 0.055),
    (Outcome.COMPLETED_IN_MENU, 0.025), (Outcome.MAX_WAIT_FALLBACK, 0.01),
    (Outcome.NO_AGENT_FALLBACK, 0.01), (Outcome.TRANSFERRED, 0.01),
]  # fmt: skip
NO_DEPT_OUTCOMES = [
    (Outcome.ABANDONED_IN_MENU, 0.8),
    (Outcome.REJECTED, 0.1),
    (Outcome.FAILED, 0.1),
]
# Local hour-of-day weights: a government line, busy 8:00-15:00.
HOUR_W = [1, 1, 1, 1, 1, 2, 4, 8, 14, 16, 16, 15, 14, 13, 11, 8, 6, 5, 4, 4, 3, 2, 2, 1]
SITES = [("doha", 0.6), ("alkhor", 0.25), ("wakra", 0.15)]


def _exact(mix: dict[str, int], rng: random.Random) -> list[str]:
    out = [k for k, n in mix.items() for _ in range(n)]
    rng.shuffle(out)
    return out


def _split(total: int, weights: dict[str, float]) -> dict[str, int]:
    keys = list(weights)
    counts = {k: int(total * weights[k]) for k in keys}
    counts[keys[0]] += total - sum(counts.values())
    return counts


def month_entities(month: int, n: int, rng: random.Random) -> list[str]:
    if month == 3:
        mix = dict(MARCH_MIX) | _split(OTHER_MARCH, OTHER_SPLIT)
    else:  # same shares as March
        mix = {k: int(n * v / MARCH_TOTAL) for k, v in MARCH_MIX.items()}
        mix |= _split(n - sum(mix.values()), OTHER_SPLIT)
    assert sum(mix.values()) == n
    return _exact(mix, rng)


def make_record(i: int, entity: str, arrived: datetime, rng: random.Random) -> CallRecord:
    table = NO_DEPT_OUTCOMES if entity == NO_DEPT else OUTCOMES
    outcome = rng.choices([o for o, _ in table], [w for _, w in table])[0]
    lang = "ar" if rng.random() < 0.7 else "en"
    menu = round(rng.uniform(4, 25), 3)
    t_menu = arrived + timedelta(seconds=menu)
    rec: dict[str, object] = {
        "schema_version": 1, "call_id": f"bench-{i:08d}", "arrived_at": iso(arrived),
        "answered_at": iso(arrived), "language": lang, "menu_seconds": menu,
        "caller": f"+9745{rng.randrange(10**7):07d}", "dialled": "109",
        # Given explicitly: model_construct's default_factory path is ~50x slower.
        "entity_path": [], "prompts": [], "queue": [], "offers": [],
    }  # fmt: skip
    if entity != NO_DEPT:
        rec["entity"] = entity
    end = t_menu
    if outcome in (Outcome.ANSWERED, Outcome.ABANDONED_IN_QUEUE, Outcome.MAX_WAIT_FALLBACK,
                   Outcome.NO_AGENT_FALLBACK):  # fmt: skip
        rec["queue_joined_at"] = iso(t_menu)
        if outcome is Outcome.ANSWERED:
            soa = round(rng.expovariate(1 / 11.0), 3)
            talk = round(rng.lognormvariate(5.0, 0.6), 3)
            site = rng.choices([s for s, _ in SITES], [w for _, w in SITES])[0]
            rec.update(
                speed_of_answer=soa, talk_seconds=talk, site=site, agent=f"{site}-{i % 40:02d}",
                agent_answered_at=iso(t_menu + timedelta(seconds=soa)),
                wrapup_seconds=round(rng.uniform(5, 60), 3) if rng.random() < 0.5 else None,
            )  # fmt: skip
            end = t_menu + timedelta(seconds=soa + talk)
        else:
            end = t_menu + timedelta(seconds=rng.expovariate(1 / 40.0))
    rec["menu_left_at"] = iso(t_menu)
    rec["ended_at"] = iso(end)
    rec["outcome"] = outcome
    return CallRecord.model_construct(**rec)  # type: ignore[arg-type]


def generate(db: Path) -> float:
    db.parent.mkdir(parents=True, exist_ok=True)
    for p in (db, db.with_suffix(db.suffix + "-wal"), db.with_suffix(db.suffix + "-shm")):
        p.unlink(missing_ok=True)
    rng = random.Random(109)
    z = ZoneInfo(TZ)
    days_in = {m: (date(YEAR + (m == 12), m % 12 + 1, 1) - date(YEAR, m, 1)).days
               for m in range(1, 13)}  # fmt: skip
    rest = YEAR_TOTAL - MARCH_TOTAL
    other_days = sum(d for m, d in days_in.items() if m != 3)
    per_month = {m: rest * d // other_days for m, d in days_in.items() if m != 3}
    per_month[1] += rest - sum(per_month.values())
    per_month[3] = MARCH_TOTAL
    t0 = time.perf_counter()
    i = 0
    with Archive(db) as archive:
        for m in range(1, 13):
            ents = month_entities(m, per_month[m], rng)
            # Arrival order, as the archiver appends; records built a chunk at a
            # time so memory stays flat.
            arrivals = sorted(
                (
                    datetime(YEAR, m, 1 + rng.randrange(days_in[m]), h, tzinfo=z)
                    + timedelta(seconds=rng.uniform(0, 3600)),
                    ent,
                )
                for ent, h in zip(ents, rng.choices(range(24), HOUR_W, k=len(ents)), strict=True)
            )
            for k in range(0, len(arrivals), 10_000):
                recs = []
                for local, ent in arrivals[k : k + 10_000]:
                    recs.append(make_record(i, ent, local.astimezone(UTC), rng))
                    i += 1
                with archive.transaction():
                    archive.insert_in_tx(recs, iso(datetime.now(UTC)))
            print(f"  month {m:02d}: {len(arrivals):,} calls", file=sys.stderr)
        archive.db.execute("ANALYZE")
    return time.perf_counter() - t0


def load_postgres(sqlite_db: Path, url: str) -> float:
    """Copy every calls row of the SQLite archive into the PostgreSQL one (reports
    read only `calls`; the events, several GB at 4M calls, would only cost time)."""
    import sqlite3

    from ari_app.records.schema import ALL_COLUMNS

    t0 = time.perf_counter()
    src = sqlite3.connect(sqlite_db)
    with Archive(url) as dst:
        conn = dst.db.conn  # type: ignore[union-attr]
        with conn.transaction():
            conn.execute("TRUNCATE calls, events")
            for table, cols in (("calls", ALL_COLUMNS),):
                names = ", ".join(cols)
                with conn.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as cp:
                    for row in src.execute(f"SELECT {names} FROM {table}"):
                        cp.write_row(row)
        conn.execute("ANALYZE")
    src.close()
    return time.perf_counter() - t0


def measure(db: str, kind: str, span: str) -> dict[str, float]:
    """Runs in the child: one measurement, its wall time and this process's peak RSS."""
    period = (
        Period.month(f"{YEAR}-03", TZ)
        if span == "month"
        else Period(date(YEAR, 1, 1), date(YEAR, 12, 31), TZ)
    )
    start, end = period.utc_bounds()
    with Archive(db) as archive:
        t0 = time.perf_counter()
        if kind == "baseline-count":
            n = archive.db.execute(
                "SELECT COUNT(*) FROM calls WHERE arrived_at >= ? AND arrived_at < ?", (start, end)
            ).fetchone()[0]
        elif kind == "baseline-scan":
            total = "SUM" if archive.dialect.name == "postgresql" else "TOTAL"
            n = archive.db.execute(
                f"SELECT COUNT(*), {total}(talk_seconds) FROM calls "
                "WHERE arrived_at >= ? AND arrived_at < ?", (start, end),
            ).fetchone()[0]  # fmt: skip
        else:
            rep = compute(archive.db, Query(period=period, top=4))
            n = rep.totals.calls
            st = rep.statement()
            print(json.dumps(st), file=sys.stderr)
        wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"calls": n, "wall_s": wall, "maxrss_kib": rss, "hwm_kib": _vm_hwm() or rss}


def _vm_hwm() -> int | None:
    """This process image's own peak RSS (KiB).

    Linux carries ru_maxrss across exec, so a child started by a big parent
    reports the parent's peak; VmHWM belongs to the new image only.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--db", type=Path, default=Path(tempfile.gettempdir()) / "hotline-bench.sqlite3"
    )
    ap.add_argument("--regen", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pg", help="also measure on PostgreSQL: a URL, or `auto` (a throwaway "
                                 "server; password via PGPASSFILE)")
    ap.add_argument("--json-out", type=Path, help="write the results here as JSON")
    ap.add_argument("--target", help=argparse.SUPPRESS)
    ap.add_argument("--measure", nargs=2, metavar=("KIND", "SPAN"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.measure:
        print(json.dumps(measure(a.target or str(a.db), *a.measure)))
        return 0

    have = 0
    if a.db.exists() and not a.regen:
        with Archive(a.db) as archive:
            have = archive.count()
    if have != YEAR_TOTAL:
        print(f"generating {YEAR_TOTAL:,} calls into {a.db} ...", file=sys.stderr)
        gen = generate(a.db)
        print(f"generated and loaded in {gen:.1f} s", file=sys.stderr)
    else:
        print(f"reusing {a.db} ({have:,} calls)", file=sys.stderr)
    print(f"archive size: {a.db.stat().st_size / 2**20:.0f} MiB", file=sys.stderr)
    load0 = os.getloadavg()[0]

    targets = {"sqlite": str(a.db)}
    server = None
    loaded: float | None = None
    try:
        if a.pg:
            url = a.pg
            if url == "auto":
                server, url = _start_postgres()
            targets["postgresql"] = url
            print("copying the archive into PostgreSQL ...", file=sys.stderr)
            loaded = load_postgres(a.db, url)
            print(f"copied in {loaded:.1f} s", file=sys.stderr)
        out_all = {name: _measure_all(target, a.runs) for name, target in targets.items()}
    finally:
        if server is not None:
            server.stop()
    for name, results in out_all.items():
        _table(name, results)
    if a.json_out:
        doc = {
            "bench": "bench/reports.py", "calls": YEAR_TOTAL, "march_calls": MARCH_TOTAL,
            "runs": a.runs, "measured_at": iso(datetime.now(UTC)),
            "loadavg_1m_start": load0, "loadavg_1m_end": os.getloadavg()[0], "cpus": os.cpu_count(),
            "postgres_copy_seconds": loaded,
            "postgres_copied": "calls table only (reports read nothing else)",
            "postgres_server": "auto: scripts/stack.py Postgres (Debian PostgreSQL, defaults "
                               "but fsync/full_page_writes off; reads only)" if a.pg == "auto"
                               else "given by URL" if a.pg else None,
            "results": {name: {f"{span}/{kind}": r for (span, kind), r in results.items()}
                        for name, results in out_all.items()},
        }  # fmt: skip
        a.json_out.parent.mkdir(parents=True, exist_ok=True)
        a.json_out.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


def _start_postgres() -> tuple[Any, str]:
    from scripts.stack import Postgres

    offset = int(os.environ.get("HOTLINE_PORT_OFFSET", "0"))
    server = Postgres(5532 + offset + 50)
    server.start()
    pgpass = Path(tempfile.mkdtemp()) / "pgpass"
    pgpass.write_text(f"127.0.0.1:{server.port}:*:{server.user}:{server.password}\n")
    pgpass.chmod(0o600)
    os.environ["PGPASSFILE"] = str(pgpass)  # the measuring children inherit it
    server.psql("CREATE DATABASE bench")
    return server, server.url("bench")


def _measure_all(target: str, runs_n: int) -> dict[tuple[str, str], dict[str, float]]:
    results: dict[tuple[str, str], dict[str, float]] = {}
    for span in ("month", "year"):
        for kind in ("baseline-count", "baseline-scan", "report"):
            runs = []
            for _ in range(runs_n):
                out = subprocess.run(
                    [sys.executable, __file__, "--target", target, "--measure", kind, span],
                    check=True, capture_output=True, text=True,
                )  # fmt: skip
                runs.append(json.loads(out.stdout))
            results[(span, kind)] = {
                "calls": runs[0]["calls"],
                "wall_s": statistics.median(r["wall_s"] for r in runs),
                "wall_s_runs": [round(r["wall_s"], 4) for r in runs],
                "maxrss_mib": max(r["maxrss_kib"] for r in runs) / 1024,
                "hwm_mib": max(r["hwm_kib"] for r in runs) / 1024,
            }
            if kind == "report":
                results[(span, kind)]["statement"] = json.loads(
                    out.stderr.strip().splitlines()[-1])
                print(out.stderr.strip(), file=sys.stderr)
    return results


def _table(name: str, results: dict[tuple[str, str], dict[str, Any]]) -> None:
    print(f"\n{name}\n")
    print("| span | query | calls | wall (median) | ru_maxrss | VmHWM | x count | x scan |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for (span, kind), r in results.items():
        c = results[(span, "baseline-count")]["wall_s"]
        s = results[(span, "baseline-scan")]["wall_s"]
        print(
            f"| {span} | {kind} | {int(r['calls']):,} | {r['wall_s']:.3f} s | "
            f"{r['maxrss_mib']:.0f} MiB | {r['hwm_mib']:.0f} MiB | "
            f"{r['wall_s'] / c:.1f} | {r['wall_s'] / s:.2f} |"
        )


if __name__ == "__main__":
    raise SystemExit(main())
