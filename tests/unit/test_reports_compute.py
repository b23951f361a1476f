"""Report figures against numbers worked out by hand for a small known set.

The expected values below were computed on paper from the ten calls in
CALLS (SLA threshold 20 s); they do not reuse the code under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ari_app.records.archive import Archive
from ari_app.records.model import CallRecord, QueueStint
from ari_app.reports.compute import Period, Query, Report, compute
from tests.unit.conftest import BACKENDS, NewArchive, archive_maker

# call, entity, lang, site, outcome, arrived (UTC), queue joined, answered/left, soa, talk, wrap
CALLS: list[dict[str, Any]] = [
    dict(call_id="c1", entity="phcc", language="ar", site="doha", outcome="answered",
         arrived_at="2025-03-01T08:10:00.000Z", queue_joined_at="2025-03-01T08:10:20.000Z",
         agent_answered_at="2025-03-01T08:10:30.000Z", speed_of_answer=10.0,
         talk_seconds=100.0, wrapup_seconds=20.0),
    dict(call_id="c2", entity="phcc", language="ar", site="doha", outcome="answered",
         arrived_at="2025-03-01T08:40:00.000Z", queue_joined_at="2025-03-01T08:40:10.000Z",
         agent_answered_at="2025-03-01T08:40:40.000Z", speed_of_answer=30.0, talk_seconds=200.0),
    dict(call_id="c3", entity="phcc", language="en", site="wakra", outcome="answered",
         arrived_at="2025-03-02T09:05:00.000Z", queue_joined_at="2025-03-02T09:05:10.000Z",
         agent_answered_at="2025-03-02T09:05:15.000Z", speed_of_answer=5.0,
         talk_seconds=60.0, wrapup_seconds=10.0),
    # waited 25 s then hung up: an abandon after the threshold
    dict(call_id="c4", entity="moph", language="ar", outcome="abandoned_in_queue",
         arrived_at="2025-03-02T10:00:00.000Z", queue_joined_at="2025-03-02T10:00:10.000Z",
         ended_at="2025-03-02T10:00:35.000Z"),
    # waited 8 s: a short abandon, left out of the service level
    dict(call_id="c5", entity="moph", language="en", outcome="abandoned_in_queue",
         arrived_at="2025-03-02T10:30:00.000Z", queue_joined_at="2025-03-02T10:30:10.000Z",
         ended_at="2025-03-02T10:30:18.000Z"),
    dict(call_id="c6", language="ar", outcome="abandoned_in_menu",
         arrived_at="2025-03-03T11:00:00.000Z", ended_at="2025-03-03T11:00:09.000Z"),
    dict(call_id="c7", entity="mehe", language="ar", outcome="completed_in_menu",
         arrived_at="2025-03-03T11:15:00.000Z"),
    # taken out of the queue after 120 s (left_at), ended later
    dict(call_id="c8", entity="moci", language="ar", outcome="max_wait_fallback",
         arrived_at="2025-03-03T12:00:00.000Z", queue_joined_at="2025-03-03T12:00:10.000Z",
         ended_at="2025-03-03T12:03:00.000Z",
         queue=[QueueStint(entity="moci", joined_at="2025-03-03T12:00:10.000Z",
                           left_at="2025-03-03T12:02:10.000Z", result="fallback")]),
    # answered exactly at the threshold: counts as within
    dict(call_id="c9", entity="other", language="en", site="doha", outcome="answered",
         arrived_at="2025-03-03T12:30:00.000Z", queue_joined_at="2025-03-03T12:30:05.000Z",
         agent_answered_at="2025-03-03T12:30:25.000Z", speed_of_answer=20.0, talk_seconds=40.0),
    dict(call_id="c10", language="ar", outcome="rejected", arrived_at="2025-03-03T13:00:00.000Z"),
    # outside March (UTC): never counted
    dict(call_id="feb", entity="phcc", outcome="answered", arrived_at="2025-02-28T23:59:59.999Z",
         speed_of_answer=1.0),
    dict(call_id="apr", entity="phcc", outcome="answered", arrived_at="2025-04-01T00:00:00.000Z",
         speed_of_answer=1.0),
]  # fmt: skip


@pytest.fixture(scope="module", params=BACKENDS)
def archive(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Archive]:
    """The hand-computed set, once per backend: every figure below must hold on both."""
    a = Archive(archive_maker(request, request.param, tmp_path_factory.mktemp("rep"))("a"))
    a.insert(CallRecord.model_validate(c) for c in CALLS)
    yield a
    a.close()


def march(archive: Archive, **kw: Any) -> Report:
    return compute(archive.db, Query(period=Period.month("2025-03", "UTC"), **kw))


def test_totals_match_hand_computed(archive: Archive) -> None:
    t = march(archive).to_dict()["totals"]
    assert t["calls"] == 10
    assert t["queued"] == 7  # c1 c2 c3 c4 c5 c8 c9
    assert t["answered"] == 4  # c1 c2 c3 c9
    assert t["asa_seconds"] == 16.25  # (10 + 30 + 5 + 20) / 4
    assert t["answered_within_sla"] == 3  # c1 c3 c9
    assert t["missed_after_sla"] == 2  # c4 (25 s) c8 (120 s); c5 (8 s) left out
    assert t["service_level"] == 0.5  # 3 / (4 + 2)
    assert t["abandoned_in_menu"] == 1 and t["abandon_rate_menu"] == 0.1  # 1 / 10
    assert t["abandoned_in_queue"] == 2 and t["abandon_rate_queue"] == 0.2857  # 2 / 7
    assert t["abandoned_in_queue_within_sla"] == 1
    assert t["aht_seconds"] == 107.5  # (100+200+60+40 talk + 20+10 wrap-up) / 4
    assert t["talk_seconds_avg"] == 100.0
    assert t["wrapup_calls"] == 2


def test_statement_shape_and_other_departments(archive: Archive) -> None:
    st = march(archive).statement()
    assert st == {
        "total": 10,
        "entities": [
            {"entity": "phcc", "calls": 3},
            {"entity": "moph", "calls": 2},
            {"entity": "mehe", "calls": 1},
            {"entity": "moci", "calls": 1},
        ],
        "other_departments": 3,  # 'other' c9 + c6, c10 with no department
        "of_which_no_department": 2,
        "asa_seconds": 16.25,
    }


def test_breakdowns(archive: Archive) -> None:
    d = march(archive).to_dict()
    ent = {r["key"]: r for r in d["by_entity"]}
    assert [r["key"] for r in d["by_entity"]] == ["phcc", "(none)", "moph", "mehe", "moci", "other"]
    assert ent["phcc"]["asa_seconds"] == 15.0  # (10 + 30 + 5) / 3
    assert ent["phcc"]["service_level"] == 0.6667  # 2 of 3
    assert ent["moph"]["service_level"] == 0.0  # 0 / (0 answered + 1 missed)
    site = {r["key"]: (r["calls"], r["asa_seconds"]) for r in d["by_site"]}
    assert site == {"(none)": (6, None), "doha": (3, 20.0), "wakra": (1, 5.0)}
    lang = {r["key"]: (r["calls"], r["asa_seconds"]) for r in d["by_language"]}
    assert lang == {"ar": (7, 20.0), "en": (3, 12.5)}
    hours = {r["key"]: r["calls"] for r in d["by_hour"] if r["calls"]}
    assert hours == {"08": 2, "09": 1, "10": 2, "11": 2, "12": 2, "13": 1}
    assert len(d["by_hour"]) == 24
    days = {r["key"]: r["calls"] for r in d["by_day"] if r["calls"]}
    assert days == {"2025-03-01": 2, "2025-03-02": 3, "2025-03-03": 5}
    assert len(d["by_day"]) == 31
    assert {k: v for k, v in d["outcomes"].items() if v} == {
        "answered": 4, "abandoned_in_queue": 2, "abandoned_in_menu": 1,
        "completed_in_menu": 1, "max_wait_fallback": 1, "rejected": 1,
    }  # fmt: skip


def test_filters_and_threshold(archive: Archive) -> None:
    t = march(archive, entities=("phcc",)).to_dict()["totals"]
    assert (t["calls"], t["asa_seconds"]) == (3, 15.0)
    t = march(archive, languages=("en",), sites=("doha",)).to_dict()["totals"]
    assert (t["calls"], t["asa_seconds"]) == (1, 20.0)  # c9 only
    t = march(archive, sla_seconds=30).to_dict()["totals"]
    # within 30 s: c1 c2 c3 c9 answered, c4 (25) and c5 short abandons; c8 missed
    assert (t["answered_within_sla"], t["missed_after_sla"], t["service_level"]) == (4, 1, 0.8)


def test_local_time_zone_moves_month_and_hour_edges(new_archive: NewArchive) -> None:
    with Archive(new_archive("tz")) as a:
        a.insert(
            [
                CallRecord(call_id="late-march-utc", arrived_at="2025-03-31T22:30:00.000Z"),
                CallRecord(call_id="early-march", arrived_at="2025-03-01T05:00:00.000Z"),
            ]
        )
        period = Period.month("2025-04", "Asia/Qatar")  # UTC+3, no DST
        assert period.utc_bounds() == ("2025-03-31T21:00:00.000Z", "2025-04-30T21:00:00.000Z")
        d = compute(a.db, Query(period=period)).to_dict()
    assert d["totals"]["calls"] == 1
    assert [r["key"] for r in d["by_hour"] if r["calls"]] == ["01"]
    assert [r["key"] for r in d["by_day"] if r["calls"]] == ["2025-04-01"]


def test_empty_range_has_nulls_not_errors(archive: Archive) -> None:
    d = compute(archive.db, Query(period=Period.month("2024-01"))).to_dict()
    assert d["totals"]["calls"] == 0
    assert d["totals"]["asa_seconds"] is None and d["totals"]["service_level"] is None
    assert d["statement"]["other_departments"] == 0
