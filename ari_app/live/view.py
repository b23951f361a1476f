"""The live picture for the wallboard, read from the real state in Redis.

One `snapshot()` costs a fixed number of Redis round trips whatever the number
of entities, callers or agents: the waiting side is SMEMBERS of the waiting
entities, then one pipeline (TIME + one ZRANGE per entity); the agent side is
`AgentPool.snapshot()` (promote script, SMEMBERS, one pipeline of HGETALLs).
The two sides run concurrently.

The longest wait is read from the waiting queues' scores, which pack priority
and arrival (see `ari_app.queue.waiting`): the head of a queue is the caller
served first, not necessarily the one who arrived first (a transferred or
priority caller goes ahead), so every score is decoded and the minimum taken.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from ari_app.agents.pool import AgentPool, AgentState
from ari_app.config.models import HotlineConfig
from ari_app.live.counters import CallCounters
from ari_app.queue.waiting import _BAND, WaitingQueues


def arrival_ms(score: float) -> int:
    """The arrival (epoch ms) packed in a waiting-queue score."""
    return int(score) % _BAND


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class RedisLiveView:
    """Implements `web.deps.LiveView` over WaitingQueues, AgentPool and CallCounters."""

    def __init__(
        self,
        redis: Redis,
        pool: AgentPool,
        waiting: WaitingQueues,
        cfg: HotlineConfig,
        counters: CallCounters,
    ) -> None:
        self.redis = redis
        self.pool = pool
        self.waiting_queues = waiting
        self.counters = counters
        self._names: dict[str, dict[str, str]] = {e.id: dict(e.names) for e in cfg.entities}
        self._sites: dict[str, str] = {s.id: s.name for s in cfg.sites}

    def entity_name(self, entity: str) -> dict[str, str]:
        return self._names.get(entity) or {"en": entity}

    async def _waiting(self) -> tuple[float, list[dict[str, Any]]]:
        entities = await self.waiting_queues.entities()
        wq = self.waiting_queues
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.time()
            for e in entities:
                pipe.zrange(wq.base + "wait:" + e, 0, -1, withscores=True)
            res = await pipe.execute()
        secs, micros = res[0]
        now = int(secs) + int(micros) / 1e6
        out: list[dict[str, Any]] = []
        for e, members in zip(entities, res[1:], strict=True):
            if not members:
                continue
            earliest = min(arrival_ms(score) for _, score in members) / 1000.0
            out.append({
                "entity": e,
                "name": self.entity_name(e),
                "count": len(members),
                "longest_seconds": round(max(0.0, now - earliest), 1),
            })
        out.sort(key=lambda w: (-w["longest_seconds"], -w["count"], w["entity"]))
        return now, out

    async def snapshot(self) -> dict[str, Any]:
        # today's totals are everyone's (Redis), not only this instance's
        (now, waiting), agents, _ = await asyncio.gather(
            self._waiting(), self.pool.snapshot(), self.counters.sync())
        site_ids = list(self._sites) + sorted(s for s in agents.by_site if s not in self._sites)
        zero = {s.value: 0 for s in AgentState}
        sites = [
            {
                "site": s,
                "name": self._sites.get(s, s),
                "agents": {**zero, **agents.by_site.get(s, {})},
                "unreachable": agents.unreachable_by_site.get(s, 0),
            }
            for s in site_ids
        ]
        at = datetime.fromtimestamp(now or time.time(), UTC)
        return {
            "at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "waiting": waiting,
            "sites": sites,
            "today": self.counters.today(),
            "in_menus": self.counters.in_menus,
        }

    async def refresh(self) -> None:
        """Set the counters' Redis-derived gauges (for `WebDeps.refresh`, before a scrape)."""
        snap = await self.snapshot()
        self.apply(snap)

    def apply(self, snap: dict[str, Any]) -> None:
        """Copy a snapshot's waiting and agent figures into the counters' gauges."""
        seen = {w["entity"] for w in snap["waiting"]}
        for e in {*self._names, *self.counters.waiting}:
            if e not in seen:
                self.counters.set_waiting(e, 0, 0.0)
        for w in snap["waiting"]:
            self.counters.set_waiting(w["entity"], w["count"], w["longest_seconds"])
        self.counters.set_agents(
            {s["site"]: s["agents"] for s in snap["sites"]},
            {s["site"]: s["unreachable"] for s in snap["sites"]},
        )
