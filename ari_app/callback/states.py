"""A callback attempt: the agent first, then the citizen, then the conversation.

The attempt is an interaction of its own (call id `{ticket}n{attempt}`) whose
"caller" leg is the citizen's outbound leg: its id is chosen before it exists,
so its events reach this interaction as soon as the app originates it. The
agent is rung first (an agent who does not answer costs the citizen nothing);
once the agent answers, the app dials the citizen through the dialplan's
callback-out context, which dials only the number the app names on the channel
(asterisk-config/extensions.conf). Answered: a short prompt in the citizen's
language, then the two are bridged and the conversation (Talking) takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from redis.exceptions import RedisError

from ari_app.ari.client import AriError
from ari_app.callback.deps import CallbackDeps
from ari_app.callback.store import DIALLING, QUEUED, RETRY, Ticket
from ari_app.interactions.context import CallContext
from ari_app.interactions.machine import Finish, State
from ari_app.interactions.model import Role
from ari_app.interactions.session import AriUnavailable
from ari_app.logs import get_logger
from ari_app.queue.states import CAUSE_RESULT, dial_string
from ari_app.records.model import Callback, HangupBy, Offer, Outcome, seconds_between, utcnow

log = get_logger("callback")
HANGUPS = ("ChannelDestroyed", "ChannelHangupRequest")


@dataclass
class CallbackRing:
    ticket: str
    agent: str
    step: int
    attempt: int
    name: ClassVar[str] = "callback_ring"
    phase: ClassVar[str] = "queue"
    deps: CallbackDeps = field(repr=False, compare=False, kw_only=True)

    async def run(self, ctx: CallContext) -> State | None:
        d, s, rec = self.deps, ctx.session, ctx.record
        ticket = await d.store.get(self.ticket)
        if ticket is None:  # closed meanwhile (expired): nothing to call
            await d.svc.pool.unoffer(self.agent, s.call_id)
            await d.svc.dispatcher.wake_all()
            return self._done(ctx, "expired", Outcome.FAILED, "the ticket was gone")
        agent = d.svc.pool.agents[self.agent]
        leg = ctx.interaction.new_id("a")
        offer = Offer(agent=agent.id, site=agent.site, at=utcnow(), result="ringing")
        rec.offers.append(offer)
        ctx.interaction.add_leg(Role.AGENT, leg, agent=agent.id)
        await ctx.checkpoint(self)
        t0 = time.monotonic()
        on_call = False
        try:
            await s.ari.originate(endpoint=dial_string(ctx.cfg.site, agent), channel_id=leg,
                                  app=d.svc.app_name, app_args=f"agent,{s.call_id}",
                                  ring_seconds=int(d.svc.settings.ring_timeout),
                                  caller_id=_agent_display(rec.callback,
                                                           ctx.cfg.callback.caller_id))
            offer.result = await self._leg_answer(ctx, leg, d.svc.settings.ring_timeout + 5)
            offer.ring_seconds = round(time.monotonic() - t0, 3)
            if offer.result == "answered":
                on_call = await d.svc.pool.answered(agent.id, s.call_id)
                offer.result = "answered" if on_call else "failed"
        except AriError as e:
            offer.result = "failed"
            log.warning("callback.agent_offer_failed", agent=agent.id, error=str(e)[:160])
        ctx.emit("offered")
        if not on_call:
            ctx.interaction.drop_leg(Role.AGENT)
            await ctx.hang_up(leg)
            await d.svc.pool.missed(agent.id, s.call_id)
            await d.svc.dispatcher.wake_all()
            # the ticket keeps its place: back in line, no attempt spent
            await d.store.update(ticket, state=QUEUED)
            return self._done(ctx, "agent_missed", Outcome.FAILED,
                              f"agent {agent.id} did not take the callback ({offer.result})")
        ctx.interaction.legs[Role.AGENT].status = "up"
        rec.agent, rec.site = agent.id, agent.site
        return await self._dial_citizen(ctx, ticket, leg)

    async def _dial_citizen(self, ctx: CallContext, ticket: Ticket, leg: str) -> State | None:
        d, s, rec = self.deps, ctx.session, ctx.record
        await d.store.update(ticket, attempts=self.attempt)
        with contextlib.suppress(AriError):
            await s.ari.ring(leg)  # the agent hears ringing while the citizen's phone rings
        ring = d.settings.ring_timeout
        try:
            await s.ari.originate_local(
                endpoint=f"Local/{ticket.number}@callback-out/n", channel_id=s.channel_id,
                app=d.svc.app_name, app_args=f"callback,{ticket.id}",
                ring_seconds=int(ring) + 5, caller_id=f'"109" <{ctx.cfg.callback.caller_id}>',
                variables={"HOTLINE_CALLBACK_NUMBER": ticket.number,
                           "HOTLINE_CALLBACK_RING": str(int(ring))},
                formats="ulaw,alaw")  # the carrier trunk's codecs (pjsip.conf)
            result = await self._leg_answer(ctx, s.channel_id, ring + 10, agent_leg=leg)
        except AriError as e:
            log.warning("callback.dial_failed", error=str(e)[:160])
            result = "failed"
        if result != "answered":
            return await self._not_reached(ctx, ticket, leg, result)
        ctx.interaction.caller.status = "up"
        now = utcnow()
        rec.answered_at = rec.agent_answered_at = now
        if rec.callback is not None:
            rec.callback.result = "answered"
            rec.callback.answered_at = now
            rec.callback.seconds_to_callback = seconds_between(ticket.requested_at, now)
        await d.store.close(ticket)
        ctx.emit("callback_answered")
        log.info("callback.answered", ticket=ticket.id, attempt=self.attempt,
                 seconds_to_callback=rec.callback.seconds_to_callback if rec.callback else None)
        await s.play(ctx.media("callback-greeting"), interruptible=False)
        bridge = ctx.interaction.new_id("br")
        ctx.interaction.add_bridge("main", bridge)
        await s.ari.create_bridge(bridge, f"hotline-{s.call_id}", "mixing,dtmf_events")
        await s.ari.add_to_bridge(bridge, [s.channel_id, leg])
        return d.connect(ticket.entity, self.agent, time.time())

    async def _not_reached(self, ctx: CallContext, ticket: Ticket, leg: str,
                           result: str) -> State | None:
        """No answer, busy or failed: the agent is freed and the ticket waits for
        its next attempt, or is failed after the last one."""
        d, s = self.deps, ctx.session
        await ctx.hang_up(s.channel_id)
        s.gone = s.gone or "app"
        ctx.interaction.drop_leg(Role.AGENT)
        await ctx.hang_up(leg)
        await d.svc.pool.release(self.agent, 0, s.call_id)
        await d.svc.dispatcher.wake_all()
        if self.attempt >= d.settings.max_attempts:
            await d.store.close(ticket)
            final = "failed"
        else:
            await d.store.update(ticket, state=RETRY, last_result=result,
                                 next_at=time.time() + d.settings.retry_interval)
            final = "retry"
        log.info("callback.not_reached", ticket=ticket.id, attempt=self.attempt,
                 result=result, then=final)
        return self._done(ctx, final, Outcome.FAILED, f"callback attempt {self.attempt}: {result}")

    async def _leg_answer(self, ctx: CallContext, chan: str, limit: float,
                          agent_leg: str | None = None) -> str:
        """answered, or why not (busy, no_answer, ...) for one leg. Read from the
        inbox directly: the citizen's leg is this interaction's "caller", whose
        hang-up the session would take for the end of the call, not a result."""
        s = ctx.session
        deadline = time.monotonic() + limit
        while True:
            try:
                ev = await asyncio.wait_for(s.inbox.get(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return "no_answer"
            cid = (ev.get("channel") or {}).get("id")
            kind = ev.get("type")
            if cid == chan and kind == "StasisStart":
                return "answered"
            # a Local channel taken into Stasis on answer gets a soft hang-up request
            # (cause 0) on the way in: only its destruction says the call is over
            if cid == chan and (kind == "ChannelDestroyed" or (
                    kind == "ChannelHangupRequest" and not ev.get("soft"))):
                log.info("callback.leg_ended", leg=chan, kind=kind, cause=ev.get("cause"))
                return CAUSE_RESULT.get(int(ev.get("cause") or 0), "no_answer")
            if agent_leg is not None and cid == agent_leg and kind in HANGUPS:
                await ctx.hang_up(chan)
                return "agent_gone"

    def _done(self, ctx: CallContext, result: str, outcome: Outcome, why: str) -> State | None:
        rec = ctx.record
        if rec.callback is not None:
            rec.callback.result = result
        rec.outcome = outcome
        rec.failure = why[:500]
        rec.hangup_by = rec.hangup_by or HangupBy.APP
        ctx.session.gone = ctx.session.gone or "app"
        return None

    async def _put_back(self, ctx: CallContext) -> None:
        """After a restart mid-attempt: the agent is freed, the ticket back in line."""
        d = self.deps
        with contextlib.suppress(RedisError):
            ticket = await d.store.get(self.ticket)
            if ticket is not None and ticket.state == DIALLING:
                await d.store.update(ticket, state=QUEUED)
            if not await d.svc.pool.unoffer(self.agent, ctx.interaction.id):
                await d.svc.pool.release(self.agent, 0, ctx.interaction.id)
            await d.svc.dispatcher.wake_all()
        if ctx.record.callback is not None:
            ctx.record.callback.result = "interrupted"

    async def resume(self, ctx: CallContext, channels: Mapping[str, Any]) -> State:
        await self._put_back(ctx)
        with contextlib.suppress(AriError, AriUnavailable):
            await ctx.hang_up(ctx.session.channel_id)
        return Finish(Outcome.FAILED.value)

    async def abandon(self, ctx: CallContext, channels: Mapping[str, Any]) -> None:
        await self._put_back(ctx)


def _agent_display(cb: Callback | None, number: str) -> str:
    """What the agent's phone shows while it rings: a callback, to whom, after how long."""
    if cb is None:
        return f'"Callback" <{number}>'
    return f'"Callback {cb.number} waited {round(cb.waited)}s" <{number}>'
