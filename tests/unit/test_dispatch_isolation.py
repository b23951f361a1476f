"""The dispatcher against a real Redis: one bad message or one entity's failure
stops neither the dispatcher nor the dispatching of the other entities."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ari_app.agents.pool import AgentPool
from ari_app.config.models import HotlineConfig
from ari_app.config.queue import QueueSettings
from ari_app.queue.dispatch import BadMessage, Dispatcher, OfferBox, parse_offer
from ari_app.queue.waiting import WaitingQueues

LANGS = [("ar", "1", "ar"), ("en", "2", "en")]


def cfg() -> HotlineConfig:
    names = {c: c for c, _, _ in LANGS}
    return HotlineConfig.model_validate({
        "languages": [
            {"code": c, "name": c, "english_name": c, "digit": d, "voice": v} for c, d, v in LANGS
        ],
        "default_language": "ar",
        "menu": {"id": "main", "names": names, "options": [
            {"digit": "1", "entity": {"id": "hmc", "names": names}},
            {"digit": "2", "entity": {"id": "phcc", "names": names}},
        ]},
        "other_departments": {"id": "other", "names": names},
        "numbers": {"109": {"journey": "full"}},
        "sites": [{"id": "hq", "name": "HQ"}],
        "agents": [
            {"id": "a1", "name": "A1", "site": "hq", "endpoint": "ep-a1", "languages": ["en"],
             "skills": ["phcc"]},
            {"id": "a2", "name": "A2", "site": "hq", "endpoint": "ep-a2", "languages": ["en"],
             "skills": ["hmc"]},
        ],
    })


@dataclass
class Rig:
    redis: Redis
    prefix: str
    pool: AgentPool
    waiting: WaitingQueues
    box: OfferBox
    dispatcher: Dispatcher

    @property
    def tag(self) -> str:
        return "{" + self.prefix + "}:"


@pytest.fixture
async def rig(redis_url: str) -> AsyncIterator[Rig]:
    c = cfg()
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    c = c.model_copy(update={"redis": c.redis.model_copy(update={"key_prefix": prefix})})
    r = Redis.from_url(redis_url)
    pool = AgentPool(r, c.agents, key_prefix=prefix)
    await pool.sync()
    waiting = WaitingQueues(r, key_prefix=prefix)
    box = OfferBox()
    d = Dispatcher(c, QueueSettings(), r, pool, waiting, box, instance="i1", tick=0.2)
    d.recovered.set()  # no calls to resume here
    yield Rig(r, prefix, pool, waiting, box, d)
    await r.aclose()


@contextlib.asynccontextmanager
async def running(d: Dispatcher) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def _subscribed(rig: Rig, channel: str) -> None:
    """Until the dispatcher's listener is subscribed (a publish before that is lost)."""
    for _ in range(100):
        subs = await rig.redis.pubsub_numsub(channel)
        if subs and subs[0][1] >= 1:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"dispatcher never subscribed to {channel}")


async def test_malformed_offer_messages_are_skipped_and_the_next_one_is_delivered(
        rig: Rig) -> None:
    channel = rig.tag + "offers:i1"
    garbage = [b"not json", b"[1, 2]", b'"a string"', b'{"call": "c9"}',
               b'{"call": "c9", "agent": "a1", "step": "x"}', b'{"call": 5, "agent": "a1"}',
               b"\xff\xfe", b'{"call": "c9", "agent": "nobody", "step": 0}']
    async with running(rig.dispatcher) as task:
        await _subscribed(rig, channel)
        fut = rig.box.open("c1")
        for g in garbage:
            await rig.redis.publish(channel, g)
        await rig.redis.publish(channel, b'{"call": "c1", "agent": "a1", "step": 1}')
        offer = await asyncio.wait_for(fut, 5)
        assert offer.agent.id == "a1" and offer.step == 1
        assert not task.done(), "the dispatcher stopped on a bad message"


async def test_a_redis_error_while_handling_a_message_does_not_stop_the_listener(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    channel = rig.tag + "offers:i1"
    calls: list[str] = []

    async def failing_hand_back(call_id: str, offer: object) -> None:
        calls.append(call_id)
        raise RedisError("connection reset while handing back")

    monkeypatch.setattr(rig.dispatcher, "_hand_back", failing_hand_back)
    async with running(rig.dispatcher) as task:
        await _subscribed(rig, channel)
        # nobody waits for c0 here, so the dispatcher hands it back, and that fails
        await rig.redis.publish(channel, b'{"call": "c0", "agent": "a1", "step": 0}')
        fut = rig.box.open("c1")
        await rig.redis.publish(channel, b'{"call": "c1", "agent": "a1", "step": 0}')
        assert (await asyncio.wait_for(fut, 5)).agent.id == "a1"
        assert calls == ["c0"] and not task.done()


async def test_one_entitys_redis_error_does_not_stop_dispatching_the_others(rig: Rig) -> None:
    await rig.pool.login("a1", reachable=True)
    await rig.waiting.join("phcc", "c1", "en")
    # "hmc" sorts before "phcc": its queue key is broken (wrong type), so ZRANGE fails
    await rig.redis.sadd(rig.tag + "waitq", "hmc")
    await rig.redis.set(rig.tag + "wait:hmc", "not a sorted set")
    fut = rig.box.open("c1")
    await rig.dispatcher.dispatch_all()
    assert fut.done() and fut.result().agent.id == "a1"


async def test_one_entitys_bad_entry_does_not_stop_dispatching_the_others(rig: Rig) -> None:
    await rig.pool.login("a1", reachable=True)
    await rig.waiting.join("phcc", "c1", "en")
    await rig.waiting.join("hmc", "bad", "en")
    await rig.redis.hdel(rig.tag + "wcall:bad", "lang")  # a half-written caller entry
    fut = rig.box.open("c1")
    async with running(rig.dispatcher) as task:
        rig.dispatcher.wake()
        assert (await asyncio.wait_for(fut, 5)).agent.id == "a1"
        await asyncio.sleep(0.5)  # two more rounds over the bad entry
        assert not task.done(), "the dispatcher stopped on one entity's bad entry"


async def test_an_offer_that_cannot_be_handed_over_frees_the_agent_and_requeues_the_caller(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    await rig.pool.login("a1", reachable=True)
    await rig.waiting.join("phcc", "c1", "en", arrival=1000.0)

    async def failing_deliver(call_id: str, entity: str, offer: object) -> None:
        raise RedisError("connection reset while delivering")

    monkeypatch.setattr(rig.dispatcher, "_deliver", failing_deliver)
    await rig.dispatcher.dispatch_all()  # logged, not raised
    st = await rig.pool.status("a1")
    assert st is not None and str(st.state) == "available"
    back = await rig.waiting.get("c1")
    assert await rig.waiting.position("phcc", "c1") == 1
    assert back is not None and back.arrival == 1000.0


@pytest.mark.parametrize("data", [b"{", b"null", b"[]", b'{"agent": "a1", "step": 0}',
                                  b'{"call": "c", "step": 0}', b'{"call": "c", "agent": "a"}',
                                  b'{"call": "c", "agent": "a", "step": true}', None])
def test_parse_offer_names_the_problem(data: bytes | None) -> None:
    with pytest.raises(BadMessage) as e:
        parse_offer(data)
    assert "offer" in str(e.value)


def test_parse_offer_accepts_what_deliver_publishes() -> None:
    assert parse_offer(b'{"call": "c1", "agent": "a1", "step": 2}') == ("c1", "a1", 2)
