"""Waiting queues against a real Redis: FIFO, priority, transfers, the claim."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from ari_app.queue.waiting import WaitingQueues


@pytest.fixture
async def queues(redis_url: str) -> AsyncIterator[WaitingQueues]:
    r = Redis.from_url(redis_url)
    yield WaitingQueues(r, key_prefix=f"t-{uuid.uuid4().hex[:8]}")
    await r.aclose()


async def test_fifo(queues: WaitingQueues) -> None:
    for n in range(4):
        assert await queues.join("phcc", f"c{n}", "ar") == n + 1
        await asyncio.sleep(0.002)
    assert [c.call_id for c in await queues.waiting("phcc")] == ["c0", "c1", "c2", "c3"]
    assert await queues.position("phcc", "c2") == 3
    head = await queues.head("phcc")
    assert head is not None and head.call_id == "c0" and head.language == "ar"
    assert await queues.remove("phcc", "c0")
    assert await queues.position("phcc", "c2") == 2
    assert await queues.position("phcc", "c0") is None
    assert await queues.get("c0") is None


async def test_priority_goes_ahead_then_fifo_within_it(queues: WaitingQueues) -> None:
    await queues.join("moi", "old", "en", arrival=1000.0)
    await queues.join("moi", "vip1", "ur", priority=5, arrival=1002.0)
    await queues.join("moi", "new", "en", arrival=1001.0)
    await queues.join("moi", "vip0", "ar", priority=5, arrival=1001.5)
    assert [c.call_id for c in await queues.waiting("moi")] == ["vip0", "vip1", "old", "new"]
    assert await queues.language("vip1") == "ur"


async def test_transferred_caller_rejoins_ahead_of_new_callers(queues: WaitingQueues) -> None:
    await queues.join("phcc", "first", "ar", arrival=100.0)
    await queues.join("moi", "a", "en", arrival=150.0)
    await queues.join("moi", "b", "en", arrival=90.0)
    caller = await queues.get("first")
    assert caller is not None
    assert await queues.remove("phcc", "first", forget=False)
    pos = await queues.rejoin_transferred("moi", caller)
    assert pos == 1
    got = await queues.get("first")
    assert got is not None and got.transferred and got.entity == "moi" and got.arrival == 100.0
    assert [c.call_id for c in await queues.waiting("moi")] == ["first", "b", "a"]


async def test_join_elsewhere_moves_the_caller(queues: WaitingQueues) -> None:
    await queues.join("phcc", "c1", "ar")
    await queues.join("moi", "c1", "ar")
    assert await queues.length("phcc") == 0
    assert await queues.position("moi", "c1") == 1
    assert await queues.entities() == ["moi", "phcc"]


async def test_only_one_remover_wins(queues: WaitingQueues) -> None:
    await queues.join("phcc", "c1", "ar")
    wins = await asyncio.gather(*(queues.remove("phcc", "c1") for _ in range(10)))
    assert sum(wins) == 1
