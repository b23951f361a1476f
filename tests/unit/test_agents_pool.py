"""The agent pool against a real Redis: selection, exclusions, wrap-up, races."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from ari_app.agents.pool import AgentPool, AgentState, AgentStateError, CandidateQuery
from ari_app.config.models import Agent


def agent(
    i: str, site: str = "doha_hq", langs: tuple[str, ...] = ("ar", "en"),
    skills: tuple[str, ...] = ("phcc",),
) -> Agent:
    return Agent(id=i, name=i, site=site, endpoint=f"agent-{i}", languages=list(langs),
                 skills=list(skills))


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    r = Redis.from_url(redis_url)
    yield r
    await r.aclose()


def new_pool(redis: Redis, agents: list[Agent]) -> AgentPool:
    return AgentPool(redis, agents, key_prefix=f"t-{uuid.uuid4().hex[:8]}")


Q = CandidateQuery(("phcc",), ("ar",))


async def login_in_order(pool: AgentPool, ids: list[str]) -> None:
    for i in ids:
        await pool.login(i)
        await asyncio.sleep(0.003)  # distinct idle-since on the ms clock


async def test_idle_longest_is_taken_first(redis: Redis) -> None:
    pool = new_pool(redis, [agent("a1"), agent("a2"), agent("a3")])
    await pool.sync()
    await login_in_order(pool, ["a2", "a3", "a1"])
    got = [await pool.take(Q, f"c{n}") for n in range(4)]
    assert [o.agent.id if o else None for o in got] == ["a2", "a3", "a1", None]
    st = await pool.status("a2")
    assert st is not None and st.state is AgentState.OFFERED and st.call == "c0"


async def test_released_agent_goes_to_the_back(redis: Redis) -> None:
    pool = new_pool(redis, [agent("a1"), agent("a2")])
    await login_in_order(pool, ["a1", "a2"])
    o = await pool.take(Q, "c1")
    assert o is not None and o.agent.id == "a1"
    assert await pool.answered("a1", "c1")
    assert await pool.release("a1", 0, "c1") is AgentState.AVAILABLE
    o = await pool.take(Q, "c2")
    assert o is not None and o.agent.id == "a2"


async def test_paused_and_unreachable_are_never_taken(redis: Redis) -> None:
    pool = new_pool(redis, [agent("a1"), agent("a2"), agent("a3")])
    await login_in_order(pool, ["a1", "a2", "a3"])
    assert await pool.pause("a1", "break") == "paused"
    await pool.set_reachable("a2", False)
    o = await pool.take(Q, "c1")
    assert o is not None and o.agent.id == "a3"
    assert await pool.take(Q, "c2") is None
    await pool.set_reachable("a2", True)
    o = await pool.take(Q, "c3")
    assert o is not None and o.agent.id == "a2"
    assert await pool.take(Q, "c4") is None
    assert await pool.resume("a1") is AgentState.AVAILABLE
    o = await pool.take(Q, "c5")
    assert o is not None and o.agent.id == "a1"


async def test_logged_out_and_unknown(redis: Redis) -> None:
    pool = new_pool(redis, [agent("a1")])
    await pool.login("a1")
    assert await pool.logout("a1") is AgentState.AVAILABLE
    assert await pool.take(Q, "c1") is None
    with pytest.raises(AgentStateError):
        await pool.pause("a1", "x")
    with pytest.raises(AgentStateError):
        await pool.login("nobody")


async def test_skill_and_language_filtering(redis: Redis) -> None:
    pool = new_pool(redis, [
        agent("ur1", langs=("ar", "ur"), skills=("moi",)),
        agent("en1", langs=("en",), skills=("phcc",)),
        agent("ur2", langs=("en", "ur"), skills=("phcc", "health")),
    ])
    await login_in_order(pool, ["ur1", "en1", "ur2"])
    assert await pool.take(CandidateQuery(("phcc",), ("ml",)), "c0") is None
    o = await pool.take(CandidateQuery(("phcc",), ("ur",)), "c1")
    assert o is not None and o.agent.id == "ur2"
    assert await pool.take(CandidateQuery(("phcc",), ("ur",)), "c2") is None
    o = await pool.take(CandidateQuery(("moi", "phcc"), ("ur", "en")), "c3")
    assert o is not None and o.agent.id == "ur1"


async def test_steps_are_tried_in_order(redis: Redis) -> None:
    pool = new_pool(redis, [
        agent("sector", langs=("ur",), skills=("health",)),
        agent("own", langs=("en",), skills=("phcc",)),
    ])
    await login_in_order(pool, ["sector", "own"])
    steps = [
        CandidateQuery(("phcc",), ("ur",), step=0),
        CandidateQuery(("phcc", "health"), ("ur",), step=1),
        CandidateQuery(("phcc",), ("ar", "en"), step=2),
    ]
    o = await pool.take(steps, "c1")
    assert o is not None and (o.agent.id, o.step) == ("sector", 1)
    o = await pool.take(steps, "c2")
    assert o is not None and (o.agent.id, o.step) == ("own", 2)


async def test_site_preference(redis: Redis) -> None:
    pool = new_pool(redis, [agent("d1", site="dukhan"), agent("h1"), agent("d2", site="dukhan")])
    await login_in_order(pool, ["h1", "d1", "d2"])
    q = CandidateQuery(("phcc",), ("ar",), site="dukhan")
    got = [await pool.take(q, f"c{n}") for n in range(3)]
    assert [o.agent.id for o in got if o] == ["d1", "d2", "h1"]


async def test_wrapup_holds_the_agent_for_its_seconds(redis: Redis) -> None:
    pool = new_pool(redis, [agent("a1")])
    await pool.login("a1")
    assert (o := await pool.take(Q, "c1")) is not None and await pool.answered("a1", "c1")
    assert await pool.release("a1", 0.3, "c1") is AgentState.WRAPUP
    assert await pool.take(Q, "c2") is None
    nxt = await pool.next_wrapup_end()
    assert nxt is not None and 0.1 < nxt <= 0.3
    await asyncio.sleep(0.15)
    assert await pool.take(Q, "c2") is None
    await asyncio.sleep(0.2)
    o = await pool.take(Q, "c3")
    assert o is not None and o.agent.id == "a1"
    assert await pool.next_wrapup_end() is None


async def test_wrapup_end_is_the_idle_since(redis: Redis) -> None:
    """Lazy promotion still dates idleness from the end of wrap-up, not from
    whenever a script happened to notice it."""
    pool = new_pool(redis, [agent("a1"), agent("a2"), agent("a3")])
    await login_in_order(pool, ["a1", "a3"])
    await pool.take(Q, "c1")
    await pool.answered("a1", "c1")
    await pool.release("a1", 0.05, "c1")
    await asyncio.sleep(0.1)
    await pool.login("a2")  # after a1's wrap-up ended, before anything promoted a1
    got = [await pool.take(Q, f"c{n}") for n in (2, 3, 4)]
    assert [o.agent.id for o in got if o] == ["a3", "a1", "a2"]


async def test_missed_pauses_and_unoffer_restores(redis: Redis) -> None:
    pool = new_pool(redis, [agent("a1"), agent("a2")])
    await login_in_order(pool, ["a1", "a2"])
    assert (await pool.take(Q, "c1")) is not None
    assert not await pool.missed("a1", "other-call")
    assert await pool.missed("a1", "c1")
    st = await pool.status("a1")
    assert st is not None and st.state is AgentState.PAUSED and st.reason == "missed_call"
    o = await pool.take(Q, "c2")
    assert o is not None and o.agent.id == "a2"
    assert await pool.unoffer("a2", "c2")
    o = await pool.take(Q, "c3")
    assert o is not None and o.agent.id == "a2"
    assert not await pool.answered("a2", "c2")


async def test_pause_during_a_call_waits_for_release(redis: Redis) -> None:
    pool = new_pool(redis, [agent("a1")])
    await pool.login("a1")
    await pool.take(Q, "c1")
    await pool.answered("a1", "c1")
    assert await pool.pause("a1", "lunch") == "pause_pending"
    assert await pool.release("a1", 10, "c1") is AgentState.PAUSED
    st = await pool.status("a1")
    assert st is not None and st.reason == "lunch"


async def test_two_instances_never_offer_one_agent_twice(redis_url: str) -> None:
    agents = [agent(f"a{i:03d}", site=f"s{i % 3}") for i in range(40)]
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    r1, r2 = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        p1 = AgentPool(r1, agents, key_prefix=prefix)
        p2 = AgentPool(r2, agents, key_prefix=prefix)
        await p1.sync()
        for a in agents:
            await p1.login(a.id)

        async def taker(pool: AgentPool, name: str) -> list[str]:
            got = []
            for n in range(30):
                q = CandidateQuery(("phcc",), ("ar",), site=f"s{n % 3}")
                o = await pool.take(q, f"{name}-{n}")
                if o:
                    got.append(o.agent.id)
                await asyncio.sleep(0)
            return got

        results = await asyncio.gather(
            *(taker(p, f"{i}") for i, p in enumerate([p1, p2] * 8))
        )
        taken = [a for r in results for a in r]
        assert len(taken) == 40
        assert len(set(taken)) == 40
        snap = await p2.snapshot()
        assert sum(c["offered"] for c in snap.by_site.values()) == 40
    finally:
        await r1.aclose()
        await r2.aclose()


async def test_snapshot_counts_by_site(redis: Redis) -> None:
    pool = new_pool(redis, [agent("a1"), agent("a2", site="lusail"), agent("a3")])
    await pool.sync()
    await pool.login("a1")
    await pool.login("a2")
    await pool.pause("a2", "training")
    await pool.set_reachable("a1", False)
    snap = await pool.snapshot()
    assert snap.by_site["doha_hq"]["available"] == 1
    assert snap.by_site["doha_hq"]["logged_out"] == 1
    assert snap.by_site["lusail"]["paused"] == 1
    assert snap.unreachable_by_site == {"doha_hq": 1, "lusail": 0}


async def test_profile_change_reindexes(redis: Redis) -> None:
    pool = new_pool(redis, [agent("a1", skills=("moi",))])
    await pool.login("a1")
    assert await pool.take(Q, "c1") is None
    pool2 = AgentPool(redis, [agent("a1", skills=("phcc",))], key_prefix=pool.base[1:-2])
    await pool2.sync()
    assert await pool.take(CandidateQuery(("moi",), ("ar",)), "c2") is None
    o = await pool2.take(Q, "c3")
    assert o is not None and o.agent.id == "a1"
