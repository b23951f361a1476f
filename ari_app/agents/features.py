"""Feature codes dialled from an agent's phone: *21 log in, *22 log out, *23 pause
(*23N: with the pause reason whose digit is N, config agent_work.pause_reasons;
*23 alone: "break"), *24 resume, *25 wrap-up done.

The agents' dialplan context sends these into Stasis; the agent is known by
the endpoint their phone authenticated as, never by anything they dial.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from ari_app.agents.pool import AgentPool, AgentStateError
from ari_app.agents.roster import Roster
from ari_app.agents.wrapup import WrapUpError, WrapUps
from ari_app.ari.client import AriError, Event
from ari_app.config.agent_work import DEFAULT_PAUSE, AgentWork
from ari_app.interactions.session import AriUnavailable, CallerGone, CallSession
from ari_app.logs import get_logger

log = get_logger("features")
CODES = {"*21": "login", "*22": "logout", "*23": "pause", "*24": "resume", "*25": "done"}


def parse_code(code: str, work: AgentWork) -> tuple[str | None, str]:
    """(action, pause reason) of a dialled code; action None when it is not one."""
    if len(code) == 4 and code.startswith("*23"):
        reason = work.pause_by_digit(code[3])
        return ("pause", reason.id) if reason is not None else (None, "")
    return CODES.get(code), DEFAULT_PAUSE


def endpoint_of(channel_name: str) -> str | None:
    """'PJSIP/agent-a001-0000002a' -> 'agent-a001'."""
    if not channel_name.startswith("PJSIP/"):
        return None
    rest = channel_name[len("PJSIP/"):]
    head, sep, _ = rest.rpartition("-")
    return head if sep else None


async def handle_feature(session: CallSession, pool: AgentPool, roster: Roster, ev: Event,
                         on_change: Callable[[], Awaitable[None]] | None = None,
                         wrapups: WrapUps | None = None) -> str:
    chan = ev.get("channel") or {}
    chan_id = session.channel_id
    ari = session.ari
    args = ev.get("args") or []
    code = args[1] if len(args) > 1 else ""
    endpoint = endpoint_of(str(chan.get("name", "")))
    agent = roster.by_endpoint.get(endpoint or "")
    action, reason = parse_code(code, wrapups.work if wrapups is not None else AgentWork())
    if action == "done" and wrapups is None:
        action = None
    result = "refused"
    try:
        await ari.answer(chan_id)
        if agent is None or action is None:
            log.warning("feature.refused", endpoint=endpoint, code=code)
        else:
            try:
                if action == "login":
                    result = str(await pool.login(agent.id))
                elif action == "logout":
                    result = str(await pool.logout(agent.id))
                elif action == "pause":
                    result = await pool.pause(agent.id, reason)
                elif action == "done":
                    assert wrapups is not None
                    await wrapups.done(agent.id)
                    result = "available"
                else:
                    result = str(await pool.resume(agent.id))
                log.info("feature.done", agent=agent.id, action=action, result=result)
            except (AgentStateError, WrapUpError) as e:
                log.info("feature.not_allowed", agent=agent.id, action=action, error=str(e))
        if on_change is not None:
            await on_change()
        # a confirmation the agent hears: one beep done, an error tone refused
        tone = "beep" if result != "refused" else "beeperr"
        with contextlib.suppress(AriError, CallerGone):
            await session.play([f"sound:{tone}"], interruptible=False, lang="en")
    except CallerGone:
        pass
    finally:
        with contextlib.suppress(AriError, AriUnavailable):
            await session.hangup()
    return result
