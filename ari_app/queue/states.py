"""The queue's waiting state: music, position and wait announcements, the
fallback when nobody can serve, and the hand-over to ringing an agent.

Speed of answer runs from joining the queue to the agent's answer. A caller
whose agent does not answer keeps their place at the head of the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from redis.exceptions import RedisError

from ari_app.agents.pool import Offer
from ari_app.ari.client import AriError
from ari_app.config.models import Agent
from ari_app.config.queue import ToEntity
from ari_app.interactions.context import CallContext
from ari_app.interactions.machine import Finish, State
from ari_app.interactions.model import Role
from ari_app.interactions.session import AriUnavailable
from ari_app.logs import get_logger
from ari_app.queue.deps import QueueDeps, WaitCue
from ari_app.queue.estimate import ABOUT_MINUTES, LESS_THAN_MINUTE, spoken_wait
from ari_app.records.model import Offer as OfferRecord
from ari_app.records.model import Outcome, QueueStint, seconds_between, utcnow

log = get_logger("queue")

# Asterisk hang-up causes of an agent leg that never answered
CAUSE_RESULT = {17: "busy", 21: "rejected", 19: "no_answer", 18: "no_answer", 20: "unreachable"}


def dial_string(own_site: str | None, agent: Agent) -> str:
    """An agent of this server directly; another site's through that site's trunk,
    whose server then rings its own agent (its from-sites context)."""
    if own_site is None or agent.site == own_site:
        return f"PJSIP/{agent.endpoint}"
    return f"PJSIP/{agent.endpoint}@site-{agent.site}"

@dataclass
class _Outage:
    since: float | None = None  # monotonic start of the Redis outage being ridden out


@dataclass
class Queued:
    entity: str
    arrival: float | None = None  # epoch seconds on first joining; kept through re-queues
    priority: int | None = None
    transferred: bool = False
    callback_offered: bool = False  # offered once per call (docs/callback.md)
    name: ClassVar[str] = "queued"
    phase: ClassVar[str] = "queue"
    deps: QueueDeps = field(repr=False, compare=False, kw_only=True)

    async def run(self, ctx: CallContext) -> State | None:
        """Waiting rides out a Redis outage (a restart, a Sentinel failover): music
        stays on and the wait retries with backoff, then joins again with the same
        arrival, which is the same place. Only an outage longer than
        `redis.max_outage` ends in the fallback (docs/operations.md, "Redis outages")."""
        first = self.arrival is None
        if first:
            await self._enter(ctx)
        check = first
        outage = _Outage()
        pause = 0.25
        svc = self.deps.svc
        # open for the whole wait, retries included: Redis still holds this caller's
        # place between retries, and the dispatcher may claim it then
        fut = svc.box.open(ctx.session.call_id)
        nxt: State | None = None
        try:
            while True:
                try:
                    if check and not await svc.anyone_can_serve(self.entity,
                                                                ctx.session.language):
                        if self.deps.before_queue is not None:
                            await self.deps.before_queue(ctx, self.entity, None)
                        nxt = self._fallback(ctx, Outcome.NO_AGENT_FALLBACK, "no-agents")
                        return nxt
                    check = False
                    nxt = await self._wait(ctx, first, outage, fut)
                    return nxt
                except RedisError as e:
                    if outage.since is None:
                        outage.since = time.monotonic()
                        pause = 0.25
                        log.warning("queue.redis_outage_waiting", error=str(e))
                        with contextlib.suppress(AriError, AriUnavailable):
                            await ctx.session.music(True)
                    if time.monotonic() - outage.since >= svc.cfg.redis.max_outage:
                        nxt = await self._redis_down(ctx, e)
                        return nxt
                # an offer ends the pause early; a hang-up still ends the wait
                await ctx.session.wait_for(fut, pause)
                pause = min(pause * 2, 2.0)
        finally:
            late = svc.box.close(ctx.session.call_id)
            if late is not None and not isinstance(nxt, Ringing):  # not taken: hand it back
                with contextlib.suppress(RedisError):
                    await svc.pool.unoffer(late.agent.id, ctx.session.call_id)
                svc.dispatcher.wake()

    async def _redis_down(self, ctx: CallContext, e: RedisError) -> State:
        # no shared state, no queue: the degraded mode (docs/operations.md)
        log.warning("queue.redis_down", error=str(e))
        with contextlib.suppress(AriError, AriUnavailable):
            await ctx.session.music(False)
        if ctx.record.queue and ctx.record.queue[-1].left_at is None:
            ctx.record.queue[-1].left_at = utcnow()
            ctx.record.queue[-1].result = "fallback"
        ctx.record.failure = "queue unavailable: Redis unreachable"
        return Finish(Outcome.NO_AGENT_FALLBACK.value, prompts=["no-agents", "goodbye"])

    async def _enter(self, ctx: CallContext) -> None:
        rec = ctx.record
        self.arrival = time.time()
        rec.queue_joined_at = rec.queue_joined_at or utcnow()
        rec.queue.append(QueueStint(entity=self.entity, joined_at=utcnow()))
        if self.deps.counters is not None and not self.transferred:
            self.deps.counters.queued_call(self.entity)
        ctx.emit("transferred" if self.transferred else "queued")
        # a restarted app must see the arrival time, to keep this caller's place
        await ctx.checkpoint(self)

    async def _wait(self, ctx: CallContext, first: bool, outage: _Outage,
                    fut: asyncio.Future[Offer]) -> State | None:
        svc, s, rec = self.deps.svc, ctx.session, ctx.record
        settings = svc.settings
        assert self.arrival is not None
        arrival = self.arrival
        priority = (settings.priority_of(self.entity, caller_priority(s.app_args))
                    if self.priority is None else self.priority)
        offer: Offer | None = fut.result() if fut.done() else None  # claimed meanwhile
        riding = False  # a Redis error: the caller keeps waiting, their stint stays open
        try:
            if offer is not None:
                return Ringing(entity=self.entity, agent=offer.agent.id, step=offer.step,
                               arrival=arrival, priority=priority, deps=self.deps)
            await svc.dispatcher.own(s.call_id)
            position = await svc.waiting.join(self.entity, s.call_id, s.language,
                                              priority=priority, arrival=self.arrival,
                                              transferred=self.transferred)
            svc.dispatcher.wake()
            if outage.since is not None:
                log.info("queue.redis_back", position=position,
                         outage=round(time.monotonic() - outage.since, 1))
                outage.since = None
            else:
                if first and self.deps.before_queue is not None:
                    await self.deps.before_queue(ctx, self.entity, fut)  # keeps their place
                await s.music(True)
            deadline = arrival + settings.max_wait_for(self.entity)
            next_announce = time.time() + (settings.announce_first_after if first else
                                           settings.announce_interval)
            previous: float | None = None
            cb = self.deps.callback
            offer_at = cb.offer_at(arrival) if cb is not None else None
            while True:
                now = time.time()
                wait = min(next_announce, deadline, offer_at or deadline) - now
                offer = await s.wait_for(fut, max(wait, 0.0))
                if offer is not None:
                    break
                if time.time() >= deadline:
                    await svc.waiting.remove(self.entity, s.call_id)
                    await s.music(False)
                    return self._fallback(ctx, Outcome.MAX_WAIT_FALLBACK, "max-wait")
                if time.time() >= next_announce:
                    position = await svc.waiting.position(self.entity, s.call_id) or position
                    previous = await self._announce(ctx, position, previous, fut)
                    next_announce = time.time() + settings.announce_interval
                if cb is not None and not self.callback_offered and not fut.done() and (
                        time.time() >= (offer_at or deadline) or cb.worth_offering(previous)):
                    self.callback_offered = True
                    await ctx.checkpoint(self)  # offered once, also across a restart
                    booked = await cb.offer(ctx, WaitCue(self.entity, arrival, priority,
                                                         previous), fut)
                    if booked is not None:
                        return booked
                    offer_at = None
                if fut.done():
                    offer = fut.result()
                    break
        except RedisError:
            riding = True
            raise
        finally:
            if offer is None and not riding and rec.queue and rec.queue[-1].left_at is None:
                rec.queue[-1].left_at = utcnow()
                rec.queue[-1].result = "abandoned" if s.gone else None
            if offer is None and not riding:
                with contextlib.suppress(Exception):
                    await svc.waiting.remove(self.entity, s.call_id)
        assert offer is not None  # the loop above only leaves with an offer or a return
        return Ringing(entity=self.entity, agent=offer.agent.id, step=offer.step,
                       arrival=arrival, priority=priority, deps=self.deps)

    async def _announce(self, ctx: CallContext, position: int, previous: float | None,
                        offer: asyncio.Future[Offer]) -> float | None:
        svc, s = self.deps.svc, ctx.session
        working, free = await svc.serving(self.entity, (s.language,))
        est = svc.estimator.estimate(self.entity, position, working, free, previous)
        media = ctx.media("queue-position", n=min(position, 999))
        spoken = spoken_wait(est)
        if spoken is not None and spoken[0] == LESS_THAN_MINUTE:
            media += ctx.media("wait-less-than-minute")
        elif spoken is not None and spoken[0] == ABOUT_MINUTES and spoken[1] is not None:
            media += ctx.media("wait-about", n=spoken[1])
        await s.music(False)
        # an agent who frees up mid-announcement must not wait for it to end
        await s.play(media, interruptible=False, stop_on=offer)
        await s.music(True)  # music again, also while an agent rings
        return est

    def _fallback(self, ctx: CallContext, outcome: Outcome, prompt: str) -> State:
        svc = self.deps.svc
        rule = svc.settings.fallback_for(self.entity)
        if ctx.record.queue:
            ctx.record.queue[-1].left_at = utcnow()
            ctx.record.queue[-1].result = "fallback"
        if isinstance(rule, ToEntity) and rule.entity != self.entity and \
                len(ctx.record.queue) < 3:
            ctx.record.entity_path = [*ctx.record.entity_path, rule.entity]
            return Queued(entity=rule.entity, deps=self.deps)
        message = getattr(rule, "prompt", prompt)
        known = ctx.prompts.names(ctx.language)
        names = [n for n in dict.fromkeys((prompt, message)) if n in known]
        return Finish(outcome.value, prompts=[*names, "goodbye"])



    async def abandon(self, ctx: CallContext, channels: Mapping[str, Any]) -> None:
        """The caller left while the app was away: give up their place."""
        with contextlib.suppress(RedisError):
            await self.deps.svc.waiting.remove(self.entity, ctx.interaction.id)
        await self.deps.svc.dispatcher.wake_all()


def caller_priority(app_args: Sequence[str]) -> int:
    """The caller's own priority, which the dialplan hands to Stasis as its third
    argument from the FastAGI look-up; 0 when absent or not a number 1-99."""
    raw = app_args[2] if len(app_args) > 2 else ""
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= 99 else 0


@dataclass
class Ringing:
    entity: str
    agent: str
    step: int
    arrival: float
    priority: int
    name: ClassVar[str] = "ringing"
    phase: ClassVar[str] = "queue"
    deps: QueueDeps = field(repr=False, compare=False, kw_only=True)

    async def run(self, ctx: CallContext) -> State | None:
        svc, s, rec = self.deps.svc, ctx.session, ctx.record
        agent = svc.pool.agents[self.agent]
        leg = ctx.interaction.new_id("a")
        offer_rec = OfferRecord(agent=agent.id, site=agent.site, at=utcnow(), result="ringing")
        rec.offers.append(offer_rec)
        t0 = time.monotonic()
        ctx.interaction.add_leg(Role.AGENT, leg, agent=agent.id)
        await ctx.checkpoint(self)  # a restarted app must know which leg to hang up
        if self.deps.on_offer is not None:
            await self.deps.on_offer(ctx, agent.id, self.entity)
        bridged = on_call = reported = False
        try:
            await s.ari.originate(endpoint=dial_string(ctx.cfg.site, agent), channel_id=leg,
                                  app=svc.app_name, app_args=f"agent,{s.call_id}",
                                  ring_seconds=int(svc.settings.ring_timeout),
                                  caller_id=f'"{rec.caller}" <{rec.caller}>')
            result = await self._await_answer(ctx, leg, svc.settings.ring_timeout + 5)
            offer_rec.ring_seconds = round(time.monotonic() - t0, 3)
            offer_rec.result = result
            ctx.emit("offered")
            reported = True
            if result == "answered":
                on_call = await svc.pool.answered(agent.id, s.call_id)
                if not on_call:
                    offer_rec.result = "failed"  # the reservation lapsed meanwhile
                else:
                    nxt = await self._bridge(ctx, agent.id, leg)
                    bridged = True
                    return nxt
        except AriError as e:
            # after an answer, a failed bridge means the agent's leg is already gone:
            # the agent hung up, which is no missed call
            offer_rec.result = "agent_gone" if on_call else "failed"
            log.warning("queue.offer_failed", agent=agent.id, error=str(e), answered=on_call)
        finally:
            if not bridged:
                ctx.interaction.drop_leg(Role.AGENT)
                await ctx.hang_up(leg)
                if on_call:
                    await svc.pool.release(agent.id, 0, s.call_id)
                elif offer_rec.result == "ringing":  # the caller left while it rang
                    offer_rec.result = "caller_gone"
                    await svc.pool.unoffer(agent.id, s.call_id)
                else:
                    await svc.pool.missed(agent.id, s.call_id)
                await svc.dispatcher.wake_all()
            if not reported:  # the caller left while it rang; later changes go with
                ctx.emit("offered")  # the next event
        log.info("queue.agent_missed", agent=agent.id, result=offer_rec.result)
        # the caller keeps the head of the queue: same arrival, same priority
        return Queued(entity=self.entity, arrival=self.arrival, priority=self.priority,
                      deps=self.deps)

    async def _await_answer(self, ctx: CallContext, leg: str, limit: float) -> str:
        deadline = time.monotonic() + limit
        while True:
            ev = await ctx.session.event(deadline - time.monotonic())
            if ev is None:
                return "no_answer"
            if (ev.get("channel") or {}).get("id") != leg:
                continue
            kind = ev.get("type")
            if kind == "StasisStart":
                return "answered"
            if kind in ("ChannelDestroyed", "ChannelHangupRequest"):
                return CAUSE_RESULT.get(int(ev.get("cause") or 0), "no_answer")

    async def _bridge(self, ctx: CallContext, agent_id: str, leg: str) -> State:
        svc, s, rec = self.deps.svc, ctx.session, ctx.record
        bridge = ctx.interaction.new_id("br")
        # the agent's phone may transfer (REFER): the app, not Asterisk, decides where
        try:
            await s.ari.set_var(leg, "PJSIP_TRANSFER_HANDLING()", "ari-only")
        except AriError as e:  # transfers from this phone will be refused; the call goes on
            log.warning("queue.transfer_handling_not_set", error=str(e)[:160])
        # the bridge is the interaction's before it is asked for: a create whose answer
        # was lost may still have made it, and then only this id can remove it
        ctx.interaction.add_bridge("main", bridge)
        try:
            # dtmf_events: the agent's keypad codes (consult) must reach the app, which
            # a native RTP bridge between the two phones would carry past Asterisk's core
            await s.ari.create_bridge(bridge, f"hotline-{s.call_id}", "mixing,dtmf_events")
            await s.music(False)  # back to the queue's music if what follows fails
            await s.ari.add_to_bridge(bridge, [s.channel_id, leg])
        except AriError:
            ctx.interaction.drop_bridge("main")
            await ctx.destroy_bridge(bridge)
            raise
        agent = svc.pool.agents[agent_id]
        now = utcnow()
        if rec.agent_answered_at is None:
            # the call's answer is the first one: a transferred call is answered once
            rec.agent_answered_at = now
            rec.agent, rec.site = agent.id, agent.site
            rec.speed_of_answer = seconds_between(rec.queue_joined_at, now)
        if rec.queue:
            rec.queue[-1].left_at = now
            rec.queue[-1].result = "answered"
        waited = time.time() - self.arrival
        svc.estimator.record_answer_wait(self.entity, waited)
        counters = self.deps.counters
        if counters is not None and rec.agent == agent.id and rec.agent_answered_at == now:
            counters.answered(rec.speed_of_answer or 0.0)
        ctx.interaction.legs[Role.AGENT].status = "up"
        ctx.emit("agent_answered")
        log.info("queue.answered", agent=agent.id, site=agent.site,
                 speed_of_answer=round(waited, 3), step=self.step)
        return self.deps.connect(self.entity, agent_id, time.time())

    async def resume(self, ctx: CallContext, channels: Mapping[str, Any]) -> State:
        """The app restarted while the agent's phone rang: the caller goes back to
        the head of the queue (same arrival), the ringing leg goes and the agent
        is freed."""
        leg = ctx.interaction.drop_leg(Role.AGENT)
        if leg is not None:
            await ctx.hang_up(leg.channel_id)
        if ctx.record.offers and ctx.record.offers[-1].result == "ringing":
            ctx.record.offers[-1].result = "failed"
        await self.deps.svc.pool.unoffer(self.agent, ctx.interaction.id)
        await self.deps.svc.dispatcher.wake_all()
        return Queued(entity=self.entity, arrival=self.arrival, priority=self.priority,
                      deps=self.deps)

    async def abandon(self, ctx: CallContext, channels: Mapping[str, Any]) -> None:
        with contextlib.suppress(RedisError):
            await self.deps.svc.waiting.remove(self.entity, ctx.interaction.id)
        if ctx.record.offers and ctx.record.offers[-1].result == "ringing":
            ctx.record.offers[-1].result = "caller_gone"
        await self.deps.svc.pool.unoffer(self.agent, ctx.interaction.id)
        await self.deps.svc.dispatcher.wake_all()


