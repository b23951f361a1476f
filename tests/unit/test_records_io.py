"""Export and all-or-nothing import of JSONL, and the CLI that drives them."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import pytest

from ari_app.records import cli as records_cli
from ari_app.records.archive import ALL_COLUMNS, Archive
from ari_app.records.io import CSV_COLUMNS, export, import_jsonl
from ari_app.records.model import CallRecord, Outcome, QueueStint
from tests.unit.conftest import NewArchive


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


def test_import_twice_adds_nothing(new_archive: NewArchive, tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "in.jsonl", [rec(i).model_dump_json() for i in range(20)] + [""])
    with Archive(new_archive("a")) as a:
        first = import_jsonl(a, f)
        assert (first.imported, first.duplicates, first.lines) == (20, 0, 20)
        second = import_jsonl(a, f)
        assert (second.imported, second.duplicates) == (0, 20)
        assert a.count() == 20


def test_a_file_with_bad_lines_is_refused_whole(new_archive: NewArchive, tmp_path: Path) -> None:
    lines = [rec(i).model_dump_json() for i in range(6)]
    lines[1] = '{"call_id": "x"}'  # line 2: no arrived_at
    lines[3] = "not json at all"  # line 4
    lines[4] = (
        rec(4).model_dump_json().replace('"outcome":"abandoned_in_queue"', '"outcome":"lost"')
    )
    f = write_jsonl(tmp_path / "bad.jsonl", lines)
    with Archive(new_archive("a")) as a:
        res = import_jsonl(a, f)
        assert res.refused and res.imported == 0 and a.count() == 0
    assert [b.line for b in res.bad] == [2, 4, 5]
    assert "arrived_at" in res.bad[0].reason
    assert "outcome" in res.bad[2].reason


def test_export_jsonl_round_trips_and_csv_has_one_column_per_field(
    new_archive: NewArchive, tmp_path: Path,
) -> None:
    with Archive(new_archive("a")) as a:
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


def test_cli_import_then_export(
    new_archive: NewArchive, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    db = new_archive("a")
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


# -- events and version 2 ------------------------------------------------------


def test_events_export_and_import_rebuild_the_same_archive(
    new_archive: NewArchive, tmp_path: Path,
) -> None:
    from ari_app.records.events import late_fact
    from ari_app.records.io import export_events
    from tests.unit.test_records_equality import ALL, as_call_emits, calls_rows

    src, dst = new_archive("src"), new_archive("dst")
    with Archive(src) as a:
        for r in ALL:
            a.add_events(as_call_emits(r))
        a.add_events([late_fact("t4", "tagged", "desktop", {"reason": "complaint"})])
        a.insert([rec(1, day=5)])  # a v1 record: its event 0 goes out too
        n_events = a.count_events()
        out = io.StringIO()
        n = export_events(a, "2025-03-01T00:00:00.000Z", "2025-04-01T00:00:00.000Z", out)
    lines = out.getvalue().splitlines()
    assert n == len(lines)
    # every event of the March calls; feb and apr are outside
    feb_apr = sum(len(as_call_emits(r)) for r in ALL if r.call_id in ("feb", "apr"))
    assert n == n_events - feb_apr
    kinds = [json.loads(x)["kind"] for x in lines]
    assert kinds.count("tagged") == 1 and kinds.count("record") == 1
    t4 = [json.loads(x) for x in lines if json.loads(x)["call_id"] == "t4"]
    assert [e["seq"] for e in t4][:-1] == sorted(e["seq"] for e in t4[:-1])  # fold order
    assert t4[-1]["kind"] == "tagged"  # the late fact after the call's own events

    f = write_jsonl(tmp_path / "events.jsonl", lines)
    with Archive(dst) as b:
        res = import_jsonl(b, f)
        assert (res.imported, res.duplicates, res.refused) == (n, 0, False)
        again = import_jsonl(b, f)
        assert (again.imported, again.duplicates) == (0, n)
        assert b.count_events() == n
    rows = calls_rows(src)
    del rows["feb"], rows["apr"]
    assert calls_rows(dst) == rows
    assert calls_rows(dst)["t4"][ALL_COLUMNS.index("reason") - 1] == "complaint"


def test_import_detects_v1_records_v2_records_and_events_per_line(
    new_archive: NewArchive, tmp_path: Path,
) -> None:
    from ari_app.records.events import late_fact

    v1 = rec(1).model_copy(update={"schema_version": 1})
    v2 = rec(2).model_copy(update={"reason": "enquiry", "note": "asked twice"})
    tag = late_fact("io-1", "tagged", "desktop", {"reason": "complaint"})
    lines = [v1.model_dump_json(), json.dumps({k: v for k, v in json.loads(
        v1.model_dump_json()).items() if k not in ("reason", "reason_detail", "note",
                                                    "consults")}).replace("io-1", "io-3"),
             v2.model_dump_json(), tag.model_dump_json()]  # fmt: skip
    f = write_jsonl(tmp_path / "mixed.jsonl", lines)
    with Archive(new_archive("a")) as a:
        res = import_jsonl(a, f)
        assert (res.imported, res.lines, res.refused) == (4, 4, False)
        got = dict(a.db.execute("SELECT call_id, reason FROM calls").fetchall())
        assert got == {"io-1": "complaint", "io-2": "enquiry", "io-3": None}
        assert a.db.execute("SELECT schema_version FROM calls WHERE call_id = 'io-3'"
                            ).fetchone() == (1,)


def test_a_file_with_bad_events_is_refused_whole_naming_each_line(
    new_archive: NewArchive, tmp_path: Path,
) -> None:
    from ari_app.records.events import Recorder

    r = Recorder(CallRecord(call_id="io-7", arrived_at="2025-03-01T10:00:00.000Z"))
    good = r.emit("arrived")
    assert good is not None
    lines = [
        rec(1).model_dump_json(),
        good.model_dump_json(),
        good.model_copy(update={"id": "io-7:9"}).model_dump_json(),  # id and seq disagree
        json.dumps({"kind": "menu", "call_id": "io-7"}),  # an event without most of it
        "[1, 2]",
        good.model_copy(update={"source": "desktop", "id": "io-7:desktop:1",
                                "data": {"set": {"outcome": "answered"}}}).model_dump_json(),
    ]
    f = write_jsonl(tmp_path / "bad.jsonl", lines)
    with Archive(new_archive("a")) as a:
        res = import_jsonl(a, f)
        assert res.refused and a.count() == 0 and a.count_events() == 0
    assert [b.line for b in res.bad] == [3, 4, 5, 6]
    assert "own event must be" in res.bad[0].reason
    assert "seq" in res.bad[1].reason and "id" in res.bad[1].reason
    assert "not a JSON object" in res.bad[2].reason
    assert "may not set ['outcome']" in res.bad[3].reason


def test_events_that_do_not_fold_refuse_the_import_and_name_the_line(
    new_archive: NewArchive, tmp_path: Path,
) -> None:
    from ari_app.records.events import Recorder

    r = Recorder(CallRecord(call_id="io-8", arrived_at="2025-03-01T10:00:00.000Z"))
    r.emit("arrived")
    r.record.prompts = [f"p{i}" for i in range(150)]
    r.emit("menu")
    ok = r.take()
    # each line alone is a valid event, but together the list outgrows the record's limit
    more = ok[1].model_copy(update={"id": "io-8:3", "seq": 3, "data": {
        "lists": {"prompts": {"from": 150, "items": [f"q{i}" for i in range(60)]}}}})
    f = write_jsonl(tmp_path / "fold.jsonl", [rec(1).model_dump_json()]
                    + [e.model_dump_json() for e in [*ok, more]])
    with Archive(new_archive("a")) as a:
        res = import_jsonl(a, f)
        assert res.refused and res.imported == 0
        assert a.count() == 0 and a.count_events() == 0  # io-1 rolled back too
    assert [b.line for b in res.bad] == [4]
    assert "prompts" in res.bad[0].reason


def test_cli_export_events(
    new_archive: NewArchive, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.unit.test_records_equality import BY_ID, as_call_emits

    db = new_archive("a")
    with Archive(db) as a:
        a.add_events(as_call_emits(BY_ID["t1"]))
    out = tmp_path / "ev.jsonl"
    argv = ["records", "export", "--from", "2025-03-04", "--to", "2025-03-04", "--db", db,
            "--tz", "UTC", "--events", "--out", str(out)]
    args = parser().parse_args(argv)
    assert args.func(args) == 0
    n = len(as_call_emits(BY_ID["t1"]))
    assert f"exported {n} events" in capsys.readouterr().err
    assert [json.loads(x)["seq"] for x in out.read_text().splitlines()] == list(range(1, n + 1))
    args = parser().parse_args([*argv, "--format", "csv"])
    assert args.func(args) == 2
    assert "--events writes JSONL only" in capsys.readouterr().err
