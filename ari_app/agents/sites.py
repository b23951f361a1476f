"""Which sites are alive, so agents are offered only where their state is known.

Each app instance drives one site's Asterisk server and keeps that site's
agents' reachability true from AMI. If a site's app stops (crash, network
split), nobody keeps its agents' state true any more: the other sites stop
offering them calls. Each instance refreshes a heartbeat key for its site;
each instance marks the agents of a site whose heartbeat has lapsed
unreachable. When the site's app returns, its AMI resync makes its agents
reachable again.
"""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ari_app.agents.pool import AgentPool
from ari_app.config.models import HotlineConfig
from ari_app.logs import get_logger

log = get_logger("sites")


class SiteWatch:
    def __init__(self, cfg: HotlineConfig, redis: Redis, pool: AgentPool,
                 interval: float = 1.0, ttl: float = 5.0) -> None:
        self.cfg = cfg
        self.redis = redis
        self.pool = pool
        self.interval = interval
        self.ttl = ttl
        self._key = "{" + cfg.redis.key_prefix + "}:site:"
        self.down: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        own = self.cfg.site
        if own is None:
            return  # one server holds every agent: nothing to watch
        while not stop.is_set():
            try:
                await self.redis.set(self._key + own, self.cfg.instance_id,
                                     px=int(self.ttl * 1000))
                await self.check(own)
            except RedisError as e:
                log.warning("sites.redis_error", error=str(e))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
        with contextlib.suppress(RedisError):
            await self.redis.delete(self._key + own)

    async def check(self, own: str) -> None:
        others = [s.id for s in self.cfg.sites if s.id != own]
        alive = await self.redis.mget([self._key + s for s in others])
        for site, beat in zip(others, alive, strict=True):
            if beat is None and site not in self.down:
                self.down.add(site)
                agents = [a.id for a in self.cfg.agents if a.site == site]
                for agent_id in agents:
                    await self.pool.set_reachable(agent_id, False)
                log.warning("sites.down", site=site, agents=len(agents))
            elif beat is not None and site in self.down:
                self.down.discard(site)
                log.info("sites.up", site=site)
