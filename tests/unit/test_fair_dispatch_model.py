"""The dispatcher against a pure-Python reference model of fair dispatch.

On 1,200 random scenarios (agents with several skills, languages, sites,
proficiencies and idle times, some tied; callers of several entities and
languages whose waits put them at different routing steps; entity and caller
priorities), one dispatch round on a real Redis must make exactly the offers
the model makes: callers in one order across entities (priority, then the
longest wait), each given the longest-idle agent its narrowest open routing
step allows (preferred site first, then proficiency, then agent id).

The model works out routing steps on its own, from the same settings, so a
fault in either the steps or the selection shows as a difference.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from ari_app.agents.pool import AgentPool
from ari_app.config.models import Agent, HotlineConfig
from ari_app.config.queue import EntityQueue, QueueSettings, RoutingSteps
from ari_app.queue.dispatch import Dispatcher, OfferBox
from ari_app.queue.waiting import WaitingQueues

LANGS = [("ar", "1", "ar"), ("en", "2", "en"), ("ur", "3", "ur"), ("hi", "4", "hi")]
# entity -> sector (None: offered by the main menu directly)
ENTITIES = {"phcc": "health", "hmc": "health", "moi": "justice", "moj": "justice",
            "qcb": None}
SECTORS = ["health", "justice"]
SITES = ["hq", "west"]
SCENARIOS = 1200


def config() -> HotlineConfig:
    names = {c: c for c, _, _ in LANGS}

    def ent(i: str) -> dict[str, object]:
        return {"id": i, "names": names}

    return HotlineConfig.model_validate({
        "languages": [{"code": c, "name": c, "english_name": c, "digit": d, "voice": v}
                      for c, d, v in LANGS],
        "default_language": "ar",
        "menu": {"id": "main", "names": names, "options": [
            {"digit": "1", "menu": {"id": "health", "names": names, "options": [
                {"digit": "1", "entity": ent("phcc")}, {"digit": "2", "entity": ent("hmc")}]}},
            {"digit": "2", "menu": {"id": "justice", "names": names, "options": [
                {"digit": "1", "entity": ent("moi")}, {"digit": "2", "entity": ent("moj")}]}},
            {"digit": "3", "entity": ent("qcb")},
        ]},
        "other_departments": {"id": "other", "names": names},
        "numbers": {"109": {"journey": "full"}},
        "sites": [{"id": s, "name": s} for s in SITES],
    })


SETTINGS = QueueSettings(
    routing=RoutingSteps(sector_after=30, fallback_language_after=90,
                         fallback_languages=("ar", "en")),
    entities={"phcc": EntityQueue(priority=5, site="west"), "moi": EntityQueue(priority=2),
              "qcb": EntityQueue(site="hq")},
)


@dataclass(frozen=True)
class Caller:
    call_id: str
    entity: str
    language: str
    priority: int
    arrival_ms: int


@dataclass(frozen=True)
class Step:
    skills: frozenset[str]
    languages: frozenset[str]
    site: str | None
    step: int


def model_steps(entity: str, language: str, waited: float) -> list[Step]:
    """The routing steps as docs/routing.md states them, written independently."""
    r = SETTINGS.routing
    site = (SETTINGS.entities.get(entity) or EntityQueue()).site
    own = frozenset({entity})
    steps = [Step(own, frozenset({language}), site, 0)]
    sector = ENTITIES[entity]
    if waited >= r.sector_after and sector is not None:
        steps.append(Step(own | {sector}, frozenset({language}), site, 1))
    if waited >= r.fallback_language_after:
        langs = frozenset(r.fallback_languages) - {language}
        if langs:
            steps.append(Step(own, langs, site, 2))
    return steps


def model(agents: list[Agent], free: set[str], idle: dict[str, int], callers: list[Caller],
          now_ms: int) -> dict[str, tuple[str, int]]:
    """call id -> (agent id, step) for every caller the round serves."""
    left = {a.id: a for a in agents if a.id in free}
    out: dict[str, tuple[str, int]] = {}
    for c in sorted(callers, key=lambda c: (-c.priority, c.arrival_ms, c.call_id)):
        for st in model_steps(c.entity, c.language, (now_ms - c.arrival_ms) / 1000):
            match = [a for a in left.values()
                     if st.skills & set(a.skills) and st.languages & set(a.languages)]
            here = [a for a in match if a.site == st.site]
            match = here or match
            if match:
                best = min(match, key=lambda a: (idle[a.id], -a.proficiency.get(c.entity, 0),
                                                 a.id))
                out[c.call_id] = (best.id, st.step)
                del left[best.id]
                break
    return out


def scenario(rng: random.Random, now_ms: int) -> tuple[list[Agent], set[str], dict[str, int],
                                                       list[Caller]]:
    codes = [c for c, _, _ in LANGS]
    agents: list[Agent] = []
    for n in range(rng.randint(1, 7)):
        skills = rng.sample([*ENTITIES, *SECTORS], rng.randint(1, 3))
        prof = {s: rng.randint(1, 10) for s in skills if rng.random() < 0.5}
        agents.append(Agent(id=f"a{n:02d}", name=f"A{n}", site=rng.choice(SITES),
                            endpoint=f"ep-{n}", languages=rng.sample(codes, rng.randint(1, 2)),
                            skills=skills, proficiency=prof))
    free = {a.id for a in agents if rng.random() < 0.8}
    # few distinct idle times, so ties (decided by proficiency, then id) happen
    idle = {a.id: now_ms - 1000 * rng.choice([5, 20, 20, 60, 300]) for a in agents}
    callers = []
    for n in range(rng.randint(1, 9)):
        entity = rng.choice(list(ENTITIES))
        # waits well clear of the 30 s and 90 s marks: the round's clock is not the model's
        waited = rng.choice([1.0, 40.0, 100.0]) + rng.uniform(0, 15)
        callers.append(Caller(
            call_id=f"c{n:02d}", entity=entity, language=rng.choice(codes),
            priority=SETTINGS.priority_of(entity, rng.choice([0, 0, 0, 3, 10])),
            arrival_ms=now_ms - round(waited * 1000)))
    return agents, free, idle, callers


async def dispatched(r: Redis, cfg: HotlineConfig, agents: list[Agent], free: set[str],
                     idle: dict[str, int], callers: list[Caller]) -> dict[str, tuple[str, int]]:
    prefix = f"m-{uuid.uuid4().hex[:10]}"
    pool = AgentPool(r, agents, key_prefix=prefix)
    await pool.sync()
    for a in agents:
        if a.id in free:
            await pool.login(a.id, reachable=True)
            await r.hset(f"{{{prefix}}}:agent:{a.id}", "idle", str(idle[a.id]))
    await pool.sync()  # re-indexes the available agents at their idle time
    waiting = WaitingQueues(r, key_prefix=prefix)
    for c in callers:
        await waiting.join(c.entity, c.call_id, c.language, priority=c.priority,
                           arrival=c.arrival_ms / 1000)
    box = OfferBox()
    futs = {c.call_id: box.open(c.call_id) for c in callers}
    d = Dispatcher(cfg, SETTINGS, r, pool, waiting, box, instance="i1")
    await d.dispatch_all()
    out = {}
    for call_id, f in futs.items():
        if f.done():
            offer = f.result()
            out[call_id] = (offer.agent.id, offer.step)
            assert await waiting.position(entity_of(callers, call_id), call_id) is None
    keys = [k async for k in r.scan_iter(match=f"{{{prefix}}}:*")]
    if keys:
        await r.delete(*keys)
    return out


def entity_of(callers: list[Caller], call_id: str) -> str:
    return next(c.entity for c in callers if c.call_id == call_id)


async def test_dispatch_matches_the_reference_model(redis_url: str) -> None:
    cfg = config()
    rng = random.Random(109)
    r = Redis.from_url(redis_url)
    served = crossed = ties = 0
    try:
        for i in range(SCENARIOS):
            now_ms = round(time.time() * 1000)
            agents, free, idle, callers = scenario(rng, now_ms)
            want = model(agents, free, idle, callers, now_ms)
            got = await dispatched(r, cfg, agents, free, idle, callers)
            assert got == want, (
                f"scenario {i}: dispatcher {got} != model {want}\nagents={agents}\n"
                f"free={sorted(free)}\nidle={idle}\ncallers={callers}")
            served += len(got)
            crossed += len({entity_of(callers, c) for c in got}) > 1
            ties += len(set(idle.values())) < len(idle)
    finally:
        await r.aclose()
    # the scenarios do exercise what the test is about
    assert served > SCENARIOS and crossed > 100 and ties > 100


async def test_two_instances_dispatching_at_once_offer_nothing_twice(redis_url: str) -> None:
    """Two dispatchers (two app instances) run rounds at the same moment over
    the same callers: the ZREM claim inside the script keeps every caller to one
    offer and every agent to one caller."""
    cfg = config()
    rng = random.Random(7)
    r1, r2 = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        for _ in range(30):
            prefix = f"m-{uuid.uuid4().hex[:10]}"
            now_ms = round(time.time() * 1000)
            agents, _, _, callers = scenario(rng, now_ms)
            pools = [AgentPool(r, agents, key_prefix=prefix) for r in (r1, r2)]
            await pools[0].sync()
            for a in agents:
                await pools[0].login(a.id, reachable=True)
            queues = [WaitingQueues(r, key_prefix=prefix) for r in (r1, r2)]
            for c in callers:
                await queues[0].join(c.entity, c.call_id, c.language, priority=c.priority,
                                     arrival=c.arrival_ms / 1000)
            boxes = [OfferBox(), OfferBox()]
            futs = [{c.call_id: b.open(c.call_id) for c in callers} for b in boxes]
            ds = [Dispatcher(cfg, SETTINGS, r, p, q, b, instance=f"i{n}")
                  for n, (r, p, q, b) in enumerate(zip((r1, r2), pools, queues, boxes,
                                                       strict=True))]
            await asyncio.gather(*(d.dispatch_all() for d in ds))
            offers = [(c, f.result().agent.id) for fs in futs for c, f in fs.items() if f.done()]
            calls = [c for c, _ in offers]
            agent_ids = [a for _, a in offers]
            assert len(calls) == len(set(calls)), offers
            assert len(agent_ids) == len(set(agent_ids)), offers
            assert sum(d.offers for d in ds) == len(offers)
    finally:
        await r1.aclose()
        await r2.aclose()


def test_model_serves_the_longer_waiting_b_caller_first() -> None:
    """The reference model itself, on the case the issue names."""
    a = Agent(id="a1", name="A", site="hq", endpoint="e", languages=["en"],
              skills=["qcb", "moj"])
    callers = [Caller("early-b", "moj", "en", 0, 1000), Caller("late-a", "qcb", "en", 0, 2000)]
    assert model([a], {"a1"}, {"a1": 0}, callers, 3000) == {"early-b": ("a1", 0)}


if __name__ == "__main__":  # pragma: no cover - handy when debugging a scenario
    asyncio.run(test_dispatch_matches_the_reference_model("redis://127.0.0.1:6379"))
    pytest.main([__file__])
