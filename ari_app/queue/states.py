"""The queue's states: waiting with music and announcements, ringing an agent, talking.

Speed of answer runs from joining the queue to the agent's answer. A caller
whose agent does not answer keeps their place at the head of the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import ClassVar

from redis.exceptions import RedisError

from ari_app.agents.pool import Offer
from ari_app.ari.client import AriError, Event
from ari_app.calls.context import CallContext
from ari_app.calls.machine import Finish, State, state_data
from ari_app.calls.session import AriUnavailable, CallerGone
from ari_app.config.models import Agent
from ari_app.journey.menus import transfer_target
from ari_app.logs import get_logger
from ari_app.queue.estimate import ABOUT_MINUTES, LESS_THAN_MINUTE, spoken_wait
from ari_app.queue.service import QueueService
from ari_app.queue.settings import ToEntity
from ari_app.records.model import HangupBy, Outcome, QueueStint, seconds_between, utcnow
from ari_app.records.model import Offer as OfferRecord

log = get_logger("queue")

# Asterisk hang-up causes of an agent leg that never answered
CAUSE_RESULT = {17: "busy", 21: "rejected", 19: "no_answer", 18: "no_answer", 20: "unreachable"}


def _svc(ctx: CallContext) -> QueueService:
    svc = ctx.services["queue"]
    assert isinstance(svc, QueueService)
    return svc


def dial_string(own_site: str | None, agent: Agent) -> str:
    """An agent of this server directly; another site's through that site's trunk,
    whose server then rings its own agent (its from-sites context)."""
    if own_site is None or agent.site == own_site:
        return f"PJSIP/{agent.endpoint}"
    return f"PJSIP/{agent.endpoint}@site-{agent.site}"


def entry(entity: str) -> State:
    """The hand-over from the menus."""
    return Queued(entity=entity)


@dataclass
class Queued:
    entity: str
    arrival: float | None = None  # epoch seconds on first joining; kept through re-queues
    priority: int | None = None
    transferred: bool = False
    name: ClassVar[str] = "queued"
    phase: ClassVar[str] = "queue"

    async def run(self, ctx: CallContext) -> State | None:
        try:
            return await self._run(ctx)
        except RedisError as e:
            # no shared state, no queue: the degraded mode (docs/operations.md)
            log.warning("queue.redis_down", error=str(e))
            with contextlib.suppress(AriError, AriUnavailable):
                await ctx.session.ari.stop_moh(ctx.session.channel_id)
            if ctx.record.queue and ctx.record.queue[-1].left_at is None:
                ctx.record.queue[-1].left_at = utcnow()
                ctx.record.queue[-1].result = "fallback"
            ctx.record.failure = "queue unavailable: Redis unreachable"
            return Finish(Outcome.NO_AGENT_FALLBACK.value, prompts=["no-agents", "goodbye"])

    async def _run(self, ctx: CallContext) -> State | None:
        svc, s, rec = _svc(ctx), ctx.session, ctx.record
        settings = svc.settings
        first = self.arrival is None
        arrival = time.time() if self.arrival is None else self.arrival
        self.arrival = arrival
        if first:
            rec.queue_joined_at = rec.queue_joined_at or utcnow()
            rec.queue.append(QueueStint(entity=self.entity, joined_at=utcnow()))
            counters = ctx.services.get("counters")
            if counters is not None and not self.transferred:
                counters.queued_call(self.entity)
            # a restarted app must see the arrival time, to keep this caller's place
            await ctx.store.checkpoint(s.call_id, self.name, state_data(self), rec)
            if not await svc.anyone_can_serve(self.entity, s.language):
                return self._fallback(ctx, Outcome.NO_AGENT_FALLBACK, "no-agents")
        priority = settings.priority_for(self.entity) if self.priority is None else self.priority
        fut = svc.box.open(s.call_id)
        offer: Offer | None = None
        try:
            await svc.dispatcher.own(s.call_id)
            position = await svc.waiting.join(self.entity, s.call_id, s.language,
                                              priority=priority, arrival=self.arrival,
                                              transferred=self.transferred)
            svc.dispatcher.wake()
            await s.ari.start_moh(s.channel_id)
            deadline = arrival + settings.max_wait_for(self.entity)
            next_announce = time.time() + (settings.announce_first_after if first else
                                           settings.announce_interval)
            previous: float | None = None
            while True:
                now = time.time()
                wait = min(next_announce, deadline) - now
                offer = await s.wait_for(fut, max(wait, 0.0))
                if offer is not None:
                    break
                if time.time() >= deadline:
                    await svc.waiting.remove(self.entity, s.call_id)
                    await s.ari.stop_moh(s.channel_id)
                    return self._fallback(ctx, Outcome.MAX_WAIT_FALLBACK, "max-wait")
                position = await svc.waiting.position(self.entity, s.call_id) or position
                previous = await self._announce(ctx, position, previous, fut)
                if fut.done():
                    offer = fut.result()
                    break
                next_announce = time.time() + settings.announce_interval
        finally:
            late = svc.box.close(s.call_id)
            if offer is None and rec.queue and rec.queue[-1].left_at is None:
                rec.queue[-1].left_at = utcnow()
                rec.queue[-1].result = "abandoned" if s.gone else None
            if offer is None:
                with contextlib.suppress(Exception):
                    await svc.waiting.remove(self.entity, s.call_id)
                if late is not None:
                    await svc.pool.unoffer(late.agent.id, s.call_id)
                    svc.dispatcher.wake()
        assert offer is not None  # the loop above only leaves with an offer or a return
        return Ringing(entity=self.entity, agent=offer.agent.id, step=offer.step,
                       arrival=arrival, priority=priority)

    async def _announce(self, ctx: CallContext, position: int, previous: float | None,
                        offer: asyncio.Future[Offer]) -> float | None:
        svc, s = _svc(ctx), ctx.session
        working, free = await svc.serving(self.entity, (s.language,))
        est = svc.estimator.estimate(self.entity, position, working, free, previous)
        media = ctx.media("queue-position", n=min(position, 999))
        spoken = spoken_wait(est)
        if spoken is not None and spoken[0] == LESS_THAN_MINUTE:
            media += ctx.media("wait-less-than-minute")
        elif spoken is not None and spoken[0] == ABOUT_MINUTES and spoken[1] is not None:
            media += ctx.media("wait-about", n=spoken[1])
        await s.ari.stop_moh(s.channel_id)
        # an agent who frees up mid-announcement must not wait for it to end
        await s.play(media, interruptible=False, stop_on=offer)
        await s.ari.start_moh(s.channel_id)  # music again, also while an agent rings
        return est

    def _fallback(self, ctx: CallContext, outcome: Outcome, prompt: str) -> State:
        svc = _svc(ctx)
        rule = svc.settings.fallback_for(self.entity)
        if ctx.record.queue:
            ctx.record.queue[-1].left_at = utcnow()
            ctx.record.queue[-1].result = "fallback"
        if isinstance(rule, ToEntity) and rule.entity != self.entity and \
                len(ctx.record.queue) < 3:
            ctx.record.entity_path = [*ctx.record.entity_path, rule.entity]
            return Queued(entity=rule.entity)
        message = getattr(rule, "prompt", prompt)
        known = ctx.prompts.names(ctx.language)
        names = [n for n in dict.fromkeys((prompt, message)) if n in known]
        return Finish(outcome.value, prompts=[*names, "goodbye"])


@dataclass
class Ringing:
    entity: str
    agent: str
    step: int
    arrival: float
    priority: int
    name: ClassVar[str] = "ringing"
    phase: ClassVar[str] = "queue"

    async def run(self, ctx: CallContext) -> State | None:
        svc, s, rec = _svc(ctx), ctx.session, ctx.record
        agent = svc.pool.agents[self.agent]
        leg = f"{s.call_id}-a{len(rec.offers) + 1}"
        offer_rec = OfferRecord(agent=agent.id, site=agent.site, at=utcnow(), result="ringing")
        rec.offers.append(offer_rec)
        t0 = time.monotonic()
        ctx.services["router"].register(leg, s)
        bridged = on_call = False
        try:
            await s.ari.originate(endpoint=dial_string(ctx.cfg.site, agent), channel_id=leg,
                                  app=svc.app_name, app_args=f"agent,{s.call_id}",
                                  ring_seconds=int(svc.settings.ring_timeout),
                                  caller_id=f'"{rec.caller}" <{rec.caller}>')
            result = await self._await_answer(ctx, leg, svc.settings.ring_timeout + 5)
            offer_rec.ring_seconds = round(time.monotonic() - t0, 3)
            offer_rec.result = result
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
                ctx.services["router"].unregister(leg)
                with contextlib.suppress(AriError, AriUnavailable):
                    await s.ari.hangup(leg)
                if on_call:
                    await svc.pool.release(agent.id, 0, s.call_id)
                elif offer_rec.result == "ringing":  # the caller left while it rang
                    offer_rec.result = "caller_gone"
                    await svc.pool.unoffer(agent.id, s.call_id)
                else:
                    await svc.pool.missed(agent.id, s.call_id)
                await svc.dispatcher.wake_all()
        log.info("queue.agent_missed", agent=agent.id, result=offer_rec.result)
        # the caller keeps the head of the queue: same arrival, same priority
        return Queued(entity=self.entity, arrival=self.arrival, priority=self.priority)

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
        svc, s, rec = _svc(ctx), ctx.session, ctx.record
        bridge = f"{s.call_id}-br{len(rec.offers)}"
        # the agent's phone may transfer (REFER): the app, not Asterisk, decides where
        await s.ari.set_var(leg, "PJSIP_TRANSFER_HANDLING()", "ari-only")
        await s.ari.create_bridge(bridge, f"hotline-{s.call_id}")
        await s.ari.stop_moh(s.channel_id)  # back to the queue's music if this fails
        try:
            await s.ari.add_to_bridge(bridge, [s.channel_id, leg])
        except AriError:
            with contextlib.suppress(AriError, AriUnavailable):
                await s.ari.destroy_bridge(bridge)
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
        counters = ctx.services.get("counters")
        if counters is not None and rec.agent == agent.id and rec.agent_answered_at == now:
            counters.answered(rec.speed_of_answer or 0.0)
        log.info("queue.answered", agent=agent.id, site=agent.site,
                 speed_of_answer=round(waited, 3), step=self.step)
        return Talking(entity=self.entity, agent=agent_id, leg=leg, bridge=bridge,
                       started=time.time())


@dataclass
class Talking:
    entity: str
    agent: str
    leg: str
    bridge: str
    started: float
    name: ClassVar[str] = "talking"
    phase: ClassVar[str] = "talk"

    async def run(self, ctx: CallContext) -> State | None:
        s, rec = ctx.session, ctx.record
        rec.outcome = Outcome.ANSWERED
        target: str | None = None
        try:
            while True:
                ev = await s.event(None)
                if ev is None:
                    continue
                if ev.get("type") == "ChannelTransfer":
                    target = await self._transfer(ctx, ev)
                    if target is not None:
                        break
                    continue
                if (ev.get("channel") or {}).get("id") != self.leg:
                    continue
                if ev.get("type") in ("StasisEnd", "ChannelDestroyed", "ChannelHangupRequest"):
                    rec.hangup_by = HangupBy.AGENT
                    break
        except CallerGone:
            rec.hangup_by = rec.hangup_by or HangupBy.CALLER
            raise
        finally:
            await self._clean_up(ctx)
        if target is not None:
            svc = _svc(ctx)
            rec.entity, rec.sector = target, ctx.cfg.sector_of(target)
            rec.entity_path = [*rec.entity_path, target]
            return Queued(entity=target, transferred=True,
                          priority=svc.settings.priority_for(target) +
                          svc.settings.transfer_boost)
        await s.hangup()
        return None

    async def _transfer(self, ctx: CallContext, ev: Event) -> str | None:
        """A blind transfer from the agent's phone to a transfer code (8 + menu keys)."""
        source = ((ev.get("referred_by") or {}).get("source_channel") or {}).get("id")
        dest = str(((ev.get("refer_to") or {}).get("requested_destination") or {})
                   .get("destination") or "")
        code = dest.removeprefix("sip:").split("@", 1)[0]
        target = transfer_target(ctx.cfg, code) if source == self.leg else None
        with contextlib.suppress(AriError, AriUnavailable):
            await ctx.session.ari.transfer_progress(
                self.leg, "channel_answered" if target else "channel_declined")
        log.info("queue.transfer", agent=self.agent, code=code, entity=target)
        if target is not None and ctx.record.queue:
            ctx.record.queue[-1].result = "transferred"
        return target

    async def _clean_up(self, ctx: CallContext) -> None:
        svc, s, rec = _svc(ctx), ctx.session, ctx.record
        talk = round(time.time() - self.started, 3)
        rec.talk_seconds = round((rec.talk_seconds or 0.0) + talk, 3)
        ctx.services["router"].unregister(self.leg)
        with contextlib.suppress(AriError, AriUnavailable):
            await s.ari.hangup(self.leg)
        with contextlib.suppress(AriError, AriUnavailable):
            await s.ari.destroy_bridge(self.bridge)
        wrapup = svc.settings.wrapup_seconds
        rec.wrapup_seconds = round((rec.wrapup_seconds or 0.0) + wrapup, 3)
        await svc.pool.release(self.agent, wrapup, s.call_id)
        svc.estimator.record_handle_time(self.entity, talk + wrapup)
        await svc.dispatcher.wake_all()
