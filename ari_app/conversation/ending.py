"""The end of one agent's part in a conversation, shared by talking and consulting."""

from __future__ import annotations

import time

from ari_app.conversation.deps import TalkDeps
from ari_app.interactions.context import CallContext
from ari_app.interactions.model import Role

# any of these on a leg means that leg is gone or going
HANGUP_EVENTS = ("StasisEnd", "ChannelDestroyed", "ChannelHangupRequest")


async def end_conversation(ctx: CallContext, deps: TalkDeps, entity: str, agent: str,
                           started: float, *, keep_bridge: bool = False) -> None:
    """The agent's leg and (unless kept for a hand-over) the bridge go, the agent
    enters wrap-up and the dispatcher looks for their next caller."""
    svc, s, rec = deps.svc, ctx.session, ctx.record
    talk = round(time.time() - started, 3)
    rec.talk_seconds = round((rec.talk_seconds or 0.0) + talk, 3)
    leg = ctx.interaction.drop_leg(Role.AGENT)
    if leg is not None:
        await ctx.hang_up(leg.channel_id)
    bridge = None if keep_bridge else ctx.interaction.drop_bridge("main")
    if bridge is not None:
        await ctx.destroy_bridge(bridge)
    wrapup = svc.settings.wrapup_seconds
    rec.wrapup_seconds = round((rec.wrapup_seconds or 0.0) + wrapup, 3)
    await svc.pool.release(agent, wrapup, s.call_id)
    svc.estimator.record_handle_time(entity, talk + wrapup)
    await svc.dispatcher.wake_all()
