"""Agents' state changes, live and recent, as the desktop and wallboards read them.

The pool's scripts log every change (agents/scripts.py `log_state`) three
ways in the one script that makes it: an entry on the records stream (the
archiver keeps it in `agent_events`, records/agent_events.py), the agent's
last 100 changes in `{prefix}:hist:<agent>`, and a message on the pub/sub
channel `{prefix}:agent_state` (docs/records.md, "Agent state history").
Pub/sub is fire-and-forget: a subscriber that was away reads `recent()` to
catch up; the archive holds everything.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster

CHANNEL = "agent_state"
HISTORY_LEN = 100


def channel_name(key_prefix: str = "hotline") -> str:
    return "{" + key_prefix + "}:" + CHANNEL


@dataclass(frozen=True)
class StateChange:
    """One change: `kind` is what happened (login, offered, on_call, wrapup,
    wrapup_timeout, wrapup_done, extended, paused, missed, resume, unoffered,
    available, reachable, unreachable, logout), `state` the agent's state after it."""

    id: str
    agent: str
    kind: str
    state: str
    at: float  # Unix seconds, the Redis server's clock
    site: str
    reachable: bool
    reason: str | None = None
    call: str | None = None
    until: float | None = None
    noreason: str | None = None


def parse_change(raw: bytes | str) -> StateChange:
    """A change as published; ValueError if it is not one."""
    try:
        obj: Any = json.loads(raw)
        return StateChange(
            id=str(obj["id"]), agent=str(obj["agent"]), kind=str(obj["kind"]),
            state=str(obj["state"]), at=int(obj["at"]) / 1000.0, site=str(obj.get("site", "")),
            reachable=obj.get("reach") != "0", reason=obj.get("reason"), call=obj.get("call"),
            until=int(obj["until"]) / 1000.0 if obj.get("until") else None,
            noreason=obj.get("noreason"))
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"not an agent state change: {e!r}") from None


class AgentHistory:
    def __init__(self, redis: Redis | RedisCluster, key_prefix: str = "hotline") -> None:
        self.redis = redis
        self.base = "{" + key_prefix + "}:"
        self.channel = channel_name(key_prefix)

    async def recent(self, agent_id: str, limit: int = 50) -> list[StateChange]:
        """The agent's last changes, newest first (at most HISTORY_LEN)."""
        limit = max(1, min(limit, HISTORY_LEN))
        raws = await self.redis.lrange(self.base + "hist:" + agent_id, 0, limit - 1)
        return [parse_change(r) for r in raws]

    @contextlib.asynccontextmanager
    async def subscribed(self) -> AsyncIterator[AsyncIterator[StateChange]]:
        """Subscribed on entry: the iterator yields every change published from
        then on, until the block ends (whoever enters it owns the subscription)."""
        if isinstance(self.redis, RedisCluster):
            raise NotImplementedError("pub/sub on a cluster client: subscribe on the node")
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(self.channel)
        try:
            yield _messages(pubsub)
        finally:
            await pubsub.unsubscribe(self.channel)
            await pubsub.aclose()  # type: ignore[no-untyped-call]


async def _messages(pubsub: PubSub) -> AsyncIterator[StateChange]:
    async for msg in pubsub.listen():
        if msg.get("type") != "message":
            continue
        try:
            yield parse_change(msg["data"])
        except ValueError:
            continue  # not ours: a channel is open to any publisher
