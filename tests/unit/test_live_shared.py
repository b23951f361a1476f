"""Shared live figures (issue 13, part 3) on a real Redis: two instances' counters
and estimators agree, and a restart (new objects) keeps them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from ari_app.live.counters import CallCounters
from ari_app.live.today import KEEP_SECONDS, DayTotals
from ari_app.queue.estimate import SharedWaitEstimator, WaitEstimator
from tests.unit.test_metrics_counters import parse_prometheus, value


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def doha(y: int, mo: int, d: int, h: int, mi: int = 0) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo("Asia/Qatar")).timestamp()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    r = Redis.from_url(redis_url)
    yield r
    await r.aclose()


def instance(r: Redis, prefix: str, clock: Clock) -> CallCounters:
    return CallCounters(clock=clock, sla_seconds=20,
                        today=DayTotals(r, key_prefix=prefix, tz="Asia/Qatar", clock=clock))


async def test_two_instances_agree_and_a_restart_keeps_today(redis: Redis) -> None:
    prefix = f"s-{uuid.uuid4().hex[:8]}"
    clock = Clock(doha(2026, 12, 2, 23, 50))
    one, two = instance(redis, prefix, clock), instance(redis, prefix, clock)
    one.queued_call("phcc")
    one.answered(10)
    two.queued_call("moi")
    two.queued_call("moi")
    two.answered(30)
    two.abandoned_in_queue(40)
    two.abandoned_in_menu()
    await one.sync()
    await two.sync()
    await one.sync()  # one reads what two sent after one's first sync
    want = {"date": "2026-12-02", "offered": 3, "answered": 2, "abandoned_in_queue": 1,
            "abandoned_in_menu": 1, "asa_seconds": 20.0, "service_level": round(1 / 3, 3),
            "abandon_rate": round(1 / 3, 3), "sla_seconds": 20}
    assert one.today() == two.today() == want
    # the /metrics figures of both instances say the same
    for c in (one, two):
        fams = parse_prometheus(c.prometheus())
        assert value(fams, "hotline_today_calls", figure="offered") == 3
        assert value(fams, "hotline_today_asa_seconds") == 20.0
    # restart: new objects on the same Redis know the day so far
    again = instance(redis, prefix, clock)
    await again.sync()
    assert again.today() == want
    # one hash per local day, under the hash tag, with an expiry
    key = "{" + prefix + "}:today:2026-12-02"
    assert 0 < await redis.ttl(key) <= KEEP_SECONDS
    # local midnight (Doha) starts a new day for everyone
    clock.t = doha(2026, 12, 3, 0, 1)
    one.queued_call("phcc")
    await one.sync()
    await two.sync()
    assert two.today()["date"] == "2026-12-03" and two.today()["offered"] == 1
    assert int((await redis.hgetall("{" + prefix + "}:today:2026-12-03"))[b"offered"]) == 1


async def test_counts_made_while_redis_is_away_are_sent_later(redis: Redis,
                                                              redis_url: str) -> None:
    prefix = f"s-{uuid.uuid4().hex[:8]}"
    clock = Clock(doha(2026, 12, 2, 10))
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    away = CallCounters(clock=clock, today=DayTotals(dead, key_prefix=prefix, clock=clock))
    away.queued_call("phcc")
    away.answered(5)
    await away.sync()  # fails quietly, keeps the counts
    assert away.day_totals.sync_errors == 1
    assert away.today()["offered"] == 1  # this instance still shows its own
    await dead.aclose()
    away.day_totals.redis = redis  # Redis is back
    await away.sync()
    reader = instance(redis, prefix, clock)
    await reader.sync()
    assert reader.today()["offered"] == 1 and reader.today()["answered"] == 1
    await away.sync()  # sent once only
    await reader.sync()
    assert reader.today()["offered"] == 1


async def test_two_instances_estimate_alike_and_a_restart_keeps_the_series(
        redis: Redis) -> None:
    prefix = f"s-{uuid.uuid4().hex[:8]}"
    one = SharedWaitEstimator(redis, key_prefix=prefix, min_samples=3)
    two = SharedWaitEstimator(redis, key_prefix=prefix, min_samples=3)
    for s in (100, 200):
        one.record_handle_time("phcc", s)
    two.record_handle_time("phcc", 300)
    two.record_answer_wait("phcc", 50)
    # alone, neither has enough samples for an estimate
    assert one.estimate("phcc", 4, 2) is None and two.estimate("phcc", 4, 2) is None
    await one.sync()
    await two.sync()
    await one.sync()
    assert one.handle_time("phcc") is not None
    assert one.handle_time("phcc") == pytest.approx(two.handle_time("phcc") or 0)
    assert one.estimate("phcc", 4, 2) == two.estimate("phcc", 4, 2) is not None
    # the same EWMA as one estimator fed the same samples in the same order
    local = WaitEstimator(min_samples=3)
    for s in (100, 200, 300):
        local.record_handle_time("phcc", s)
    assert one.handle_time("phcc") == pytest.approx(local.handle_time("phcc") or 0)
    restarted = SharedWaitEstimator(redis, key_prefix=prefix, min_samples=3)
    await restarted.sync()
    assert restarted.estimate("phcc", 4, 2) == one.estimate("phcc", 4, 2)
    assert await redis.ttl("{" + prefix + "}:estimate") > 0
