"""Wrap-up (tag, done, extend) and the agents' state history, against a real Redis."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from ari_app.agents.history import AgentHistory
from ari_app.agents.pool import AgentPool, AgentState, CandidateQuery
from ari_app.agents.wrapup import WrapUpError, WrapUps, clean_note
from ari_app.config.agent_work import AgentWork, SubReason
from ari_app.config.models import Agent
from ari_app.records.agent_events import NO_REASON, parse
from ari_app.records.events import RecordEvent, problem

Q = CandidateQuery(("phcc",), ("ar",))
WORK = AgentWork(wrapup_max_extension=30, sub_reasons={"phcc": (
    SubReason(id="appointment", kind="inquiry", labels={"en": "Appointment", "ar": "موعد"}),
    SubReason(id="staff", kind="complaint", labels={"en": "Staff", "ar": "الموظفون"}),
)})


class Sink:
    def __init__(self) -> None:
        self.events: list[RecordEvent] = []

    async def publish_events(self, events: list[RecordEvent]) -> None:
        self.events.extend(events)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    r = Redis.from_url(redis_url)
    yield r
    await r.aclose()


def agent(i: str) -> Agent:
    return Agent(id=i, name=i, site="doha_hq", endpoint=f"agent-{i}", languages=["ar"],
                 skills=["phcc"])


async def setup(redis: Redis, wrapup_s: float = 60) -> tuple[AgentPool, WrapUps, Sink]:
    pool = AgentPool(redis, [agent("a1"), agent("a2")], key_prefix=f"t-{uuid.uuid4().hex[:8]}")
    await pool.sync()
    sink = Sink()
    wu = WrapUps(pool, sink, WORK)
    for a, call in (("a1", "c1"), ("a2", "c2")):
        await pool.login(a)
        offer = await pool.take(Q, call, entity="phcc")
        assert offer is not None and offer.agent.id == a
        assert await pool.answered(a, call)
        assert await pool.release(a, wrapup_s, call) is AgentState.WRAPUP
    return pool, wu, sink


async def changes(pool: AgentPool, agent_id: str) -> list[dict[str, Any]]:
    """The agent's state changes as the records stream holds them, oldest first."""
    out = []
    for _eid, f in await pool.redis.xrange(pool.base + "records"):
        if b"agent" in f:
            obj = json.loads(f[b"agent"])
            if obj["agent"] == agent_id:
                out.append(obj)
    return out


async def test_a_tag_is_one_late_fact_with_kind_detail_note_and_who(redis: Redis) -> None:
    _pool, wu, sink = await setup(redis)
    await wu.tag("a1", "c1", "complaint", "staff", "  rude\x00 \u202ereply\t\r\nok  ")
    (ev,) = sink.events
    assert problem(ev) is None and ev.call_id == "c1" and ev.source == "wrapup"
    assert ev.data == {"set": {"reason": "complaint", "reason_detail": "staff",
                               "note": "rude reply \nok", "tagged_by": "a1"}}


async def test_bad_tags_are_refused_with_the_reason(redis: Redis) -> None:
    _pool, wu, sink = await setup(redis)
    cases = [
        (("a1", "c1", "praise", None, None), "unknown call reason 'praise'"),
        (("a1", "c1", "inquiry", "staff", None), "unknown sub-reason 'staff' for inquiry"),
        (("a1", "c1", "complaint", "parking", None), "unknown sub-reason 'parking'"),
        (("a1", "c2", "complaint", None, None), "is not this agent's call"),
        (("a1", "c1", "other", None, "x" * 501), "note too long: 501 characters"),
        (("zz", "c1", "other", None, None), "not in the roster"),
    ]
    for args, msg in cases:
        with pytest.raises(WrapUpError, match=msg):
            await wu.tag(*args)
    assert sink.events == []


async def test_done_ends_wrapup_and_an_untagged_one_names_its_call(redis: Redis) -> None:
    pool, wu, _sink = await setup(redis)
    await wu.tag("a2", "c2", "inquiry", "appointment", None)
    await wu.done("a1")
    await wu.done("a2")
    for a in ("a1", "a2"):
        st = await pool.status(a)
        assert st is not None and st.state is AgentState.AVAILABLE
    (d1,) = [c for c in await changes(pool, "a1") if c["kind"] == "wrapup_done"]
    (d2,) = [c for c in await changes(pool, "a2") if c["kind"] == "wrapup_done"]
    assert d1["noreason"] == "c1" and "noreason" not in d2
    with pytest.raises(WrapUpError, match="not in wrap-up"):
        await wu.done("a1")
    # still the agent's last call until the next offer: a late tag is accepted
    await wu.tag("a1", "c1", "other", None, None)
    assert await pool.take(Q, "c3", entity="phcc") is not None
    with pytest.raises(WrapUpError, match="not this agent's call"):
        await wu.tag("a1", "c1", "other", None, None)


async def test_a_timed_out_wrapup_names_its_call_at_its_end(redis: Redis) -> None:
    pool, _wu, _sink = await setup(redis, wrapup_s=0.2)
    deadline = time.monotonic() + 5
    while (st := await pool.status("a1")) is not None and st.state is not AgentState.AVAILABLE:
        assert time.monotonic() < deadline, st
        await asyncio.sleep(0.05)
    evs = await changes(pool, "a1")
    wrap = next(c for c in evs if c["kind"] == "wrapup")
    (out,) = [c for c in evs if c["kind"] == "wrapup_timeout"]
    assert out["noreason"] == "c1" and out["at"] == wrap["until"]  # at its end, not when seen


async def test_extend_up_to_the_maximum(redis: Redis) -> None:
    pool, wu, _sink = await setup(redis)
    st = await pool.status("a1")
    assert st is not None and st.until is not None
    end = await wu.extend("a1", 20)
    assert end == pytest.approx(st.until + 20, abs=0.002)
    end2 = await wu.extend("a1", 20)  # only 10 s of the 30 s maximum are left
    assert end2 == pytest.approx(st.until + 30, abs=0.002)
    with pytest.raises(WrapUpError, match="already extended"):
        await wu.extend("a1", 1)
    for bad in (0, -5, float("nan"), float("inf")):
        with pytest.raises(WrapUpError, match="positive number"):
            await wu.extend("a2", bad)
    st = await pool.status("a1")
    assert st is not None and st.until == pytest.approx(end2, abs=0.002)


def test_reasons_list_the_kinds_and_the_entitys_sub_reasons() -> None:
    wu = WrapUps.__new__(WrapUps)
    wu.work = WORK
    got = wu.reasons("phcc")
    assert [r["kind"] for r in got] == ["inquiry", "complaint", "e_service_support", "other"]
    assert got[0]["sub_reasons"] == [{"id": "appointment",
                                      "labels": {"en": "Appointment", "ar": "موعد"}}]
    assert got[1]["labels"]["ar"] == "شكوى"
    assert all(r["sub_reasons"] == [] for r in wu.reasons("moph"))


def test_note_cleaning_keeps_text_and_arabic_joiners() -> None:
    assert clean_note("شكوى\u200cعامة\x1b[31m", 50) == "شكوى\u200cعامة[31m"
    assert clean_note("<b>x</b>", 50) == "<b>x</b>"  # text: escaping is the page's job


async def test_every_state_change_is_logged_listed_and_published(redis: Redis) -> None:
    pool = AgentPool(redis, [agent("a1")], key_prefix=f"t-{uuid.uuid4().hex[:8]}")
    await pool.sync()
    hist = AgentHistory(redis, key_prefix=pool.base[1:-2])
    got: list[str] = []
    async with hist.subscribed() as live:
        await pool.login("a1")
        await pool.set_reachable("a1", False)
        await pool.set_reachable("a1", True)
        await pool.pause("a1", "prayer")
        await pool.resume("a1")
        assert await pool.take(Q, "c1", entity="phcc") is not None
        await pool.missed("a1", "c1")
        await pool.resume("a1")
        assert await pool.take(Q, "c2", entity="phcc") is not None
        await pool.answered("a1", "c2")
        await pool.release("a1", 30, "c2")
        await pool.logout("a1")

        async def until_logout() -> None:
            async for ch in live:
                got.append(ch.kind)
                if ch.kind == "logout":
                    return

        await asyncio.wait_for(until_logout(), 5)
    kinds = ["login", "unreachable", "reachable", "paused", "resume", "offered", "missed",
             "resume", "offered", "on_call", "wrapup", "logout"]
    stream = await changes(pool, "a1")
    assert [c["kind"] for c in stream] == kinds
    assert got == kinds
    recent = await hist.recent("a1")
    assert [c.kind for c in recent] == kinds[::-1]
    by_kind = {c["kind"]: c for c in stream}
    assert by_kind["paused"]["reason"] == "prayer" and by_kind["paused"]["state"] == "paused"
    assert by_kind["missed"]["reason"] == "missed_call"
    assert by_kind["unreachable"]["reach"] == "0" and by_kind["unreachable"]["state"] == "available"
    assert by_kind["logout"]["noreason"] == "c2"  # logged out in wrap-up, untagged
    # each parses as the archive will take it
    ids = [eid for eid, f in await redis.xrange(pool.base + "records") if b"agent" in f]
    ev = parse(ids[-1].decode(), json.dumps(by_kind["logout"]).encode())
    assert ev.state == "logged_out" and ev.noreason == "c2"
    assert NO_REASON == "no_reason_given"
