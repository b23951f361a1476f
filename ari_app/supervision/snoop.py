"""Listen, whisper and barge: a supervisor joins a live conversation from their phone.

The app rings the supervisor's phone (an agent id in `queue.supervisors`) and
puts it in a bridge of its own with an ARI snoop channel on the agent's leg:

- listen:  the snoop hears both directions (spy=both) and says nothing;
- whisper: the snoop hears both and speaks into what the agent hears only
           (whisper=out): the caller never hears the supervisor;
- barge:   the supervisor's phone joins the conversation's own bridge: all three talk.

A mode change replaces the snoop (Asterisk cannot turn one around). The
supervisor's leg and the snoop are legs of the interaction (roles supervisor and
snoop) and the supervisor's bridge is its bridge `supervision`, so whatever ends
the call (the caller hangs up, a restart) releases them with the rest. When the
agent's leg goes (the agent hung up, a transfer) or the supervisor hangs up,
the supervision ends at once. Every action is on the call's record
(`supervision`: who, what, when) and an event of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from ari_app.ari.client import AriError, Event
from ari_app.config.models import HotlineConfig
from ari_app.interactions.context import CallContext
from ari_app.interactions.model import Role
from ari_app.interactions.session import AriUnavailable
from ari_app.logs import get_logger
from ari_app.queue.states import dial_string
from ari_app.records.model import SupervisorAction, utcnow

log = get_logger("supervision.snoop")
# action -> (spy, whisper) of the snoop channel on the agent's leg
SNOOP_DIRECTIONS = {"listen": ("both", "none"), "whisper": ("both", "out")}
ACTIONS = ("listen", "whisper", "barge", "leave")
GONE = ("StasisEnd", "ChannelDestroyed", "ChannelHangupRequest")
SNOOP_START_TIMEOUT = 5.0


class SupervisionError(Exception):
    """A request the app refuses; `status` is the HTTP status the API answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Watch:
    call_id: str
    supervisor: str
    leg: str  # the supervisor's phone
    agent: str | None
    agent_leg: str
    mode: str = ""


def alive(ctx: CallContext) -> bool:
    """The interaction is still running (its caller's channel is still routed to it)."""
    i = ctx.interaction
    return ctx.session.gone is None and i.router is not None and \
        i.router.owner(ctx.session.channel_id) is i


class Supervision:
    def __init__(self, cfg: HotlineConfig, ring_timeout: float, app_name: str) -> None:
        self.cfg = cfg
        self.ring_timeout = ring_timeout
        self.app_name = app_name
        self._agents = {a.id: a for a in cfg.agents}
        self._calls: dict[str, CallContext] = {}
        self._watches: dict[str, Watch] = {}
        self._waiting: dict[str, asyncio.Future[str]] = {}
        self._watched: dict[str, str] = {}  # agent or supervisor leg -> call id
        self._locks: dict[str, asyncio.Lock] = {}
        self._ends: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    # -- what the conversation and the event reader call ----------------------------
    async def on_talk(self, ctx: CallContext) -> None:
        for call_id in [c for c, x in self._calls.items() if not alive(x)]:
            self._forget(call_id)
        self._calls[ctx.interaction.id] = ctx

    def observe(self, ev: Event) -> None:
        """Every ARI event passes here before the router: answers of supervisors'
        phones and snoops, and hang-ups that end a supervision. Never raises."""
        try:
            kind = ev.get("type")
            chan = (ev.get("channel") or {}).get("id")
            if not chan:
                return
            fut = self._waiting.get(chan)
            if fut is not None and not fut.done():
                if kind == "StasisStart":
                    fut.set_result("up")
                elif kind in GONE:
                    fut.set_result("gone")
            call_id = self._watched.get(chan)
            if call_id is not None and kind in GONE:
                self._watched.pop(chan, None)
                self._ends.put_nowait((call_id, "agent_gone" if self._is_agent(call_id, chan)
                                       else "supervisor_hung_up"))
        except Exception as e:  # noqa: BLE001 - the event reader must never stop
            log.warning("supervision.observe_failed", error=repr(e)[:200])

    def _is_agent(self, call_id: str, chan: str) -> bool:
        w = self._watches.get(call_id)
        return w is not None and w.agent_leg == chan

    async def run(self, stop: asyncio.Event) -> None:
        """Ends supervisions whose agent or supervisor hung up, one at a time."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                getting = asyncio.ensure_future(self._ends.get())
                await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await getting
                    break
                call_id, reason = getting.result()
                try:
                    await self.end(call_id, reason)
                except Exception as e:  # noqa: BLE001 - one call's trouble stays its own
                    log.warning("supervision.end_failed", call_id=call_id, error=repr(e)[:200])
        finally:
            stopping.cancel()

    # -- what the console asks ----------------------------------------------------------
    def live(self) -> list[dict[str, Any]]:
        """The answered calls this instance drives, for the console."""
        out = []
        for call_id, ctx in list(self._calls.items()):
            if not alive(ctx):
                continue
            leg = ctx.interaction.leg(Role.AGENT)
            w = self._watches.get(call_id)
            rec = ctx.record
            out.append({"call_id": call_id, "entity": rec.entity, "language": rec.language,
                        "agent": leg.agent if leg else None,
                        "agent_answered_at": rec.agent_answered_at,
                        "recording": rec.recording,
                        "supervisor": w.supervisor if w else None,
                        "mode": w.mode if w else None})
        return out

    async def act(self, call_id: str, supervisor: str, action: str) -> dict[str, Any]:
        if action not in ACTIONS:
            raise SupervisionError(400, f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
        if supervisor not in self.cfg.queue.supervisors:
            raise SupervisionError(403, f"{supervisor!r} is not a supervisor (queue.supervisors)")
        lock = self._locks.setdefault(call_id, asyncio.Lock())
        async with lock:
            ctx = self._calls.get(call_id)
            if ctx is None or not alive(ctx):
                raise SupervisionError(404, f"no live call {call_id!r} on this instance")
            w = self._watches.get(call_id)
            if w is not None and w.supervisor != supervisor:
                raise SupervisionError(409, f"call {call_id} is supervised by {w.supervisor}")
            if action == "leave":
                if w is None:
                    raise SupervisionError(409, f"{supervisor} is not on call {call_id}")
                await self._end(ctx, w, "left")
                return {"call_id": call_id, "supervisor": supervisor, "mode": None}
            busy = [c for c, x in self._watches.items()
                    if x.supervisor == supervisor and c != call_id]
            if busy:
                raise SupervisionError(409, f"{supervisor} is supervising call {busy[0]}")
            agent_leg = ctx.interaction.leg(Role.AGENT)
            main = ctx.interaction.bridges.get("main")
            if agent_leg is None or agent_leg.status != "up" or main is None:
                raise SupervisionError(409, f"call {call_id} has no agent to supervise now")
            try:
                if w is None:
                    w = await self._connect(ctx, supervisor, agent_leg.channel_id,
                                            agent_leg.agent)
                if w.mode != action:
                    await self._switch(ctx, w, action, main)
            except (AriError, AriUnavailable) as e:
                log.warning("supervision.failed", call_id=call_id, action=action,
                            error=str(e)[:200])
                w = self._watches.get(call_id)
                if w is not None:
                    await self._end(ctx, w, "failed")
                raise SupervisionError(502, f"Asterisk refused the {action}: {e}") from None
            self._note(ctx, supervisor, action, w.agent)
            return {"call_id": call_id, "supervisor": supervisor, "mode": w.mode}

    async def end(self, call_id: str, reason: str) -> None:
        lock = self._locks.setdefault(call_id, asyncio.Lock())
        async with lock:
            ctx = self._calls.get(call_id)
            w = self._watches.get(call_id)
            if ctx is not None and w is not None:
                await self._end(ctx, w, reason)

    # -- the legs ---------------------------------------------------------------------
    async def _connect(self, ctx: CallContext, supervisor: str, agent_leg: str,
                       agent: str | None) -> Watch:
        """Ring the supervisor's phone; returns once it answered (in Stasis)."""
        i, ari = ctx.interaction, ctx.session.ari
        leg = i.new_id("s")
        i.add_leg(Role.SUPERVISOR, leg, agent=supervisor)
        answered = self._expect(leg)
        try:
            await ari.originate(endpoint=dial_string(self.cfg.site, self._agents[supervisor]),
                                channel_id=leg, app=self.app_name,
                                app_args=f"supervisor,{i.id}",
                                ring_seconds=int(self.ring_timeout),
                                caller_id=f'"Supervision" <{ctx.record.caller or "109"}>')
            result = await asyncio.wait_for(answered, self.ring_timeout + 5)
        except TimeoutError:
            result = "no_answer"
        except (AriError, AriUnavailable):
            await self._drop(ctx, Role.SUPERVISOR)
            raise
        finally:
            self._waiting.pop(leg, None)
        if result != "up":
            await self._drop(ctx, Role.SUPERVISOR)
            raise SupervisionError(409, f"{supervisor}'s phone did not answer")
        i.legs[Role.SUPERVISOR].status = "up"
        w = Watch(i.id, supervisor, leg, agent, agent_leg)
        self._watches[i.id] = w
        self._watched[leg] = i.id
        self._watched[agent_leg] = i.id
        bridge = i.new_id("br")
        i.add_bridge("supervision", bridge)  # ours before it exists: see queue._bridge
        await ari.create_bridge(bridge, f"supervision-{i.id}", "mixing")
        return w

    async def _switch(self, ctx: CallContext, w: Watch, action: str, main: str) -> None:
        i, ari = ctx.interaction, ctx.session.ari
        mine = i.bridges["supervision"]
        old = i.drop_leg(Role.SNOOP)
        if action == "barge":
            if w.mode in SNOOP_DIRECTIONS:
                await ari.remove_from_bridge(mine, [w.leg])
            await ari.add_to_bridge(main, [w.leg])
        else:
            if w.mode == "barge":
                await ari.remove_from_bridge(main, [w.leg])
            snoop = i.new_id("n")
            i.add_leg(Role.SNOOP, snoop, agent=w.agent)
            started = self._expect(snoop)
            spy, whisper = SNOOP_DIRECTIONS[action]
            try:
                # the directions ride in the args too, so ARI's channel list shows them
                await ari.snoop(w.agent_leg, snoop, spy, whisper, self.app_name,
                                f"snoop,{i.id},{action},spy={spy},whisper={whisper}")
                result = await asyncio.wait_for(started, SNOOP_START_TIMEOUT)
            except TimeoutError:
                result = "gone"
            finally:
                self._waiting.pop(snoop, None)
            if result != "up":
                raise AriError("channels.snoop", None, "the snoop channel never started")
            i.legs[Role.SNOOP].status = "up"
            joining = [snoop] if w.mode in SNOOP_DIRECTIONS else [snoop, w.leg]
            await ari.add_to_bridge(mine, joining)
        if old is not None:
            await ctx.hang_up(old.channel_id)
        w.mode = action
        log.info("supervision.mode", supervisor=w.supervisor, mode=action, call_id=i.id)

    async def _end(self, ctx: CallContext, w: Watch, reason: str) -> None:
        self._watches.pop(w.call_id, None)
        self._watched.pop(w.leg, None)
        self._watched.pop(w.agent_leg, None)
        for role in (Role.SNOOP, Role.SUPERVISOR):
            await self._drop(ctx, role)
        bridge = ctx.interaction.drop_bridge("supervision")
        if bridge is not None:
            await ctx.destroy_bridge(bridge)
        self._note(ctx, w.supervisor, "leave", w.agent, reason)
        log.info("supervision.ended", supervisor=w.supervisor, reason=reason, call_id=w.call_id)

    async def _drop(self, ctx: CallContext, role: Role) -> None:
        leg = ctx.interaction.drop_leg(role)
        if leg is not None:
            await ctx.hang_up(leg.channel_id)

    def _expect(self, channel_id: str) -> asyncio.Future[str]:
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting[channel_id] = fut
        return fut

    def _note(self, ctx: CallContext, supervisor: str, action: str, agent: str | None,
              reason: str | None = None) -> None:
        """Who did what when, on the call's record and as an event of its own."""
        if not alive(ctx):
            return  # the call's last event is out: the log keeps it
        ctx.record.supervision.append(SupervisorAction(
            at=utcnow(), supervisor=supervisor, action=action, agent=agent, reason=reason))
        ctx.emit(f"supervisor_{action}")
        log.info("supervision.action", supervisor=supervisor, action=action, agent=agent,
                 reason=reason, call_id=ctx.interaction.id)

    def _forget(self, call_id: str) -> None:
        self._calls.pop(call_id, None)
        self._locks.pop(call_id, None)
        w = self._watches.pop(call_id, None)
        if w is not None:
            self._watched.pop(w.leg, None)
            self._watched.pop(w.agent_leg, None)
