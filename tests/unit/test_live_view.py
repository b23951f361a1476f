"""RedisLiveView against a real Redis: figures equal the state set by hand; bounded round trips."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from ari_app.agents.pool import AgentPool
from ari_app.config.loader import load_config
from ari_app.config.models import HotlineConfig
from ari_app.live.counters import CallCounters
from ari_app.live.view import RedisLiveView, arrival_ms
from ari_app.queue.waiting import WaitingQueues

CONFIG = Path(__file__).resolve().parents[2] / "config" / "hotline.yaml"


@pytest.fixture(scope="module")
def cfg() -> HotlineConfig:
    return load_config(CONFIG)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    r = Redis.from_url(redis_url)
    yield r
    await r.aclose()


def build(redis: Redis, cfg: HotlineConfig) -> tuple[RedisLiveView, AgentPool, WaitingQueues,
                                                     CallCounters]:
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    pool = AgentPool(redis, cfg.agents, key_prefix=prefix)
    wq = WaitingQueues(redis, key_prefix=prefix)
    counters = CallCounters()
    return RedisLiveView(redis, pool, wq, cfg, counters), pool, wq, counters


async def test_arrival_is_decoded_from_the_score(redis: Redis) -> None:
    wq = WaitingQueues(redis, key_prefix=f"t-{uuid.uuid4().hex[:8]}")
    await wq.join("phcc", "c1", "ar", priority=17, arrival=1_780_000_000.123, transferred=True)
    rows: Any = await redis.zrange(wq.base + "wait:phcc", 0, -1, withscores=True)
    assert arrival_ms(rows[0][1]) == 1_780_000_000_123


async def test_snapshot_equals_the_state_set_by_hand(redis: Redis, cfg: HotlineConfig) -> None:
    view, pool, wq, counters = build(redis, cfg)
    await pool.sync()
    now = time.time()
    await wq.join("phcc", "c1", "ar", arrival=now - 10)
    await wq.join("phcc", "c2", "en", arrival=now - 42)  # behind c1? no: earlier, so ahead
    await wq.join("phcc", "c3", "ar", priority=20, arrival=now - 5)  # served first, not oldest
    await wq.join("moi", "c4", "en", arrival=now - 3)
    await wq.join("hmc", "c5", "en", arrival=now - 1)
    await wq.remove("hmc", "c5")  # an entity that had callers and has none now
    doha = [a.id for a in cfg.agents if a.site == "doha_hq"][:3]
    rayyan = [a.id for a in cfg.agents if a.site == "al_rayyan"][:2]
    for i in [*doha, *rayyan]:
        await pool.login(i)
    await pool.pause(doha[0], "break")
    await pool.set_reachable(rayyan[0], False)
    counters.queued_call("phcc")
    counters.answered(8.0)
    counters.menu_entered()

    snap = await view.snapshot()

    assert snap["at"].endswith("Z")
    waiting = {w["entity"]: w for w in snap["waiting"]}
    assert set(waiting) == {"phcc", "moi"}
    assert [w["entity"] for w in snap["waiting"]] == ["phcc", "moi"]  # longest wait first
    assert waiting["phcc"]["count"] == 3
    assert waiting["phcc"]["longest_seconds"] == pytest.approx(42, abs=1.5)
    assert waiting["moi"]["count"] == 1
    assert waiting["moi"]["longest_seconds"] == pytest.approx(3, abs=1.5)
    assert waiting["phcc"]["name"] == cfg.entity("phcc").names
    assert waiting["phcc"]["name"]["ar"] == "مؤسسة الرعاية الصحية الأولية"

    sites = {s["site"]: s for s in snap["sites"]}
    assert [s["site"] for s in snap["sites"]] == [s.id for s in cfg.sites]
    assert sites["doha_hq"]["name"] == "Doha headquarters (West Bay)"
    n_doha = sum(1 for a in cfg.agents if a.site == "doha_hq")
    assert sites["doha_hq"]["agents"] == {"available": 2, "paused": 1, "offered": 0,
                                          "on_call": 0, "wrapup": 0, "logged_out": n_doha - 3}
    assert sites["al_rayyan"]["agents"]["available"] == 2
    assert sites["al_rayyan"]["unreachable"] == 1
    assert sites["dukhan"]["agents"]["available"] == 0
    assert sum(sum(s["agents"].values()) for s in snap["sites"]) == len(cfg.agents)

    assert snap["today"]["offered"] == 1 and snap["today"]["answered"] == 1
    assert snap["today"]["asa_seconds"] == 8.0 and snap["today"]["service_level"] == 1.0
    assert snap["in_menus"] == 1

    await view.refresh()
    assert counters.waiting["phcc"] == 3 and counters.waiting["hmc"] == 0
    assert counters.waiting["qcb"] == 0  # every configured entity has a series
    assert counters.agents[("doha_hq", "paused")] == 1
    assert counters.unreachable["al_rayyan"] == 1


class RoundTrips:
    def __init__(self, redis: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        orig_cmd = redis.execute_command
        orig_exec = Pipeline.execute

        async def cmd(*args: Any, **kw: Any) -> Any:
            self.n += 1
            return await orig_cmd(*args, **kw)  # type: ignore[no-untyped-call]

        async def execute(pipe: Pipeline, *args: Any, **kw: Any) -> Any:
            self.n += 1
            return await orig_exec(pipe, *args, **kw)

        monkeypatch.setattr(redis, "execute_command", cmd)
        monkeypatch.setattr(Pipeline, "execute", execute)


async def test_round_trips_do_not_grow_with_callers_entities_or_agents(
    redis: Redis, cfg: HotlineConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    view, pool, wq, _ = build(redis, cfg)
    await pool.sync()
    await wq.join("phcc", "c0", "ar")
    await view.snapshot()  # loads the Lua scripts once
    trips = RoundTrips(redis, monkeypatch)
    await view.snapshot()
    small = trips.n
    for n, e in enumerate(e.id for e in cfg.entities):
        for k in range(3):
            await wq.join(e, f"c-{n}-{k}", "ar")
    for a in cfg.agents[:100]:
        await pool.login(a.id)
    trips.n = 0
    snap: dict[str, Any] = await view.snapshot()
    assert len(snap["waiting"]) == len(cfg.entities)
    assert trips.n == small
    assert small == 5
