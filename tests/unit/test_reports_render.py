"""Report output shapes: table, CSV, JSON (documented schema), PNG charts, CLI."""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from ari_app.records.archive import Archive
from ari_app.records.model import CallRecord
from ari_app.reports import cli as reports_cli
from ari_app.reports.charts import CHARTS, write_charts
from ari_app.reports.compute import Period, Query, Report, compute
from ari_app.reports.render import CSV_HEADER, FIGURES, to_csv, to_json, to_table
from tests.unit.conftest import BACKENDS, archive_maker
from tests.unit.test_reports_compute import CALLS


@pytest.fixture(scope="module", params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = archive_maker(request, request.param, tmp_path_factory.mktemp("render"))("a")
    with Archive(path) as a:
        a.insert(CallRecord.model_validate(c) for c in CALLS)
    yield path


@pytest.fixture(scope="module")
def report(db: str) -> Report:
    with Archive(db) as a:
        return compute(a.db, Query(period=Period.month("2025-03")))


def test_json_schema_is_stable(report: Report) -> None:
    d = json.loads(to_json(report))
    assert list(d) == [
        "schema", "generated_at", "period", "filters", "sla_seconds", "statement", "totals",
        "outcomes", "by_entity", "by_site", "by_language", "by_hour", "by_day",
    ]  # fmt: skip
    assert d["schema"] == "hotline.report/1"
    assert list(d["period"]) == ["from", "to", "timezone", "utc_start", "utc_end"]
    assert list(d["statement"]) == [
        "total", "entities", "other_departments", "of_which_no_department", "asa_seconds",
    ]  # fmt: skip
    assert tuple(d["totals"]) == FIGURES
    for sec in ("by_entity", "by_site", "by_language", "by_hour", "by_day"):
        assert all(tuple(r) == ("key", *FIGURES) for r in d[sec])


def test_csv_shape(report: Report) -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert tuple(rows[0]) == CSV_HEADER
    st = [(r["key"], r["calls"]) for r in rows if r["section"] == "statement"]
    assert st[:6] == [("total", "10"), ("phcc", "3"), ("moph", "2"), ("mehe", "1"),
                      ("moci", "1"), ("other_departments", "3")]  # fmt: skip
    asa = next(r for r in rows if r["section"] == "statement" and r["key"] == "asa")
    assert asa["asa_seconds"] == "16.25"
    sections = {r["section"] for r in rows}
    assert sections == {"statement", "totals", "outcome", "by_entity", "by_site", "by_language",
                        "by_hour", "by_day"}  # fmt: skip
    site_none = next(r for r in rows if r["section"] == "by_site" and r["key"] == "(none)")
    assert site_none["asa_seconds"] == ""  # no answered calls: empty, not 0


def test_table_opens_with_the_ministry_statement(report: Report) -> None:
    text = to_table(report, {"phcc": "PHCC", "moph": "MoPH"})
    lines = text.splitlines()
    assert lines[0].startswith("Hotline 109 - calls 2025-03-01 to 2025-03-31")
    body = [x.split() for x in lines[2:9]]
    assert body[0][-1] == "10" and body[1] == ["PHCC", "3"] and body[2] == ["MoPH", "2"]
    assert body[5][:2] == ["Other", "departments"] and body[5][-1] == "3"
    assert lines[8].split()[-2:] == ["16.3", "s"]  # 16.25 rounded half up
    assert "Service level (20 s)" in text and "50.0%" in text


def test_charts_are_valid_pngs(report: Report, tmp_path: Path) -> None:
    paths = write_charts(report, tmp_path / "charts")
    assert [p.name for p in paths] == list(CHARTS)
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(p) as im:
            im.verify()
            assert im.format == "PNG" and im.size[0] > 300


def test_cli_report(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = argparse.ArgumentParser(prog="hotline")
    p.add_argument("--config")
    reports_cli.register(p.add_subparsers(dest="cmd", required=True))
    cfg = tmp_path / "missing.yaml"  # no config: entity ids are shown as they are
    args = p.parse_args(
        ["--config", str(cfg), "report", "--month", "2025-03", "--db", str(db), "--format",
         "json", "--tz", "UTC", "--entity", "phcc", "--charts", str(tmp_path / "ch")]
    )  # fmt: skip
    assert args.func(args) == 0
    out = capsys.readouterr()
    d = json.loads(out.out)
    assert d["totals"]["calls"] == 3 and d["filters"]["entity"] == ["phcc"]
    assert len(list((tmp_path / "ch").glob("*.png"))) == 3

    args = p.parse_args(["report", "--from", "2025-03-02", "--to", "2025-03-01", "--db", str(db)])
    assert args.func(args) == 2
    args = p.parse_args(["report", "--month", "2025-03", "--db", str(tmp_path / "nope.sqlite3")])
    assert args.func(args) == 1
    with pytest.raises(SystemExit):
        p.parse_args(["report", "--month", "2025-13"])
