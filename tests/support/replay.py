"""One transcript replayed through the interaction model, for the state tests.

Everything is the app's own code but Asterisk: the states wired exactly as
`ari_app.wiring.wire_states` wires them, the interaction runner and event router,
the queue service with its dispatcher running, the agent pool and waiting
queues in a real Redis (each replay under its own key prefix), and a fake ARI
(tests/support/fake_ari.py) feeding the captured traffic, on a virtual clock
(tests/support/virtual_clock.py).

    call = replay("ring_no_answer", cfg, prompts, redis_url)
    call.fake.assert_done()          # every operation the rig saw, in order
    call.record, call.kinds          # the folded record, the events emitted
    call.agents["a100"].state        # where each agent ended in Redis
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from ari_app.agents.pool import AgentPool, AgentStatus
from ari_app.agents.roster import Roster
from ari_app.config.models import HotlineConfig
from ari_app.interactions.machine import State
from ari_app.interactions.router import EventRouter
from ari_app.interactions.runner import InteractionRunner
from ari_app.interactions.store import CallStore
from ari_app.prompts.catalog import PromptCatalog
from ari_app.queue.dispatch import Dispatcher, OfferBox
from ari_app.queue.service import QueueService
from ari_app.queue.waiting import WaitingQueues
from ari_app.records.events import RecordEvent, fold
from ari_app.records.model import CallRecord
from ari_app.wiring import wire_states
from tests.support import virtual_clock
from tests.support.fake_ari import FakeAri

TRANSCRIPTS = Path(__file__).resolve().parent.parent / "unit" / "transcripts"


@dataclass
class Replayed:
    fake: FakeAri
    events: list[RecordEvent]
    record: CallRecord
    agents: dict[str, AgentStatus]
    waiting: int  # callers left in any queue
    seconds: float  # real time the replay took

    @property
    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    @property
    def ops(self) -> list[str]:
        return [name for name, _ in self.fake.sent]


class _Events:
    """The runner's event sink: what the app would put on the Redis stream."""

    def __init__(self) -> None:
        self.events: list[RecordEvent] = []

    async def publish_events(self, events: list[RecordEvent]) -> object:
        self.events.extend(events)
        return None


def _login(redis_url: str, cfg: HotlineConfig, prefix: str, captured: dict[str, Any]) -> None:
    """The scenario's agents as on the rig: logged in in the capture's order with
    distinct idle times (the longest idle is offered first), some paused."""
    async def go() -> None:
        redis = aioredis.from_url(redis_url)
        pool = AgentPool(redis, cfg.agents, key_prefix=prefix)
        for agent in captured.get("agents") or {}:
            await pool.login(agent)
            await asyncio.sleep(0.005)  # Redis TIME has millisecond steps
        for agent in captured.get("paused") or []:
            await pool.pause(agent, "break")
        await redis.aclose()
    asyncio.run(go())


def wire(svc: QueueService, cfg: HotlineConfig) -> State:
    """The first state of a call, with every state's deps wired by the app itself."""
    _registry, first = wire_states(cfg, svc, None)
    return first()


def replay(name: str, cfg: HotlineConfig, prompts: PromptCatalog, redis_url: str,
           transcript: dict[str, Any] | None = None,
           agents: tuple[str, ...] = ()) -> Replayed:
    """Run one transcript's call from its StasisStart to its last event.

    `agents`: also report these agents' states (the scenario's own are always)."""
    clock = virtual_clock.VirtualClock()
    fake = FakeAri(transcript or TRANSCRIPTS / f"{name}.json")
    captured = fake.transcript.get("captured") or {}
    prefix = f"t{uuid.uuid4().hex[:8]}"  # each replay its own keys in the shared Redis
    _login(redis_url, cfg, prefix, captured)
    watched = tuple(dict.fromkeys([*(captured.get("agents") or {}), *agents]))

    async def main() -> Replayed:
        redis = virtual_clock.tracked_redis(redis_url, clock)
        pool = AgentPool(redis, cfg.agents, key_prefix=prefix)
        waiting = WaitingQueues(redis, key_prefix=prefix)
        box = OfferBox()
        dispatcher = Dispatcher(cfg, cfg.queue, redis, pool, waiting, box, instance="t")
        dispatcher.recovered.set()  # no restart to recover from
        svc = QueueService(cfg, cfg.queue, pool, waiting, Roster.from_config(cfg), box,
                           dispatcher, app_name=cfg.ari.app)
        sink = _Events()
        tasks: list[asyncio.Task[None]] = []

        def new_channel(ev: dict[str, Any]) -> None:
            if (ev.get("args") or [""])[0] == "agent":  # as Hotline._on_new_channel does
                tasks.append(asyncio.create_task(fake.hangup(ev["channel"]["id"])))
                return
            interaction = runner.new_interaction(ev)
            tasks.append(asyncio.create_task(runner.run(interaction)))

        async def resume(step: dict[str, Any]) -> None:
            # what the capture did during the call, at the point it did it
            await pool.resume(step["agent"])
            dispatcher.wake()

        router = EventRouter(new_channel)
        runner = InteractionRunner(cfg, prompts, CallStore(redis, prefix, "salt"), sink,
                                   router, lambda: fake, lambda: wire(svc, cfg))
        fake.on_action("resume", resume)
        stop = asyncio.Event()
        dispatching = asyncio.create_task(dispatcher.run(stop))
        fake.start(router.dispatch)
        while tasks:
            await tasks.pop(0)
        stop.set()
        await dispatching
        states = {}
        for agent in watched:
            st = await pool.status(agent)
            assert st is not None, f"{agent} unknown to the pool"
            states[agent] = st
        left = sum([await waiting.length(e.id) for e in cfg.entities])
        await redis.aclose()
        rec = fold(sink.events)
        assert rec is not None, f"the events do not describe a call: {sink.events}"
        return Replayed(fake, sink.events, rec, states, left, 0.0)

    t0 = time.monotonic()
    try:
        out = virtual_clock.run(main(), clock)
    except virtual_clock.VirtualTimeout as e:
        raise virtual_clock.VirtualTimeout(f"{e}\n{fake.where()}") from None
    out.seconds = time.monotonic() - t0
    return out


FIELDS = ("outcome", "hangup_by", "language", "language_source", "entity", "entity_path",
          "menu_retries", "digits", "prompts", "agent", "site", "failure")


def comparable(rec: dict[str, Any]) -> dict[str, Any]:
    """What a replay must reproduce of the record the rig wrote (not its times)."""
    out = {k: rec.get(k) for k in FIELDS}
    out["offers"] = [(o["agent"], o["result"]) for o in rec.get("offers") or []]
    out["queue"] = [(q["entity"], q["result"]) for q in rec.get("queue") or []]
    return out
