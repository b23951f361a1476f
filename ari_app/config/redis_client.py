"""The one place the app, the archiver and the CLI make their redis.asyncio
clients: from `redis.url`, or, with `redis.sentinel`, a client of the primary
that Redis Sentinel names, which follows it through a failover.

With Sentinel every new connection asks the sentinels for the primary's
address first; a connection to a server that became a replica answers
READONLY, which redis-py turns into a connection error, so the retry of the
command lands on the new primary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from ari_app.config.models import RedisSettings, resolve_secret
from ari_app.config.secure import redis_kwargs


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool with the blocking pool's bound: a burst of calls waits for a
    free connection rather than failing, as with `redis.url`."""


class SentinelRedis(Redis):
    """A client of the Sentinel-named primary that also closes its sentinel clients."""

    manager: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.manager is not None:
            await self.manager.aclose()


def redis_client(settings: RedisSettings, source: Path | None, *, socket_timeout: float,
                 socket_connect_timeout: float, max_connections: int | None = None,
                 pool_timeout: float = 5.0, **extra: Any) -> Redis:
    """A client for `settings`; `max_connections` makes its pool a blocking one
    (callers wait `pool_timeout` for a free connection). `extra` goes to each
    connection (retry, health checks)."""
    kw: dict[str, Any] = dict(redis_kwargs(settings, source), socket_timeout=socket_timeout,
                              socket_connect_timeout=socket_connect_timeout, **extra)
    pool_kw: dict[str, Any] = {}
    if max_connections is not None:
        pool_kw = {"max_connections": max_connections, "timeout": pool_timeout}
    sen = settings.sentinel
    if sen is None:
        if not pool_kw:
            return Redis.from_url(settings.url, **kw)
        return Redis(connection_pool=BlockingConnectionPool.from_url(settings.url, **kw,
                                                                     **pool_kw))
    to_sentinels: dict[str, Any] = {"socket_timeout": socket_timeout,
                                    "socket_connect_timeout": socket_connect_timeout}
    if sen.password is not None:
        to_sentinels["password"] = resolve_secret(sen.password, source).get_secret_value()
    manager = Sentinel(  # type: ignore[no-untyped-call]
        sen.addresses(), sentinel_kwargs=to_sentinels, db=sen.db, **kw)
    client: SentinelRedis = manager.master_for(
        sen.service_name, redis_class=SentinelRedis,
        connection_pool_class=BlockingSentinelPool if pool_kw else SentinelConnectionPool,
        **pool_kw)
    client.manager = manager
    return client
