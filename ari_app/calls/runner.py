"""Runs one call from StasisStart to its record: the state machine, hang-ups, clean-up."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from ari_app.ari.client import AriClient, AriError, Event
from ari_app.calls.context import CallContext
from ari_app.calls.machine import State, outcome_for_hangup, state_data
from ari_app.calls.router import EventRouter
from ari_app.calls.session import AriUnavailable, CallerGone, CallSession
from ari_app.calls.store import CallStore
from ari_app.config.models import HotlineConfig
from ari_app.journey.states import Answer
from ari_app.logs import get_logger
from ari_app.records.model import CallRecord, HangupBy, Outcome, seconds_between, utcnow
from ari_app.sanitize import clean_text

log = get_logger("call")


class RecordSink(Protocol):
    async def publish(self, rec: CallRecord) -> object: ...


class CallStats:
    """Counters the metrics endpoint reads."""

    def __init__(self) -> None:
        self.started = 0
        self.ended = 0
        self.outcomes: dict[str, int] = {}
        self.in_menu = 0


class CallRunner:
    def __init__(self, cfg: HotlineConfig, prompts: Any, store: CallStore, records: RecordSink,
                 router: EventRouter, ari_ref: Callable[[], AriClient | None],
                 services: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.prompts = prompts
        self.store = store
        self.records = records
        self.router = router
        self.ari_ref = ari_ref
        self.services = services or {}
        self.stats = CallStats()

    def new_session(self, ev: Event) -> CallSession:
        chan = ev.get("channel") or {}
        args = [clean_text(str(a), 32) for a in (ev.get("args") or [])]
        caller = clean_text(str((chan.get("caller") or {}).get("number", "")), 64)
        dialled = args[0] if args and args[0] else str((chan.get("dialplan") or {}).get("exten"))
        session = CallSession(
            call_id=uuid.uuid4().hex[:20], channel_id=str(chan.get("id")), caller=caller,
            dialled=clean_text(dialled, 32), app_args=args, ari_ref=self.ari_ref)
        session.language = self.cfg.default_language
        self.router.register(session.channel_id, session)
        return session

    async def run(self, session: CallSession, first: State | None = None,
                  record: CallRecord | None = None) -> None:
        """Run a call; `first` and `record` resume one the app was driving before a restart."""
        with structlog.contextvars.bound_contextvars(call_id=session.call_id):
            await self._run(session, first or Answer(), record)

    async def _run(self, session: CallSession, state: State | None,
                   record: CallRecord | None) -> None:
        self.stats.started += 1
        rec = record or CallRecord(
            call_id=session.call_id, app=self.cfg.instance_id,
            channel_uniqueid=session.channel_id,
            linkedid=session.channel_id, caller=session.caller, dialled=session.dialled,
            arrived_at=utcnow())
        ctx = CallContext(session=session, record=rec, cfg=self.cfg, prompts=self.prompts,
                          store=self.store, services=dict(self.services))
        log.info("call.resume" if record else "call.start", caller=session.caller,
                 dialled=session.dialled, channel=session.channel_id,
                 state=getattr(state, "name", None))
        counters = ctx.services.get("counters")
        if counters is not None:
            counters.menu_entered()
        phase = "menu"
        t0 = time.monotonic()
        try:
            while state is not None:
                phase = state.phase
                # the record carries what the caller heard and pressed so far, so a
                # restarted app continues it rather than starting it again
                rec.prompts = session.prompts[-200:]
                rec.digits = "".join(session.digits)[-200:]
                await self.store.checkpoint(session.call_id, state.name, state_data(state), rec)
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
        except AriUnavailable:
            rec.outcome = rec.outcome or Outcome.FAILED
            rec.failure = "ARI connection lost during the call"
            rec.hangup_by = HangupBy.SYSTEM
        except AriError as e:
            rec.outcome = Outcome.FAILED
            rec.failure = str(e)[:500]
            rec.hangup_by = HangupBy.APP
            log.warning("call.ari_error", error=str(e))
        except Exception as e:
            rec.outcome = Outcome.FAILED
            rec.failure = f"{type(e).__name__}: {e}"[:500]
            rec.hangup_by = HangupBy.APP
            log.exception("call.crashed")
        finally:
            self.router.unregister(session.channel_id)
            if session.gone is None:
                with contextlib.suppress(AriError, AriUnavailable):
                    await session.hangup()
            rec.ended_at = utcnow()
            rec.prompts = session.prompts[-200:]
            rec.digits = "".join(session.digits)[-200:]
            if counters is not None:
                _count(counters, rec)
            await self.records.publish(rec)
            await self.store.finish(session.call_id)
            self.stats.ended += 1
            key = rec.outcome.value if rec.outcome else "unknown"
            self.stats.outcomes[key] = self.stats.outcomes.get(key, 0) + 1
            log.info("call.outcome", outcome=key, language=rec.language,
                     language_source=rec.language_source, entity=rec.entity,
                     entity_path=rec.entity_path, digits=rec.digits, retries=rec.menu_retries,
                     menu_seconds=rec.menu_seconds, agent=rec.agent, site=rec.site,
                     speed_of_answer=rec.speed_of_answer, hangup_by=rec.hangup_by,
                     seconds=round(time.monotonic() - t0, 3))


def _count(counters: Any, rec: CallRecord) -> None:
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
