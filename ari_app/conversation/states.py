"""A caller and an agent bridged: the conversation, until either side hangs up,
the agent transfers the caller blind (REFER to 8 + menu keys), or consults
someone else first (conversation/consult.py).

The conversation's legs and bridge belong to the interaction (roles agent and
main), so recovery and the event router know them without any naming rule."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from redis.exceptions import RedisError

from ari_app.ari.client import AriError, Event
from ari_app.conversation.consult import start_consult
from ari_app.conversation.deps import TalkDeps
from ari_app.conversation.ending import HANGUP_EVENTS, end_conversation
from ari_app.interactions.context import CallContext
from ari_app.interactions.machine import State
from ari_app.interactions.model import Role
from ari_app.interactions.session import AriUnavailable, CallerGone
from ari_app.journey.menus import transfer_target
from ari_app.logs import get_logger
from ari_app.records.model import HangupBy, Outcome

log = get_logger("conversation")


@dataclass
class Talking:
    entity: str
    agent: str
    started: float
    name: ClassVar[str] = "talking"
    phase: ClassVar[str] = "talk"
    deps: TalkDeps = field(repr=False, compare=False, kw_only=True)

    async def run(self, ctx: CallContext) -> State | None:
        s, rec = ctx.session, ctx.record
        rec.outcome = Outcome.ANSWERED
        target: str | None = None
        consult: State | None = None
        leg = ctx.interaction.leg(Role.AGENT)
        keys = AgentKeys()
        if self.deps.on_talk is not None and leg is not None:
            await self.deps.on_talk(ctx)
        try:
            while leg is not None:
                ev = await s.event(None)
                if ev is None:
                    continue
                kind = ev.get("type")
                if kind == "ChannelTransfer":
                    target = await self._transfer(ctx, ev, leg.channel_id)
                    if target is not None:
                        break
                    continue
                if (ev.get("channel") or {}).get("id") != leg.channel_id:
                    continue
                if kind == "ChannelDtmfReceived":
                    log.debug("conversation.agent_key", digit=str(ev.get("digit", ""))[:1])
                    code = keys.press(str(ev.get("digit", "")))
                    if code is not None:
                        consult = start_consult(self, ctx, code)
                        if consult is not None:
                            return consult
                    continue
                if kind in HANGUP_EVENTS:
                    rec.hangup_by = HangupBy.AGENT
                    break
            else:
                rec.hangup_by = HangupBy.AGENT  # the agent's leg went while the app was away
        except CallerGone:
            rec.hangup_by = rec.hangup_by or HangupBy.CALLER
            raise
        finally:
            if consult is None:
                await self.end(ctx)
        if target is not None:
            rec.entity, rec.sector = target, ctx.cfg.sector_of(target)
            rec.entity_path = [*rec.entity_path, target]
            settings = self.deps.svc.settings
            return self.deps.requeue(
                target, settings.priority_for(target) + settings.transfer_boost, True)
        if rec.hangup_by == HangupBy.AGENT and self.deps.after_agent is not None:
            after = self.deps.after_agent(ctx, self.entity, self.agent)
            if after is not None:
                return after
        await s.hangup()
        return None

    async def _transfer(self, ctx: CallContext, ev: Event, leg: str) -> str | None:
        """A blind transfer from the agent's phone to a transfer code (8 + menu keys)."""
        source = ((ev.get("referred_by") or {}).get("source_channel") or {}).get("id")
        dest = str(((ev.get("refer_to") or {}).get("requested_destination") or {})
                   .get("destination") or "")
        code = dest.removeprefix("sip:").split("@", 1)[0]
        target = transfer_target(ctx.cfg, code) if source == leg else None
        with contextlib.suppress(AriError, AriUnavailable):
            await ctx.session.ari.transfer_progress(
                leg, "channel_answered" if target else "channel_declined")
        log.info("conversation.transfer", agent=self.agent, code=code, entity=target)
        if target is not None and ctx.record.queue:
            ctx.record.queue[-1].result = "transferred"
        return target

    async def end(self, ctx: CallContext) -> None:
        await end_conversation(ctx, self.deps, self.entity, self.agent, self.started)

    async def resume(self, ctx: CallContext, channels: Mapping[str, Any]) -> State:
        """A bridged call goes on through a restart; if the agent hung up meanwhile,
        the conversation ends as the agent's."""
        leg = ctx.interaction.leg(Role.AGENT)
        if leg is not None and leg.channel_id not in channels:
            ctx.session.deliver({"type": "ChannelDestroyed", "channel": {"id": leg.channel_id}})
        return self

    async def abandon(self, ctx: CallContext, channels: Mapping[str, Any]) -> None:
        ctx.record.hangup_by = ctx.record.hangup_by or HangupBy.SYSTEM
        with contextlib.suppress(RedisError, AriError, AriUnavailable):
            await self.end(ctx)


class AgentKeys:
    """Feature codes an agent types on the phone's keypad during a call.

    `*2` starts a consult; the target follows and `#` ends it (as with
    Asterisk's own attended transfer, which agents already know). Anything
    else is ignored, so a stray key never moves a caller."""

    def __init__(self) -> None:
        self._buf: str | None = None
        self._star = False

    def press(self, digit: str) -> str | None:
        if self._buf is not None:
            if digit == "#":
                code, self._buf = self._buf, None
                return code
            if digit == "*":
                self._buf = None  # start again
                return None
            self._buf = (self._buf + digit)[:8]
            return None
        if digit == "*":
            self._star = True
            return None
        if self._star and digit == "2":
            self._buf = ""
        self._star = False
        return None
