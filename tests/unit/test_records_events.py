"""The archive as a store of events: late facts, repeats, calls not complete yet,
events it must refuse, and the upgrade of a version 1 archive."""

from __future__ import annotations

from pathlib import Path

import pytest

from ari_app.records.archive import Archive, BadEvent, FoldError
from ari_app.records.events import RecordEvent, fold, late_fact, problem, record_to_events
from ari_app.records.model import CallRecord
from ari_app.records.schema import (
    ALL_COLUMNS,
    DERIVED_COLUMNS,
    JSON_COLUMNS_V1,
    SCALAR_COLUMNS_V1,
    to_row,
)
from tests.unit.conftest import NewArchive
from tests.unit.test_records_equality import BY_ID, as_call_emits


def row(a: Archive, call_id: str, *cols: str) -> tuple[object, ...]:
    got = a.db.execute(f"SELECT {', '.join(cols)} FROM calls WHERE call_id = ?",
                       (call_id,)).fetchone()
    return tuple(got) if got else ()


def tagged(call_id: str, reason: str, detail: str | None = None) -> RecordEvent:
    fields = {"reason": reason} | ({"reason_detail": detail} if detail else {})
    return late_fact(call_id, "tagged", "desktop", fields)


def test_a_late_fact_after_ended_updates_the_call_exactly_once(
    new_archive: NewArchive, tmp_path: Path,
) -> None:
    events = as_call_emits(BY_ID["t4"])
    assert events[-1].kind == "ended"
    with Archive(new_archive("a")) as a:
        a.add_events(events)
        assert row(a, "t4", "reason", "outcome") == (None, "answered")
        first_write = row(a, "t4", "archived_at")
        tag = tagged("t4", "complaint", "billing")

        stored = a.add_events([tag])
        assert (stored.new, stored.duplicates, stored.rows) == (1, 0, 1)
        assert row(a, "t4", "reason", "reason_detail", "outcome") == (
            "complaint", "billing", "answered")
        after_tag = row(a, "t4", "archived_at")
        assert after_tag >= first_write

        again = a.add_events([tag])  # delivered a second time (redelivery, spool drain)
        assert (again.new, again.duplicates, again.rows) == (0, 1, 0)
        assert a.count_events() == len(events) + 1 and a.count() == 1
        assert row(a, "t4", "archived_at") == after_tag  # the row was not written again
        assert a.db.execute("SELECT COUNT(*) FROM events WHERE call_id = 't4' AND kind = 'tagged'"
                            ).fetchone()[0] == 1


def test_the_later_of_two_tags_wins_whatever_order_they_arrive(new_archive: NewArchive) -> None:
    base = as_call_emits(BY_ID["t1"])
    first = tagged("t1", "enquiry").model_copy(update={"at": "2025-03-04T09:06:00.000Z"})
    second = tagged("t1", "complaint").model_copy(update={"at": "2025-03-04T09:07:00.000Z"})
    for name, order in (("a", [first, second]), ("b", [second, first])):
        with Archive(new_archive(name)) as a:
            a.add_events(base)
            for ev in order:
                a.add_events([ev])
            assert row(a, "t1", "reason") == ("complaint",), name


def test_a_late_fact_before_the_call_waits_for_it(new_archive: NewArchive, tmp_path: Path) -> None:
    """A tag that overtakes the call's own events is kept; the row, when it
    appears, has it."""
    events = as_call_emits(BY_ID["t3"])
    with Archive(new_archive("a")) as a:
        stored = a.add_events([tagged("t3", "wrong_number")])
        assert (stored.new, stored.rows, stored.waiting) == (1, 0, 1)
        assert a.count() == 0 and a.count_events() == 1
        a.add_events(events)
        assert row(a, "t3", "reason", "outcome") == ("wrong_number", "abandoned_in_queue")


def test_a_late_fact_folds_onto_a_v1_record(new_archive: NewArchive, tmp_path: Path) -> None:
    rec = BY_ID["c4"].model_copy(update={"schema_version": 1})
    with Archive(new_archive("a")) as a:
        assert a.insert([rec]) == 1
        assert a.insert([rec.model_copy(update={"talk_seconds": 9.0})]) == 0  # first wins
        a.add_events([tagged("c4", "callback_request")])
        assert row(a, "c4", "reason", "schema_version", "talk_seconds") == (
            "callback_request", 1, None)
        assert a.count_events() == 2


def test_the_archive_refuses_what_it_could_not_fold_and_keeps_nothing_of_it(
    new_archive: NewArchive, tmp_path: Path,
) -> None:
    events = as_call_emits(BY_ID["t2"])
    with Archive(new_archive("a")) as a:
        a.add_events(events)
        before = (a.count_events(), row(a, "t2", "outcome", "archived_at"))
        bad_value = RecordEvent(id="t2:99", call_id="t2", seq=99, at="2025-03-04T10:01:00.000Z",
                                kind="ended", data={"set": {"outcome": "lost"}})
        with pytest.raises(FoldError, match="outcome"):
            a.add_events([bad_value])
        not_late = late_fact("t2", "tagged", "desktop", {"note": "x"})
        not_late.data["set"]["outcome"] = "answered"  # a late fact may not rewrite the call
        with pytest.raises(BadEvent, match="may not set"):
            a.add_events([not_late])
        assert (a.count_events(), row(a, "t2", "outcome", "archived_at")) == before


@pytest.mark.parametrize(("change", "reason"), [
    ({"id": "other:3"}, "own event must be"),
    ({"v": 3}, "event version 3"),
    ({"data": {"set": {"colour": "red"}}}, "not record fields"),
    ({"data": {"set": {"call_id": "someone-else"}}}, "sets call_id"),
    ({"data": {"set": {"queue": []}}}, "wrong part"),
    ({"data": {"lists": {"queue": {"from": -1, "items": []}}}}, "data.lists.queue"),
    ({"data": {"put": {}}}, "unknown keys"),
    ({"source": "desktop", "id": "c:desktop:1", "at": "yesterday"}, "not an ISO time"),
    ({"source": "desktop", "id": "c:desktop:1", "data": {"lists": {"prompts": {}}}},
     "may not change lists"),
])  # fmt: skip
def test_problem_names_what_is_wrong(change: dict[str, object], reason: str) -> None:
    good = RecordEvent(id="c:3", call_id="c", seq=3, at="2025-03-01T08:00:00.000Z",
                       kind="menu", data={"set": {"digits": "1"}})
    assert problem(good) is None
    why = problem(good.model_copy(update=change))
    assert why is not None and reason in why


def test_record_to_events_folds_back_to_the_record() -> None:
    for rec in BY_ID.values():
        assert fold(record_to_events(rec)) == rec


def v1_archive(spec: str, records: list[CallRecord]) -> None:
    """An archive exactly as version 1 of this program left it (on either backend:
    the same versioned migrations, stopped at 1)."""
    with Archive(spec, upto=1) as a, a.transaction():
        assert a.version() == 1
        a.db.execute("UPDATE schema_version SET applied_at = '2025-01-01T00:00:00.000Z'")
        cols = ([c for c, _ in SCALAR_COLUMNS_V1] + list(JSON_COLUMNS_V1)
                + [c for c, _ in DERIVED_COLUMNS])
        for rec in records:
            full = dict(zip(ALL_COLUMNS, to_row(rec, "2025-03-31T00:00:00.000Z"), strict=True))
            a.db.execute(
                f"INSERT INTO calls ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [full[c] for c in cols])


def test_a_version_1_archive_upgrades_in_place_and_takes_late_facts(
    new_archive: NewArchive, tmp_path: Path,
) -> None:
    path = new_archive("old")
    old = [BY_ID[c].model_copy(update={"schema_version": 1}) for c in ("c1", "c4", "c8", "t1")]
    v1_archive(path, old)
    with Archive(path) as a:
        assert a.version() == 3  # version 3: the callback column
        assert [r.call_id for r in a.iter_range("2025-01-01", "2026-01-01")] == [
            "c1", "c4", "c8", "t1"]
        assert list(a.iter_range("2025-01-01", "2026-01-01")) == old  # nothing changed
        assert a.count_events() == 4  # each row got its event 0 ...
        for rec in old:
            (ev,) = a.events_of(rec.call_id)
            assert ev.data == record_to_events(rec)[0].data and ev.id == f"{rec.call_id}:0"
            assert fold([ev]) == rec
        assert a.db.execute("SELECT DISTINCT archived_at FROM events").fetchall() == [
            ("2025-03-31T00:00:00.000Z",)]  # ... archived when the row was
        a.add_events([tagged("c8", "no_answer_complaint")])
        assert row(a, "c8", "reason", "outcome") == ("no_answer_complaint", "max_wait_fallback")
        assert a.insert([old[0]]) == 0  # the v1 record again: still a duplicate
    with Archive(path) as a:  # opening again migrates nothing
        assert a.version() == 3 and a.count_events() == 5
        versions = a.db.execute("SELECT version FROM schema_version").fetchall()
        assert versions == [(1,), (2,), (3,)]


def test_a_step_that_changed_nothing_is_kept_but_does_not_rewrite_the_row(
    new_archive: NewArchive, tmp_path: Path,
) -> None:
    events = as_call_emits(BY_ID["c6"])
    last = events[-1]
    idle = last.model_copy(update={"id": f"c6:{last.seq + 1}", "seq": last.seq + 1,
                                   "kind": "menu", "data": {}})
    with Archive(new_archive("a")) as a:
        a.add_events(events)
        stored = a.add_events([idle])
        assert (stored.new, stored.rows) == (1, 0)
        assert a.count_events() == len(events) + 1


def test_a_v1_record_after_its_late_fact_still_gets_it(
    new_archive: NewArchive, tmp_path: Path,
) -> None:
    rec = BY_ID["c2"].model_copy(update={"schema_version": 1})
    with Archive(new_archive("a")) as a:
        a.add_events([tagged("c2", "enquiry")])
        assert a.insert([rec]) == 1
        assert row(a, "c2", "reason", "talk_seconds") == ("enquiry", 200.0)


def test_a_row_todays_model_refuses_does_not_stop_the_upgrade(
    new_archive: NewArchive, tmp_path: Path,
) -> None:
    path = new_archive("old")
    v1_archive(path, [BY_ID["c1"], BY_ID["c2"]])
    with Archive(path, upto=1) as old:  # the database took it once
        old.db.execute("UPDATE calls SET outcome = 'lost' WHERE call_id = 'c2'")
    with Archive(path) as a:
        assert a.version() == 3 and a.count_events() == 2 and a.count() == 2
        with pytest.raises(FoldError, match="outcome"):  # only its own later fold is refused
            a.add_events([tagged("c2", "enquiry")])
        a.add_events([tagged("c1", "enquiry")])
        assert row(a, "c1", "reason") == ("enquiry",)
