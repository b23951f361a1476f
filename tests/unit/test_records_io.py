"""Export and all-or-nothing import of JSONL, and the CLI that drives them."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import pytest

from ari_app.records import cli as records_cli
from ari_app.records.archive import Archive
from ari_app.records.io import CSV_COLUMNS, export, import_jsonl
from ari_app.records.model import CallRecord, Outcome, QueueStint


def rec(i: int, day: int = 1) -> CallRecord:
    return CallRecord(
        call_id=f"io-{i}",
        arrived_at=f"2025-03-{day:02d}T10:00:{i % 60:02d}.000Z",
        outcome=Outcome.ABANDONED_IN_QUEUE,
        entity="phcc",
        queue_joined_at=f"2025-03-{day:02d}T10:01:00.000Z",
        queue=[QueueStint(entity="phcc", joined_at="2025-03-01T10:01:00.000Z", result="abandoned")],
        prompts=["welcome", "menu"],
    )


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    return path


def test_import_twice_adds_nothing(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "in.jsonl", [rec(i).model_dump_json() for i in range(20)] + [""])
    with Archive(tmp_path / "a.sqlite3") as a:
        first = import_jsonl(a, f)
        assert (first.imported, first.duplicates, first.lines) == (20, 0, 20)
        second = import_jsonl(a, f)
        assert (second.imported, second.duplicates) == (0, 20)
        assert a.count() == 20


def test_a_file_with_bad_lines_is_refused_whole(tmp_path: Path) -> None:
    lines = [rec(i).model_dump_json() for i in range(6)]
    lines[1] = '{"call_id": "x"}'  # line 2: no arrived_at
    lines[3] = "not json at all"  # line 4
    lines[4] = (
        rec(4).model_dump_json().replace('"outcome":"abandoned_in_queue"', '"outcome":"lost"')
    )
    f = write_jsonl(tmp_path / "bad.jsonl", lines)
    with Archive(tmp_path / "a.sqlite3") as a:
        res = import_jsonl(a, f)
        assert res.refused and res.imported == 0 and a.count() == 0
    assert [b.line for b in res.bad] == [2, 4, 5]
    assert "arrived_at" in res.bad[0].reason
    assert "outcome" in res.bad[2].reason


def test_export_jsonl_round_trips_and_csv_has_one_column_per_field(tmp_path: Path) -> None:
    with Archive(tmp_path / "a.sqlite3") as a:
        a.insert([rec(1, day=1), rec(2, day=2), rec(3, day=3)])
        buf = io.StringIO()
        n = export(a, "2025-03-02T00:00:00.000Z", "2025-03-03T00:00:00.000Z", "jsonl", buf)
        assert n == 1
        assert CallRecord.model_validate_json(buf.getvalue().strip()) == rec(2, day=2)
        buf = io.StringIO()
        assert export(a, "2025-03-01T00:00:00.000Z", "2025-04-01T00:00:00.000Z", "csv", buf) == 3
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["call_id"] for r in rows] == ["io-1", "io-2", "io-3"]
    assert json.loads(rows[0]["prompts"]) == ["welcome", "menu"]
    assert rows[0]["agent"] == "" and rows[0]["outcome"] == "abandoned_in_queue"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hotline")
    p.add_argument("--config")
    records_cli.register(p.add_subparsers(dest="cmd", required=True))
    return p


def test_cli_import_then_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "a.sqlite3")
    f = write_jsonl(tmp_path / "in.jsonl", [rec(i).model_dump_json() for i in range(3)])
    args = parser().parse_args(["records", "import", str(f), "--db", db])
    assert args.func(args) == 0
    assert "imported 3, duplicates 0" in capsys.readouterr().out
    assert args.func(args) == 0
    assert "imported 0, duplicates 3" in capsys.readouterr().out

    bad = write_jsonl(tmp_path / "bad.jsonl", [rec(9).model_dump_json(), "{}"])
    args = parser().parse_args(["records", "import", str(bad), "--db", db])
    assert args.func(args) == 1
    assert "line 2:" in capsys.readouterr().err

    out = tmp_path / "out.jsonl"
    args = parser().parse_args(
        ["records", "export", "--from", "2025-03-01", "--to", "2025-03-01", "--db", db,
         "--out", str(out), "--tz", "UTC"]
    )  # fmt: skip
    assert args.func(args) == 0
    assert len(out.read_text().splitlines()) == 3
