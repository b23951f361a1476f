"""The failover rig for tests: a Redis primary, a replica and three sentinels
(scripts/stack.py RedisSentinels) and the session stack's app and archiver moved
onto them for the length of a test."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import redis
import yaml

from scripts.stack import RedisSentinels
from tests.support.stackfix import Agents, StackUnderTest


@contextlib.contextmanager
def sentinel_group(sut: StackUnderTest) -> Iterator[RedisSentinels]:
    """Started (replica in sync, sentinels agreeing) on the stack's offset; stopped after."""
    group = RedisSentinels(sut.stack.dir / "sentinel", sut.stack.ports.offset)
    group.start()
    try:
        yield group
    finally:
        group.stop()


@contextlib.contextmanager
def on_sentinels(sut: StackUnderTest, group: RedisSentinels) -> Iterator[None]:
    """Restart the app and the archiver with `redis.sentinel` (no url), then back."""
    s = sut.stack
    original = s.write_app_config

    def patched() -> None:
        original()
        raw = yaml.safe_load(s.app_config.read_text(encoding="utf-8"))
        raw["redis"] = {k: v for k, v in raw["redis"].items() if k != "url"}
        raw["redis"].update(group.app_settings())
        s.app_config.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False),
                                encoding="utf-8")

    s.write_app_config = patched  # type: ignore[method-assign]
    try:
        s.start_app()
        s.start_archiver()
        yield
    finally:
        s.write_app_config = original  # type: ignore[method-assign]
        s.start_app()
        s.start_archiver()


def primary_client(group: RedisSentinels, timeout: float = 30) -> redis.Redis:
    """A plain client of whichever server the sentinels name the primary now."""
    deadline = time.monotonic() + timeout
    while (port := group.primary()) is None:
        assert time.monotonic() < deadline, "no sentinel names a primary"
        time.sleep(0.1)
    return redis.Redis(port=port, password=group.password)


class SentinelAgents(Agents):
    """Agents whose pool is the one on the Sentinel-named primary."""

    def __init__(self, sut: StackUnderTest, group: RedisSentinels) -> None:
        super().__init__(sut)
        self.group = group

    def _run(self, coro_fn: Any) -> Any:
        import asyncio

        from ari_app.agents.pool import AgentPool
        from ari_app.config.loader import load_config
        from ari_app.config.redis_client import redis_client

        cfg = load_config(self.sut.stack.app_config)  # the app's, with its sentinel section

        async def go() -> Any:
            r = redis_client(cfg.redis, cfg.source, socket_timeout=2, socket_connect_timeout=2)
            try:
                return await coro_fn(AgentPool(r, self.cfg.agents))
            finally:
                await r.aclose()

        return asyncio.run(go())
