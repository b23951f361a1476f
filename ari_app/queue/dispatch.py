"""Matching waiting callers with free agents, across every app instance.

The queue lives in Redis, so any instance may dispatch any entity. A round
reads every entity's waiting callers (one round trip), merges them into one
serving order (priority, then arrival: the queues' own score, the same formula
for every entity), works out each caller's routing steps at this moment, and
hands the list to one pool script. The script walks the callers in that order
and gives each the best free agent of its narrowest step that has one (the
longest idle, then the most proficient), claiming the caller by removing it
from its queue in the same script: only one remover can, so two instances
never offer one caller twice. So an agent who serves entities A and B is
offered the B caller who waited longest, not the first A caller (the fault
app_queue fixed with force_longest_waiting_caller). See docs/routing.md.
The offer goes to the call's own task: in process when this instance owns the
call, over Redis pub/sub otherwise. A caller at the head whose language has no
free agent does not block callers behind it who can be served.

It runs when woken (a caller joins, an agent frees up, on this or another
instance) and on a short tick, which also catches wrap-ups ending and routing
steps widening.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ari_app.agents.pool import AgentPool, Candidate, Offer
from ari_app.config.models import HotlineConfig
from ari_app.config.queue import QueueSettings
from ari_app.logs import get_logger
from ari_app.queue.routing import steps_for
from ari_app.queue.waiting import WaitingCaller, WaitingQueues

log = get_logger("dispatch")
OWNER_TTL = 6 * 3600


class OfferBox:
    """Offers waiting to be picked up by this instance's calls."""

    def __init__(self) -> None:
        self._futures: dict[str, asyncio.Future[Offer]] = {}

    def open(self, call_id: str) -> asyncio.Future[Offer]:
        fut: asyncio.Future[Offer] = asyncio.get_running_loop().create_future()
        self._futures[call_id] = fut
        return fut

    def close(self, call_id: str) -> Offer | None:
        """Stop waiting; returns an offer that arrived too late, so it can be handed back."""
        fut = self._futures.pop(call_id, None)
        if fut is not None and fut.done() and not fut.cancelled():
            return fut.result()
        return None

    def deliver(self, call_id: str, offer: Offer) -> bool:
        fut = self._futures.get(call_id)
        if fut is None or fut.done():
            return False
        fut.set_result(offer)
        return True


class Dispatcher:
    def __init__(self, cfg: HotlineConfig, settings: QueueSettings, redis: Redis,
                 pool: AgentPool, waiting: WaitingQueues, box: OfferBox, instance: str,
                 tick: float = 1.0) -> None:
        self.cfg = cfg
        self.settings = settings
        self.redis = redis
        self.pool = pool
        self.waiting = waiting
        self.box = box
        self.instance = instance
        self.tick = tick
        tag = "{" + cfg.redis.key_prefix + "}"
        self._owner_key = tag + ":owner:"
        self._wake_channel = tag + ":wake"
        self._offer_channel = tag + ":offers:"
        self._wake = asyncio.Event()
        # set once this instance has resumed the calls it drove before a restart:
        # until then its waiting callers have no one to take an offer
        self.recovered = asyncio.Event()
        self.offers = 0
        self.lost_races = 0
        self.lag: list[float] = []  # seconds from a wake to the offer, for the notes

    # -- ownership ---------------------------------------------------------------
    async def own(self, call_id: str) -> None:
        await self.redis.set(self._owner_key + call_id, self.instance, ex=OWNER_TTL)

    async def disown(self, call_id: str) -> None:
        with contextlib.suppress(RedisError):
            await self.redis.delete(self._owner_key + call_id)

    def wake(self) -> None:
        self._wake.set()

    async def wake_all(self) -> None:
        """Wake every instance's dispatcher (an agent freed up somewhere)."""
        self._wake.set()
        with contextlib.suppress(RedisError):
            await self.redis.publish(self._wake_channel, self.instance)

    # -- the loop ------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._listen(stop), name="dispatch-listen")
            while not stop.is_set() and not self.recovered.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.recovered.wait(), self.tick)
            pause = self.tick
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), pause)
                self._wake.clear()
                if stop.is_set():
                    break
                try:
                    await self.dispatch_all()
                    pause = await self._next_pause()
                except RedisError as e:
                    log.warning("dispatch.redis_error", error=str(e))
                    pause = self.tick
                    await asyncio.sleep(self.tick)
                except Exception:  # the dispatcher serves every call: keep it up
                    log.exception("dispatch.round_failed")
                    pause = self.tick
                    await asyncio.sleep(self.tick)

    async def _next_pause(self) -> float:
        """Sleep until the next wrap-up ends (it ends lazily, so nothing else wakes
        the dispatcher then), or the tick, whichever is sooner, while callers wait."""
        if not await self.waiting.entities():
            return self.tick
        nxt = await self.pool.next_wrapup_end()
        if nxt is None:
            return self.tick
        return min(self.tick, nxt + 0.005)

    async def _listen(self, stop: asyncio.Event) -> None:
        """Cross-instance wake-ups and offers for this instance's calls."""
        while not stop.is_set():
            try:
                async with self.redis.pubsub() as ps:
                    await ps.subscribe(self._wake_channel, self._offer_channel + self.instance)
                    while not stop.is_set():
                        msg = await ps.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if msg is not None:
                            await self._on_message_guarded(msg)
            except (RedisError, OSError) as e:
                log.warning("dispatch.pubsub_lost", error=str(e))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def _on_message_guarded(self, msg: dict[str, Any]) -> None:
        """One bad message (another instance's bug, a stray publish, a Redis error
        while handing an offer back) is that message's problem: log it, read the next."""
        try:
            await self._on_message(msg)
        except BadMessage as e:
            log.warning("dispatch.bad_message", error=str(e), data=_preview(msg.get("data")))
        except RedisError as e:
            log.warning("dispatch.message_redis_error", error=str(e))
        except Exception:  # never let one message stop the listener
            log.exception("dispatch.message_failed", data=_preview(msg.get("data")))

    async def _on_message(self, msg: dict[str, Any]) -> None:
        channel = msg["channel"].decode() if isinstance(msg["channel"], bytes) else msg["channel"]
        if channel == self._wake_channel:
            self._wake.set()
            return
        call_id, agent_id, step = parse_offer(msg.get("data"))
        agent = self.pool.agents.get(agent_id)
        if agent is None:
            log.warning("dispatch.unknown_agent", agent=agent_id, call=call_id)
            return
        offer = Offer(agent=agent, step=step)
        if not self.box.deliver(call_id, offer):
            await self._hand_back(call_id, offer)

    async def dispatch_all(self) -> None:
        """One round for every entity at once: callers in one serving order across
        entities, each offered the best free agent of its current routing step
        (one script reserves the agents and claims the callers). A caller whose
        routing cannot be worked out (an entity gone from the config) is logged
        and skipped; the others go on."""
        callers = await self.waiting.everyone(limit=50)
        if not callers:
            return
        now = time.time()
        batch: list[Candidate] = []
        by_call: dict[str, WaitingCaller] = {}
        for c in callers:
            try:
                steps = steps_for(self.cfg, c.entity, c.language, max(0.0, now - c.arrival),
                                  self.settings)
            except Exception:  # one entity's bad data must not starve the rest
                log.exception("dispatch.entity_failed", entity=c.entity, call=c.call_id)
                continue
            batch.append(Candidate(c.call_id, c.entity, tuple(steps)))
            by_call[c.call_id] = c
        result = await self.pool.dispatch(batch)
        self.lost_races += result.gone
        for call_id in result.stranded:
            await self._rejoin(by_call[call_id])
        for call_id, offer in result.offers:
            c = by_call[call_id]
            try:
                await self._deliver(call_id, c.entity, offer)
            except RedisError as e:
                # this caller goes back in line with its agent freed; the others go on
                log.warning("dispatch.deliver_redis_error", call=call_id, error=str(e))
                await self._undo(c, offer)

    async def _rejoin(self, c: WaitingCaller) -> None:
        with contextlib.suppress(RedisError):
            await self.waiting.join(c.entity, c.call_id, c.language, priority=c.priority,
                                    arrival=c.arrival, transferred=c.transferred)

    async def _undo(self, c: WaitingCaller, offer: Offer) -> None:
        """The offer could not be handed over: the agent goes back to available and
        the caller back into line at their original place, so neither is stranded."""
        with contextlib.suppress(RedisError):
            await self.pool.unoffer(offer.agent.id, c.call_id)
        await self._rejoin(c)

    async def _deliver(self, call_id: str, entity: str, offer: Offer) -> None:
        self.offers += 1
        if self.box.deliver(call_id, offer):
            return
        owner = await self.redis.get(self._owner_key + call_id)
        owner_s = owner.decode() if isinstance(owner, bytes) else owner
        if owner_s and owner_s != self.instance:
            payload = json.dumps({"call": call_id, "agent": offer.agent.id, "step": offer.step})
            if await self.redis.publish(self._offer_channel + owner_s, payload):
                return
        await self._hand_back(call_id, offer)

    async def _hand_back(self, call_id: str, offer: Offer) -> None:
        """Nobody is there to take the offer: the call ended meanwhile, or it is
        between a restart and its recovery, whose waiting state joins the queue
        again with its original arrival (so it keeps its place)."""
        await self.pool.unoffer(offer.agent.id, call_id)
        log.info("dispatch.offer_orphaned", call=call_id, agent=offer.agent.id)
        self._wake.set()


class BadMessage(ValueError):
    """An offer message on pub/sub that is not what `_deliver` publishes."""


def parse_offer(data: Any) -> tuple[str, str, int]:
    """(call, agent, step) from an offer message, or BadMessage naming what is wrong."""
    try:
        obj = json.loads(data)
    except (TypeError, ValueError) as e:
        raise BadMessage(f"offer is not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise BadMessage(f"offer is a JSON {type(obj).__name__}, not an object")
    call, agent, step = obj.get("call"), obj.get("agent"), obj.get("step")
    if not isinstance(call, str) or not call:
        raise BadMessage("offer has no `call` string")
    if not isinstance(agent, str) or not agent:
        raise BadMessage("offer has no `agent` string")
    if isinstance(step, bool) or not isinstance(step, int | str):
        raise BadMessage(f"offer `step` is not an integer: {step!r}")
    try:
        return call, agent, int(step)
    except ValueError:
        raise BadMessage(f"offer `step` is not an integer: {step!r}") from None


def _preview(data: Any) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else repr(data)
    return text[:120]
