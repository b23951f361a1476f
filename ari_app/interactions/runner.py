"""Runs one interaction from StasisStart to its last event: the state machine,
hang-ups, clean-up, and the events that make its record."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from ari_app.ari.client import AriClient, AriError, AriNotConnected, Event
from ari_app.config.models import HotlineConfig
from ari_app.interactions.context import CallContext
from ari_app.interactions.janitor import Janitor
from ari_app.interactions.machine import Counters, State, outcome_for_hangup
from ari_app.interactions.model import Interaction
from ari_app.interactions.router import EventRouter
from ari_app.interactions.session import AriUnavailable, CallerGone, CallSession
from ari_app.interactions.store import CallStore
from ari_app.logs import get_logger
from ari_app.records.events import Recorder, RecordEvent
from ari_app.records.model import CallRecord, HangupBy, Outcome, seconds_between, utcnow
from ari_app.sanitize import clean_text

log = get_logger("call")


class EventSink(Protocol):
    async def publish_events(self, events: list[RecordEvent]) -> object: ...


class CallStats:
    """Counters the metrics endpoint reads."""

    def __init__(self) -> None:
        self.started = 0
        self.ended = 0
        self.outcomes: dict[str, int] = {}


class InteractionRunner:
    def __init__(self, cfg: HotlineConfig, prompts: Any, store: CallStore, records: EventSink,
                 router: EventRouter, ari_ref: Callable[[], AriClient | None],
                 first: Callable[[], State], counters: Counters | None = None,
                 janitor: Janitor | None = None) -> None:
        self.cfg = cfg
        self.prompts = prompts
        self.store = store
        self.records = records
        self.router = router
        self.ari_ref = ari_ref
        self.first = first
        self.counters = counters
        self.janitor = janitor or Janitor(ari_ref)
        self.stats = CallStats()

    def new_interaction(self, ev: Event) -> Interaction:
        chan = ev.get("channel") or {}
        args = [clean_text(str(a), 32) for a in (ev.get("args") or [])]
        caller = clean_text(str((chan.get("caller") or {}).get("number", "")), 64)
        dialled = args[0] if args and args[0] else str((chan.get("dialplan") or {}).get("exten"))
        return self.interaction(uuid.uuid4().hex[:20], str(chan.get("id")), caller,
                                clean_text(dialled, 32), args)

    def interaction(self, call_id: str, channel_id: str, caller: str, dialled: str,
                    args: list[str]) -> Interaction:
        session = CallSession(call_id=call_id, channel_id=channel_id, caller=caller,
                              dialled=dialled, app_args=args, ari_ref=self.ari_ref)
        session.language = self.cfg.default_language
        interaction = Interaction(id=call_id, session=session, router=self.router)
        self.router.register(channel_id, interaction)
        return interaction

    def context(self, interaction: Interaction, recorder: Recorder) -> CallContext:
        return CallContext(interaction=interaction, recorder=recorder, cfg=self.cfg,
                           prompts=self.prompts, store=self.store, janitor=self.janitor)

    async def run(self, interaction: Interaction, first: State | None = None,
                  recorder: Recorder | None = None) -> None:
        """Run an interaction; `first` and `recorder` resume one the app was driving
        before a restart."""
        with structlog.contextvars.bound_contextvars(call_id=interaction.id):
            await self._run(interaction, first, recorder)

    async def _run(self, interaction: Interaction, state: State | None,
                   recorder: Recorder | None) -> None:
        self.stats.started += 1
        session = interaction.session
        resumed = recorder is not None
        if recorder is None:
            recorder = Recorder(CallRecord(
                call_id=interaction.id, app=self.cfg.instance_id,
                channel_uniqueid=session.channel_id, linkedid=session.channel_id,
                caller=session.caller, dialled=session.dialled, arrived_at=utcnow()))
        ctx = self.context(interaction, recorder)
        rec = ctx.record
        state = state or self.first()
        log.info("call.resume" if resumed else "call.start", caller=session.caller,
                 dialled=session.dialled, channel=session.channel_id, state=state.name)
        if not resumed:
            ctx.emit("arrived")
        if self.counters is not None:
            self.counters.menu_entered()
        phase = "menu"
        t0 = time.monotonic()
        try:
            while state is not None:
                phase = state.phase
                await ctx.checkpoint(state)
                log.debug("call.state", state=state.name)
                state = await state.run(ctx)
        except CallerGone as gone:
            if gone.cause in ("lost", "system"):
                # Asterisk lost or hung up the channel: not the caller's doing
                rec.hangup_by = HangupBy.SYSTEM
                rec.failure = ("channel lost while ARI was down" if gone.cause == "lost"
                               else "hung up by Asterisk (shutdown or system hang-up)")
                rec.outcome = rec.outcome if rec.outcome == Outcome.ANSWERED else Outcome.FAILED
            else:
                rec.hangup_by = rec.hangup_by or (HangupBy.CALLER if gone.cause != "app"
                                                  else HangupBy.APP)
                rec.outcome = outcome_for_hangup(phase, rec) or Outcome.FAILED
        except asyncio.CancelledError:
            # the drain timeout ran out at shutdown: the record says so, then stop
            rec.outcome = Outcome.FAILED
            rec.hangup_by = HangupBy.SYSTEM
            rec.failure = "app shut down (drain timeout)"
            raise
        except (AriUnavailable, AriNotConnected):
            rec.outcome = rec.outcome or Outcome.FAILED
            rec.failure = "ARI connection lost during the call"
            rec.hangup_by = HangupBy.SYSTEM
        except AriError as e:
            # an answered call stays answered: the citizen was served, the failure
            # after it is recorded beside that
            rec.outcome = rec.outcome if rec.outcome == Outcome.ANSWERED else Outcome.FAILED
            rec.failure = str(e)[:500]
            rec.hangup_by = HangupBy.APP
            log.warning("call.ari_error", error=str(e))
        except Exception as e:
            rec.outcome = rec.outcome if rec.outcome == Outcome.ANSWERED else Outcome.FAILED
            rec.failure = f"{type(e).__name__}: {e}"[:500]
            rec.hangup_by = HangupBy.APP
            log.exception("call.crashed")
        finally:
            await self._finish(ctx, t0)

    async def _finish(self, ctx: CallContext, t0: float) -> None:
        """Close the interaction. Runs after every ending, so no step may raise out of
        it: one call's trouble here must never reach another call."""
        interaction, session, rec = ctx.interaction, ctx.session, ctx.record
        await self.release(interaction)
        if session.gone is None:
            try:
                await session.hangup()
            except (AriError, AriUnavailable):
                self.janitor.later("channel", session.channel_id)
        rec.ended_at = utcnow()
        if self.counters is not None:
            try:
                _count(self.counters, rec)
            except Exception as e:  # noqa: BLE001 - figures must not cost a record
                log.warning("call.count_failed", error=repr(e))
        ctx.emit("ended")
        await self.records.publish_events(ctx.recorder.take())
        await self.store.finish(interaction.id)
        self.stats.ended += 1
        key = rec.outcome.value if rec.outcome else "unknown"
        self.stats.outcomes[key] = self.stats.outcomes.get(key, 0) + 1
        log.info("call.outcome", outcome=key, language=rec.language,
                 language_source=rec.language_source, entity=rec.entity,
                 entity_path=rec.entity_path, digits=rec.digits, retries=rec.menu_retries,
                 menu_seconds=rec.menu_seconds, agent=rec.agent, site=rec.site,
                 speed_of_answer=rec.speed_of_answer, hangup_by=rec.hangup_by,
                 seconds=round(time.monotonic() - t0, 3))

    async def release(self, interaction: Interaction) -> None:
        """Hang up every leg but the caller's and destroy every bridge still held
        (what Asterisk cannot be told now, the janitor keeps trying)."""
        for role in [r for r in interaction.legs if r.value != "caller"]:
            leg = interaction.drop_leg(role)
            if leg is not None:
                await self.janitor.remove("channel", leg.channel_id)
        for purpose in list(interaction.bridges):
            bridge = interaction.drop_bridge(purpose)
            if bridge is not None:
                await self.janitor.remove("bridge", bridge)
        self.router.unregister(interaction.session.channel_id)


def _count(counters: Counters, rec: CallRecord) -> None:
    """The live counters' view of how this call ended (answers are counted as they happen)."""
    if rec.menu_left_at is None:
        counters.menu_left()
    if rec.outcome == Outcome.ABANDONED_IN_MENU:
        counters.abandoned_in_menu()
    elif rec.outcome == Outcome.ABANDONED_IN_QUEUE:
        waited = seconds_between(rec.queue_joined_at, rec.ended_at) or 0.0
        counters.abandoned_in_queue(waited)
    elif rec.outcome is not None and rec.outcome != Outcome.ANSWERED:
        counters.outcome(rec.outcome.value)
