"""The reasons and agent reports, and the archiving of agent state changes, on both
backends, against figures worked out by hand from the events below (they do not
reuse the code under test)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ari_app.records.archive import Archive
from ari_app.records.archiver import decode
from ari_app.records.events import late_fact
from ari_app.records.model import CallRecord
from ari_app.records.period import Period
from ari_app.reports.agents import compute_agents
from ari_app.reports.reasons import compute_reasons, reasons_csv, reasons_json, reasons_table
from ari_app.reports.work_render import (
    agents_chart,
    agents_csv,
    agents_json,
    agents_table,
    reasons_chart,
)
from tests.unit.conftest import BACKENDS, archive_maker


def ms(ts: str) -> int:
    return int(datetime.fromisoformat(ts + "+00:00").timestamp() * 1000)


# agent, site, kind, state, time (UTC), extra fields: as the pool's scripts log them
CHANGES: list[tuple[str, str, str, str, str, dict[str, str]]] = [
    ("a3", "doha", "login", "available", "2025-02-10T08:00:00", {}),
    ("a3", "doha", "logout", "logged_out", "2025-02-10T09:00:00", {}),
    ("a1", "doha", "login", "available", "2025-02-28T23:00:00", {}),
    ("a1", "doha", "offered", "offered", "2025-03-01T08:00:00", {"call": "c1"}),
    ("a1", "doha", "on_call", "on_call", "2025-03-01T08:00:10", {"call": "c1"}),
    ("a1", "doha", "wrapup", "wrapup", "2025-03-01T08:05:10", {"call": "c1"}),
    ("a1", "doha", "wrapup_done", "available", "2025-03-01T08:05:40", {"noreason": "c2"}),
    ("a1", "doha", "paused", "paused", "2025-03-01T08:10:00", {"reason": "prayer"}),
    ("a1", "doha", "resume", "available", "2025-03-01T08:25:00", {}),
    ("a1", "doha", "offered", "offered", "2025-03-01T08:30:00", {"call": "c5"}),
    ("a1", "doha", "missed", "paused", "2025-03-01T08:30:15", {"reason": "missed_call"}),
    ("a1", "doha", "resume", "available", "2025-03-01T08:40:00", {}),
    ("a1", "doha", "logout", "logged_out", "2025-03-01T09:00:00", {}),
    ("a2", "wakra", "login", "available", "2025-03-02T10:00:00", {}),
    ("a2", "wakra", "unreachable", "available", "2025-03-02T10:00:30", {"reach": "0"}),
    ("a2", "wakra", "reachable", "available", "2025-03-02T10:01:00", {}),
    ("a2", "wakra", "offered", "offered", "2025-03-02T10:30:00", {"call": "c9"}),
    ("a2", "wakra", "on_call", "on_call", "2025-03-02T10:30:05", {"call": "c9"}),
    ("a2", "wakra", "wrapup", "wrapup", "2025-03-02T10:32:05", {"call": "c9"}),
    ("a2", "wakra", "wrapup_timeout", "available", "2025-03-02T10:32:35", {"noreason": "c9"}),
    ("a2", "wakra", "logout", "logged_out", "2025-03-02T11:00:00", {}),
    ("a2", "wakra", "login", "available", "2025-04-02T10:00:00", {}),
]


def entries() -> list[tuple[bytes, dict[bytes, bytes]]]:
    out = []
    for n, (agent, site, kind, state, at, extra) in enumerate(CHANGES):
        obj = {"agent": agent, "kind": kind, "state": state, "at": str(ms(at)), "site": site,
               "reach": "1", **extra}
        out.append((f"{ms(at)}-{n}".encode(), {b"agent": json.dumps(obj).encode()}))
    return out


def call(cid: str, entity: str | None, arrived: str, answered: bool = True) -> CallRecord:
    d: dict[str, Any] = {"call_id": cid, "app": "hotline", "channel_uniqueid": cid,
                         "linkedid": cid, "caller": "97450000000", "dialled": "109",
                         "arrived_at": arrived + ".000Z", "entity": entity}
    if answered:
        d |= {"outcome": "answered", "agent_answered_at": arrived + ".000Z", "agent": "a1"}
    else:
        d |= {"outcome": "abandoned_in_queue"}
    return CallRecord.model_validate(d)


CALLS = [
    call("c1", "phcc", "2025-03-01T07:59:00"),
    call("c2", "phcc", "2025-03-01T08:20:00"),
    call("c3", "moph", "2025-03-02T09:00:00"),
    call("c4", "moph", "2025-03-02T09:10:00"),
    call("c5", "moph", "2025-03-02T09:20:00", answered=False),
    call("c6", "phcc", "2025-03-31T22:00:00"),  # 1 April in Qatar (UTC+3)
    call("c7", "phcc", "2025-03-10T10:00:00"),
    call("c8", "other", "2025-03-11T10:00:00"),
    call("c9", "moph", "2025-03-02T10:29:00"),
]
TAGS = [("c1", "complaint", "staff"), ("c3", "inquiry", None), ("c6", "inquiry", None),
        ("c7", "e_service_support", None), ("c8", "other", None), ("c9", "other", None)]


@pytest.fixture(scope="module", params=BACKENDS)
def archive(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Archive]:
    a = Archive(archive_maker(request, request.param, tmp_path_factory.mktemp("work"))("w"))
    a.insert(CALLS)
    # c9's tag comes after its wrap-up timed out untagged: the later fact wins
    stored = a.add_events(ev for eid, f in entries() for ev in decode(f, eid)[1] or [])
    assert stored.new == len(CHANGES) + 2  # and the two "no reason" facts
    a.add_events(late_fact(c, "tagged", "wrapup", {"reason": k, "reason_detail": d,
                                                   "tagged_by": "a1"}) for c, k, d in TAGS)
    yield a
    a.close()


def test_agent_events_and_no_reason_facts_are_archived_once(archive: Archive) -> None:
    again = archive.add_events(ev for eid, f in entries() for ev in decode(f, eid)[1] or [])
    assert again.new == 0 and again.duplicates == len(CHANGES) + 2
    n = archive.db.execute("SELECT COUNT(*) FROM agent_events").fetchone()[0]
    assert n == len(CHANGES)
    row = archive.db.execute("SELECT reason, tagged_by FROM calls WHERE call_id = 'c2'"
                             ).fetchone()
    assert tuple(row) == ("no_reason_given", "a1")
    row = archive.db.execute("SELECT reason, reason_detail, tagged_by FROM calls "
                             "WHERE call_id = 'c1'").fetchone()
    assert tuple(row) == ("complaint", "staff", "a1")
    assert archive.db.execute("SELECT reason FROM calls WHERE call_id = 'c9'"
                              ).fetchone()[0] == "other"


def test_a_bad_agent_entry_is_refused_with_the_reason() -> None:
    why, evs = decode({b"agent": b'{"agent": "a1", "kind": "x", "state": "asleep", "at": "1"}'},
                      b"1-0")
    assert evs is None and "unknown state 'asleep'" in why
    why, evs = decode({b"agent": b"{nope"}, b"1-0")
    assert evs is None and "not JSON" in why
    why, evs = decode({b"agent": b"{}", b"event": b"{}"}, b"1-0")
    assert evs is None and "which one is meant" in why


def test_reasons_per_entity_per_local_month(archive: Archive) -> None:
    rep = compute_reasons(archive.db, Period.month("2025-03", "Asia/Qatar"))
    rows = {r.entity: r.counts for r in rep.rows}
    assert [r.entity for r in rep.rows] == ["moph", "phcc", "other"]
    assert rows["phcc"] == {"inquiry": 0, "complaint": 1, "e_service_support": 1, "other": 0,
                            "no_reason_given": 1, "untagged": 0, "total": 3}
    assert rows["moph"] == {"inquiry": 1, "complaint": 0, "e_service_support": 0, "other": 1,
                            "no_reason_given": 0, "untagged": 1, "total": 3}  # c5 unanswered
    assert rows["other"]["other"] == 1 and rows["other"]["total"] == 1
    assert rep.rows[1].sub_reasons == {"complaint": {"staff": 1}}
    two = compute_reasons(archive.db, Period(datetime(2025, 3, 1).date(),
                                             datetime(2025, 4, 30).date(), "Asia/Qatar"),
                          entities=("phcc",))
    assert [(r.month, r.entity, r.counts["inquiry"], r.counts["total"]) for r in two.rows] == [
        ("2025-03", "phcc", 0, 3), ("2025-04", "phcc", 1, 1)]
    utc = compute_reasons(archive.db, Period.month("2025-03", "UTC"), entities=("phcc",))
    assert utc.rows[0].counts["inquiry"] == 1  # c6 is March in UTC


def test_reasons_formats(archive: Archive, tmp_path: Path) -> None:
    rep = compute_reasons(archive.db, Period.month("2025-03", "Asia/Qatar"))
    d = json.loads(reasons_json(rep))
    assert d["schema"] == "hotline.reasons/1" and d["totals"]["total"] == 7
    rows = list(csv.reader(io.StringIO(reasons_csv(rep))))
    assert rows[0][:4] == ["month", "entity", "inquiry", "complaint"]
    assert rows[-1] == ["total", "", "1", "1", "1", "2", "1", "1", "7"]
    table = reasons_table(rep, {"phcc": "Primary Health Care"})
    assert "Primary Health Care" in table
    png = reasons_chart(rep, tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def march_agents(archive: Archive, **kw: Any) -> dict[str, Any]:
    rep = compute_agents(archive.db, Period.month("2025-03", "UTC"), now=2e9, **kw)
    return rep.to_dict()


def test_agent_figures_match_hand_computed(archive: Archive) -> None:
    d = march_agents(archive)
    a = {r["key"]: r for r in d["by_agent"]}
    assert sorted(a) == ["a1", "a2"]  # a3 was signed in only before March
    a1 = a["a1"]
    # carried in available from 00:00 (logged in 23:00 the day before) until 09:00
    assert a1["signed_in_seconds"] == 32400
    assert a1["available_seconds"] == 30560  # 8 h + 260 + 300 + 1200
    assert a1["ringing_seconds"] == 25 and a1["talk_seconds"] == 300
    assert a1["wrapup_seconds"] == 30 and a1["pause_seconds"] == 1485
    assert a1["pause_by_reason"] == {"missed_call": 585, "prayer": 900}
    assert (a1["offers"], a1["calls_answered"], a1["missed_offers"]) == (2, 1, 1)
    assert a1["aht_seconds"] == 330 and a1["occupancy"] == 0.0107  # 330 / 30915
    a2 = a["a2"]
    assert a2["signed_in_seconds"] == 3600 and a2["unreachable_seconds"] == 30
    assert a2["aht_seconds"] == 150 and a2["occupancy"] == 0.0417  # 150 / 3600
    sites = {r["key"]: r for r in d["by_site"]}
    assert sites["wakra"]["talk_seconds"] == 120 and sites["doha"]["talk_seconds"] == 300
    t = d["totals"]
    assert (t["calls_answered"], t["talk_seconds"], t["wrapup_seconds"]) == (2, 420, 60)
    assert t["aht_seconds"] == 240  # (420 + 60) / 2


def test_agent_filters_and_a_period_cut_mid_span(archive: Archive) -> None:
    d = march_agents(archive, sites=("wakra",))
    assert [r["key"] for r in d["by_agent"]] == ["a2"]
    assert d["totals"]["signed_in_seconds"] == 3600
    # counted until 08:10 on 1 March: a1's spans are cut there
    now = ms("2025-03-01T08:10:00") / 1000
    rep = compute_agents(archive.db, Period.month("2025-03", "UTC"), agents=("a1",), now=now)
    a1 = rep.to_dict()["by_agent"][0]
    assert a1["signed_in_seconds"] == 8 * 3600 + 600 and a1["pause_seconds"] == 0


def test_agent_formats(archive: Archive, tmp_path: Path) -> None:
    rep = compute_agents(archive.db, Period.month("2025-03", "UTC"), now=2e9)
    rows = list(csv.reader(io.StringIO(agents_csv(rep))))
    head = rows[0]
    assert head[:3] == ["section", "key", "site"] and "pause:prayer" in head
    a1 = next(r for r in rows if r[1] == "a1")
    assert a1[head.index("pause:prayer")] == "900.0"
    assert a1[head.index("talk_seconds")] == "300.0"
    assert json.loads(agents_json(rep))["schema"] == "hotline.agents/1"
    table = agents_table(rep)
    assert "0:15:00" in table and "prayer" in table  # a1's prayer pause
    assert agents_chart(rep, tmp_path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
