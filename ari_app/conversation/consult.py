"""Consult (attended) transfer: the agent talks to someone else while the caller
holds, then returns to the caller or hands the caller over.

The agent types on the phone's keypad during a call, as with Asterisk's own
attended transfer:

- `*2` + target + `#` starts a consult. Targets: `8` + the menu keys of an
  entity (its queue's next free agent, as a blind transfer code), `9` + an
  agent's number (the digits of the agent's id: 9001 is a001), `0` a supervisor
  (queue.supervisors, the first one free).
- during the consult, `*1` returns to the caller and `*2` completes the
  transfer; the agent hanging up completes it too.

The caller leaves the bridge and hears music while the agent and the consulted
party talk in it; the consulted party's phone shows the caller's language and
entity. If the consulted party declines, does not answer or hangs up, the
caller returns to the agent. On completion the consulted party becomes the
interaction's agent leg, the first agent goes to wrap-up, and the caller keeps
their arrival time, language and record.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ari_app.ari.client import AriError
from ari_app.conversation.deps import TalkDeps
from ari_app.conversation.ending import HANGUP_EVENTS, end_conversation
from ari_app.interactions.context import CallContext
from ari_app.interactions.machine import State
from ari_app.interactions.model import Role
from ari_app.interactions.session import AriUnavailable, CallerGone
from ari_app.journey.menus import transfer_target
from ari_app.logs import get_logger
from ari_app.queue.routing import steps_for
from ari_app.queue.states import CAUSE_RESULT, dial_string
from ari_app.records.model import Consult, HangupBy, utcnow

if TYPE_CHECKING:
    from ari_app.conversation.states import Talking

log = get_logger("consult")
ALL_STEPS = 10**9  # a consult may use every routing step at once: nobody waits behind it


@dataclass(frozen=True)
class Target:
    kind: str  # entity | agent | supervisor
    id: str


def parse_target(ctx: CallContext, deps: TalkDeps, code: str) -> Target | None:
    """What a consult code names; None when it names nothing."""
    if code == "0":
        return Target("supervisor", "0") if deps.svc.settings.supervisors else None
    if code.startswith("8"):
        entity = transfer_target(ctx.cfg, code)
        return Target("entity", entity) if entity else None
    if code.startswith("9") and code[1:].isdigit():
        wanted = code[1:].lstrip("0") or "0"
        for agent_id in deps.svc.pool.agents:
            if (re.sub(r"\D", "", agent_id).lstrip("0") or "0") == wanted:
                return Target("agent", agent_id)
    return None


def start_consult(talking: Talking, ctx: CallContext, code: str) -> State | None:
    """The agent typed a consult code: the next state, or None to stay talking."""
    target = parse_target(ctx, talking.deps, code)
    log.info("consult.requested", agent=talking.agent, code=code,
             target=target.id if target else None)
    if target is None:
        return None
    return Consulting(talk={"entity": talking.entity, "agent": talking.agent,
                            "started": talking.started},
                      kind=target.kind, target=target.id, deps=talking.deps)


@dataclass
class Consulting:
    talk: dict[str, Any]  # the conversation to go back to: entity, agent, started
    kind: str
    target: str
    consultee: str | None = None
    name: ClassVar[str] = "consulting"
    phase: ClassVar[str] = "talk"
    deps: TalkDeps = field(repr=False, compare=False, kw_only=True)

    def _talking(self, **changes: Any) -> State:
        t = {**self.talk, **changes}
        return self.deps.talk(str(t["entity"]), str(t["agent"]), float(t["started"]))

    async def _end_first(self, ctx: CallContext, keep_bridge: bool) -> None:
        await end_conversation(ctx, self.deps, str(self.talk["entity"]), str(self.talk["agent"]),
                               float(self.talk["started"]), keep_bridge=keep_bridge)

    async def run(self, ctx: CallContext) -> State | None:
        s, rec, svc = ctx.session, ctx.record, self.deps.svc
        agent_leg = ctx.interaction.leg(Role.AGENT)
        bridge = ctx.interaction.bridges.get("main")
        if agent_leg is None or bridge is None:
            return self._talking()
        entry = Consult(at=utcnow(), by=str(self.talk["agent"]), target_kind=self.kind,
                        target=self.target)
        rec.consults.append(entry)
        self.consultee = await self._reserve(ctx)
        if self.consultee is None:
            entry.result = "unavailable"
            ctx.emit("consulted")
            await _tone(ctx, agent_leg.channel_id, "beeperr")
            return self._talking()
        consultee = svc.pool.agents[self.consultee]
        entry.agent, entry.site = consultee.id, consultee.site
        # the caller holds with music outside the bridge; the agent stays in it
        await s.ari.remove_from_bridge(bridge, [s.channel_id])
        await s.music(True)
        leg = ctx.interaction.new_id("c")
        ctx.interaction.add_leg(Role.CONSULT, leg, agent=consultee.id)
        await ctx.checkpoint(self)
        outcome = "failed"
        try:
            outcome = await self._consult(ctx, leg, bridge, entry)
        except CallerGone:
            outcome = "caller_gone"
            raise
        finally:
            entry.ended_at = entry.ended_at or utcnow()
            entry.result = entry.result or outcome
            ctx.emit("consulted")
            if outcome != "completed":
                await self._drop_consultee(ctx, answered=entry.answered_at is not None)
            if outcome in ("caller_gone", "failed"):
                # the call is over: the first agent's part ends as any conversation's
                await self._end_first(ctx, keep_bridge=False)
        if outcome == "completed":
            return await self._complete(ctx, bridge)
        if outcome == "requeue":
            return await self._requeue(ctx)
        await self._back_to_caller(ctx, bridge)
        return self._talking()

    async def _reserve(self, ctx: CallContext) -> str | None:
        pool, s = self.deps.svc.pool, ctx.session
        if self.kind == "entity":
            steps = steps_for(ctx.cfg, self.target, s.language, ALL_STEPS, self.deps.svc.settings)
            offer = await pool.take(steps, ctx.interaction.id)
            return offer.agent.id if offer else None
        names = self.deps.svc.settings.supervisors if self.kind == "supervisor" else [self.target]
        for agent_id in names:
            if agent_id != self.talk["agent"] and await pool.reserve(agent_id, ctx.interaction.id):
                return agent_id
        return None

    async def _consult(self, ctx: CallContext, leg: str, bridge: str, entry: Consult) -> str:
        """Ring the consulted party, then let the agent and them talk. Returns
        completed | returned | declined | no_answer | requeue."""
        s, svc = ctx.session, self.deps.svc
        consultee = svc.pool.agents[str(self.consultee)]
        agent_leg = ctx.interaction.legs[Role.AGENT].channel_id
        rec = ctx.record
        # what the consulted party's phone shows: language and entity, then the number
        show = f"{s.language} {rec.entity or ''}".strip()
        try:
            await s.ari.originate(endpoint=dial_string(ctx.cfg.site, consultee), channel_id=leg,
                                  app=self.deps.app_name, app_args=f"agent,{ctx.interaction.id}",
                                  ring_seconds=int(svc.settings.ring_timeout),
                                  caller_id=f'"{show}" <{rec.caller}>')
        except AriError as e:  # the consulted phone cannot be reached: back to the caller
            log.warning("consult.originate_failed", to=consultee.id, error=str(e)[:160])
            entry.result = "unreachable"
            return "unreachable"
        deadline = time.monotonic() + svc.settings.ring_timeout + 5
        agent_gone = False
        keys = _Keys()
        while True:
            up = entry.answered_at is not None
            ev = await s.event(None if up else max(0.0, deadline - time.monotonic()))
            if ev is None:
                entry.result = "no_answer"
                return "requeue" if agent_gone else "no_answer"
            chan = (ev.get("channel") or {}).get("id")
            kind = ev.get("type")
            if chan == leg and kind == "StasisStart" and not up:
                if not await svc.pool.answered(consultee.id, ctx.interaction.id):
                    return "declined"
                entry.answered_at = utcnow()
                ctx.interaction.legs[Role.CONSULT].status = "up"
                await s.ari.add_to_bridge(bridge, [leg])
                if agent_gone:
                    return "completed"
                ctx.emit("consulted")
                continue
            if chan == leg and kind in HANGUP_EVENTS:
                if up:
                    return "returned" if not agent_gone else "requeue"
                entry.result = CAUSE_RESULT.get(int(ev.get("cause") or 0), "declined")
                return entry.result if not agent_gone else "requeue"
            if chan == agent_leg and kind in HANGUP_EVENTS and not agent_gone:
                # the agent hanging up hands the caller over, as with Asterisk's own
                # attended transfer: at once if the consulted party is on, else on answer
                agent_gone = True
                rec.hangup_by = HangupBy.AGENT
                if up:
                    return "completed"
                continue
            if chan == agent_leg and kind == "ChannelDtmfReceived":
                action = keys.press(str(ev.get("digit", "")))
                if action == "return":
                    return "returned"
                if action == "complete" and up:
                    return "completed"

    async def _drop_consultee(self, ctx: CallContext, answered: bool) -> None:
        leg = ctx.interaction.drop_leg(Role.CONSULT)
        if leg is not None:
            await ctx.hang_up(leg.channel_id)
        if self.consultee is not None:
            pool = self.deps.svc.pool
            if answered:  # a colleague's consult is no call of their own: no wrap-up
                await pool.release(self.consultee, 0, ctx.interaction.id)
            else:
                await pool.unoffer(self.consultee, ctx.interaction.id)
            await self.deps.svc.dispatcher.wake_all()

    async def _back_to_caller(self, ctx: CallContext, bridge: str) -> None:
        s = ctx.session
        await s.music(False)
        await s.ari.add_to_bridge(bridge, [s.channel_id])
        log.info("consult.returned", agent=self.talk["agent"])

    async def _complete(self, ctx: CallContext, bridge: str) -> State:
        """The consulted party takes the caller; the first agent goes to wrap-up."""
        s, rec, svc = ctx.session, ctx.record, self.deps.svc
        first_leg = ctx.interaction.leg(Role.AGENT)
        if first_leg is not None:
            with contextlib.suppress(AriError, AriUnavailable):
                await s.ari.remove_from_bridge(bridge, [first_leg.channel_id])
        consult = ctx.interaction.drop_leg(Role.CONSULT)
        assert consult is not None and self.consultee is not None
        # the first agent's part ends as any conversation does (leg, wrap-up), but
        # the bridge stays: the caller and the consulted party meet in it
        await self._end_first(ctx, keep_bridge=True)
        leg = ctx.interaction.add_leg(Role.AGENT, consult.channel_id, agent=self.consultee)
        leg.status = "up"
        await s.music(False)
        await s.ari.add_to_bridge(bridge, [s.channel_id])
        rec.hangup_by = None
        entity = str(self.talk["entity"])
        if self.kind == "entity" and self.target != entity:
            entity = self.target
            rec.entity, rec.sector = entity, ctx.cfg.sector_of(entity)
            rec.entity_path = [*rec.entity_path, entity]
        log.info("consult.completed", agent=self.talk["agent"], to=self.consultee)
        await svc.dispatcher.wake_all()
        return self._talking(entity=entity, agent=self.consultee, started=time.time())

    async def _requeue(self, ctx: CallContext) -> State:
        """The agent has gone and the consulted party never took the caller: the
        first agent's part ends, and the caller goes back to the queue ahead of
        new callers."""
        await self._end_first(ctx, keep_bridge=False)
        entity = str(self.talk["entity"])
        settings = self.deps.svc.settings
        return self.deps.requeue(entity, settings.priority_for(entity) + settings.transfer_boost,
                                 True)

    async def resume(self, ctx: CallContext, channels: Mapping[str, Any]) -> State:
        """Restarted mid-consult: the consult ends and the caller returns to the
        agent, or to the queue if the agent has gone too."""
        await self._drop_consultee(ctx, answered=True)
        agent = ctx.interaction.leg(Role.AGENT)
        bridge = ctx.interaction.bridges.get("main")
        if ctx.record.consults and ctx.record.consults[-1].result is None:
            ctx.record.consults[-1].result = "failed"
            ctx.record.consults[-1].ended_at = utcnow()
        if agent is not None and agent.channel_id in channels and bridge is not None:
            with contextlib.suppress(AriError, AriUnavailable):
                await self._back_to_caller(ctx, bridge)
            return self._talking()
        return await self._requeue(ctx)

    async def abandon(self, ctx: CallContext, channels: Mapping[str, Any]) -> None:
        await self._drop_consultee(ctx, answered=True)
        ctx.record.hangup_by = ctx.record.hangup_by or HangupBy.SYSTEM
        with contextlib.suppress(AriError, AriUnavailable):
            await self._end_first(ctx, keep_bridge=False)


class _Keys:
    """`*1` back to the caller, `*2` complete, during a consult."""

    def __init__(self) -> None:
        self._star = False

    def press(self, digit: str) -> str | None:
        if digit == "*":
            self._star = True
            return None
        action = {"1": "return", "2": "complete"}.get(digit) if self._star else None
        self._star = False
        return action


async def _tone(ctx: CallContext, channel: str, tone: str) -> None:
    with contextlib.suppress(AriError, AriUnavailable):
        pb = ctx.interaction.new_id("pb")
        await ctx.session.ari.play(channel, [f"sound:{tone}"], "en", pb)
