"""The screen-pop: masking, the caller's history from a real archive by the salted
hash, and delivery over pub/sub to the right desk's SSE stream."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ari_app.desktop.history import CallerHistory
from ari_app.desktop.screenpop import caller_hash, mask_number
from ari_app.records.archive import Archive
from ari_app.records.model import CallRecord, iso
from tests.unit.desk_support import SALT, client, desk_config, desk_stack, sign_in
from tests.unit.test_web_server import read_events

NOW = datetime.now(UTC) - timedelta(minutes=5)  # the SSE test asks with the clock
CALLER, OTHER = "97455501234", "97455509999"


def test_mask_number_shows_only_the_last_digits() -> None:
    assert mask_number("97455501234", 2) == "•" * 9 + "34"
    assert mask_number("+974 5550 1234", 4) == "•" * 7 + "1234"
    assert mask_number("97455501234", 0) == "•" * 11
    assert mask_number("", 2) == mask_number("anonymous", 2) == ""


def archive_with_calls(path: Path) -> None:
    def rec(call_id: str, caller: str, days_ago: float, **kw: object) -> CallRecord:
        return CallRecord(call_id=call_id, caller=caller,
                          arrived_at=iso(NOW - timedelta(days=days_ago)), **kw)  # type: ignore[arg-type]

    with Archive(path) as a:
        a.insert([
            rec("old", CALLER, 31, entity="phcc", outcome="answered"),
            rec("c1", CALLER, 20, entity="phcc", outcome="answered", reason="complaint",
                note="<b>x</b>"),
            rec("c2", CALLER, 2, entity="hmc", outcome="abandoned_in_queue"),
            rec("now", CALLER, 0, entity="phcc"),
            rec("o1", OTHER, 1, entity="phcc", outcome="answered"),
        ])


def test_history_finds_the_callers_calls_of_the_window_by_hash(tmp_path: Path) -> None:
    db = tmp_path / "archive.sqlite3"
    archive_with_calls(db)
    cfg = desk_config(tmp_path, archive=str(db))
    hist = CallerHistory(cfg, SALT)
    calls = hist.query(caller_hash(SALT, CALLER), "now", now=NOW)
    assert [c.call_id for c in calls] == ["c2", "c1"]  # newest first; 31 days ago is out
    assert calls[1].reason == "complaint" and calls[1].note == "<b>x</b>"
    # another salt is another hash: nothing matches
    assert hist.query(caller_hash("other salt", CALLER), "now", now=NOW) == []
    assert [c.call_id for c in hist.query(caller_hash(SALT, OTHER), "x", now=NOW)] == ["o1"]


async def test_a_pop_reaches_its_agents_desk_only_without_the_hash(redis_url: str,
                                                                   tmp_path: Path) -> None:
    db = tmp_path / "archive.sqlite3"
    archive_with_calls(db)
    async with desk_stack(redis_url, tmp_path, archive=str(db)) as st, client() as http:
        await sign_in(http, st.url, "a001")
        assert st.screenpop is not None
        async with http.get(st.url + "/desktop/events") as resp:
            assert resp.status == 200
            first = await read_events(resp, 1)
            assert first[0]["event"] == "state" and first[0]["data"]["id"] == "a001"
            hashed = caller_hash(SALT, CALLER)
            # another agent's pop first: this desk must not show it
            await st.screenpop._publish("a002", json.dumps({
                "agent": "a002", "call_id": "zz", "caller_hash": hashed}))
            await st.screenpop._publish("a001", json.dumps({
                "agent": "a001", "call_id": "now", "entity": "phcc", "caller": "•••34",
                "caller_hash": hashed, "offered_at": 1}))
            got = await read_events(resp, 2)
        pop, history = got
        assert pop["event"] == "pop" and pop["data"]["call_id"] == "now"
        assert "caller_hash" not in pop["data"]
        assert history["event"] == "history" and history["data"]["error"] is None
        assert [c["call_id"] for c in history["data"]["calls"]] == ["c2", "c1"]
        assert history["data"]["calls"][1]["entity_name"]["en"] == \
            "Primary Health Care Corporation"
        # a desk that connects later finds the pop in Redis
        async with http.get(st.url + "/desktop/events") as resp:
            events = await read_events(resp, 3)
        assert {e["event"] for e in events} == {"state", "pop", "history"}
