"""The simulator's in-memory pool makes the same choices as AgentPool on a real Redis.

The pool's Lua scripts take idle-since from the Redis server's clock, so the
simulator cannot run them on its virtual clock; this test drives both with the
same operations (a few ms apart, so Redis's clock orders them as the virtual
clock does) and asserts every take picks the same agent through the same step.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from ari_app.agents.pool import AgentPool
from ari_app.config import load_config
from ari_app.config.models import Agent
from ari_app.queue.routing import steps_for
from ari_app.simulate.engine import Demand, MemoryPool, Simulation


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    r = Redis.from_url(redis_url)
    yield r
    await r.aclose()


def roster(rng: random.Random) -> list[Agent]:
    sites = ["doha_hq", "al_rayyan", "lusail"]
    langs = ["ar", "en", "ur", "hi"]
    skills = ["phcc", "moph", "health", "other", "mehe"]
    out = []
    for i in range(16):
        out.append(Agent(id=f"a{i:02d}", name=f"a{i}", site=rng.choice(sites),
                         endpoint=f"agent-a{i:02d}", languages=rng.sample(langs, rng.randint(1, 2)),
                         skills=rng.sample(skills, rng.randint(1, 3))))
    return out


@pytest.mark.parametrize("seed", [1, 2])
async def test_memory_pool_takes_what_agent_pool_takes(redis: Redis, seed: int) -> None:
    cfg = load_config("config/hotline.yaml")
    rng = random.Random(seed)
    agents = roster(rng)
    real = AgentPool(redis, agents, key_prefix=f"sim-{uuid.uuid4().hex[:8]}")
    await real.sync()
    mem = MemoryPool(agents)
    clock = 0

    async def tick() -> int:
        nonlocal clock
        await asyncio.sleep(0.003)  # distinct idle-since on Redis's ms clock
        clock += 10
        return clock

    for a in rng.sample(agents, len(agents)):
        await real.login(a.id, reachable=True)
        mem.login(a.id, await tick())
    busy: list[tuple[str, str]] = []
    takes = hits = 0
    for n in range(160):
        op = rng.random()
        if op < 0.55:
            entity = rng.choice(["phcc", "moph", "mehe", "other"])
            steps = steps_for(cfg, entity, rng.choice(["ar", "en", "ur", "hi"]),
                              rng.choice([0.0, 40.0, 100.0]))
            if rng.random() < 0.5:
                site = rng.choice(["doha_hq", "lusail"])
                steps = [type(q)(q.skills, q.languages, site, q.step) for q in steps]
            call = f"c{n}"
            offer = await real.take(steps, call)
            got = mem.take(steps)
            takes += 1
            want = (offer.agent.id, offer.step) if offer is not None else None
            assert got == want, (n, steps)
            if offer is not None:
                hits += 1
                assert await real.answered(offer.agent.id, call)
                busy.append((offer.agent.id, call))
        elif op < 0.9 and busy:
            aid, call = busy.pop(rng.randrange(len(busy)))
            await real.release(aid, 0, call)
            mem.release(aid, await tick())
        else:
            a = rng.choice(agents)
            if mem.state[a.id] == "available":
                await real.logout(a.id)
                mem.logout(a.id)
            elif mem.state[a.id] == "logged_out":
                await real.login(a.id, reachable=True)
                mem.login(a.id, await tick())
        await tick()
    assert takes > 60 and 0 < hits < takes  # both outcomes were exercised


def test_a_small_month_adds_up() -> None:
    cfg = load_config("config/hotline.yaml")
    demand = Demand(calls=20_000, entity_mix={"phcc": 3, "moph": 1, "other": 2}, days=2)
    res = Simulation(cfg, demand, cfg.agents, seed=3).run()
    o = res.overall
    assert o["offered"] == 20_000
    assert o["answered"] + o["abandoned"] + o["timed_out"] + o["no_agents"] == 20_000  # type: ignore[operator]
    assert 0 < float(o["occupancy"] or 0) < 1
    assert set(res.by_language) == {"ar", "en", "ur", "hi", "ml", "bn", "ne", "ta", "si"}
