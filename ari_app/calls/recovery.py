"""Picking calls up again after the app restarts (SIGKILL, crash, deploy).

Asterisk keeps a Stasis application's channels and bridges while the app is
away: callers in a bridge go on talking, callers on hold go on hearing music.
What the app needs to carry on is in Redis: each call's last state and its
record, checkpointed before every step. On reconnect the app compares those
checkpoints with Asterisk's own channel list and, for each call:

- still there: rebuilds the state and resumes it. A menu state plays its menu
  again; a queued caller re-joins with the original arrival time (same place);
  a caller whose agent was ringing goes back to the head of the queue (the
  ringing leg is hung up and the agent freed); a bridged call goes on, and its
  record is completed when it ends.
- gone: the call ended while the app was away. Its record is completed with
  what is known (outcome from where the caller was, the end time being when the
  app found out) and its agent, queue place and bridge are cleaned up.

Channels that entered our Stasis application but never reached a first
checkpoint are hung up, so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ari_app.ari.client import AriClient, AriError
from ari_app.calls.machine import Finish, State, outcome_for_hangup
from ari_app.calls.session import CallSession
from ari_app.calls.store import CallStore
from ari_app.journey.states import Answer, Chosen, EntityMenu, LanguageMenu, Route, WelcomeBack
from ari_app.logs import get_logger
from ari_app.queue.service import QueueService
from ari_app.queue.states import Queued, Ringing, Talking
from ari_app.records.model import CallRecord, HangupBy, Outcome, utcnow

log = get_logger("recovery")

STATES: dict[str, type[Any]] = {cls.name: cls for cls in (
    Answer, Route, WelcomeBack, LanguageMenu, EntityMenu, Chosen, Queued, Ringing, Talking,
    Finish)}


@dataclass
class RecoveryReport:
    resumed: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    foreign: int = 0


def rebuild(name: str, data: dict[str, Any]) -> State:
    cls = STATES.get(name)
    if cls is None:
        raise ValueError(f"unknown state {name!r} in a checkpoint")
    state: State = cls(**data)
    return state


def _ours(chan: dict[str, Any], app: str) -> bool:
    data = str((chan.get("dialplan") or {}).get("app_data", ""))
    return data == app or data.startswith(app + ",")


async def recover(instance: str, app: str, client: AriClient, store: CallStore,
                  queue: QueueService,
                  publish: Callable[[CallRecord], Any],
                  resume: Callable[[CallSession, State, CallRecord], None],
                  new_session: Callable[[str, dict[str, Any], CallRecord], CallSession],
                  known: set[str]) -> RecoveryReport:
    report = RecoveryReport()
    channels = {c["id"]: c for c in await client.channels()}
    checkpoints = await store.active_calls()
    claimed: set[str] = set(known)
    for call_id, cp in checkpoints.items():
        try:
            rec = CallRecord.model_validate_json(cp["record"])
            state = rebuild(cp["state"], json.loads(cp.get("data") or "{}"))
        except (KeyError, ValueError) as e:
            log.warning("recovery.bad_checkpoint", call=call_id, error=str(e))
            await store.finish(call_id)
            continue
        if rec.app != instance:
            report.foreign += 1
            continue
        if rec.channel_uniqueid in known:
            continue  # a call this process is already driving
        claimed.add(rec.channel_uniqueid)
        legs = [f"{call_id}-a{i}" for i in range(1, len(rec.offers) + 1)]
        claimed.update(legs)
        if rec.channel_uniqueid in channels:
            chan = channels[rec.channel_uniqueid]
            state = await _resumable(client, queue, state, chan, channels, call_id)
            session = new_session(call_id, chan, rec)
            if isinstance(state, Talking) and state.leg not in channels:
                # the agent hung up while the app was away
                session.deliver({"type": "ChannelDestroyed", "channel": {"id": state.leg}})
            resume(session, state, rec)
            report.resumed.append(call_id)
        else:
            await _ended(client, queue, state, rec, legs, channels)
            await publish(rec)
            await store.finish(call_id)
            report.ended.append(call_id)
    for chan_id, chan in channels.items():
        if chan_id not in claimed and _ours(chan, app):
            with contextlib.suppress(AriError):
                await client.hangup(chan_id)
            report.orphans.append(chan_id)
    log.info("recovery.done", resumed=len(report.resumed), ended=len(report.ended),
             orphans=len(report.orphans), foreign=report.foreign)
    return report


async def _resumable(client: AriClient, queue: QueueService, state: State,
                     chan: dict[str, Any], channels: dict[str, Any], call_id: str) -> State:
    if isinstance(state, Answer) and chan.get("state") == "Up":
        return Route()
    if isinstance(state, Ringing):
        leg_ids = [c for c in channels if c.startswith(f"{call_id}-a")]
        for leg in leg_ids:
            with contextlib.suppress(AriError):
                await client.hangup(leg)
        await queue.pool.unoffer(state.agent, call_id)
        await queue.dispatcher.wake_all()
        return Queued(entity=state.entity, arrival=state.arrival, priority=state.priority)
    return state


async def _ended(client: AriClient, queue: QueueService, state: State, rec: CallRecord,
                 legs: list[str], channels: dict[str, Any]) -> None:
    """Close the books on a call that ended while the app was away."""
    rec.ended_at = utcnow()
    rec.hangup_by = rec.hangup_by or HangupBy.SYSTEM
    rec.failure = "ended while the app was restarting; ended_at is when the app found out"
    rec.outcome = outcome_for_hangup(state.phase, rec) or Outcome.FAILED
    if isinstance(state, Queued | Ringing):
        with contextlib.suppress(Exception):
            await queue.waiting.remove(state.entity, rec.call_id)
    if isinstance(state, Ringing):
        await queue.pool.unoffer(state.agent, rec.call_id)
    if isinstance(state, Talking):
        wrapup = queue.settings.wrapup_seconds
        rec.wrapup_seconds = wrapup
        await queue.pool.release(state.agent, wrapup, rec.call_id)
        with contextlib.suppress(AriError):
            await client.destroy_bridge(state.bridge)
    for leg in legs:
        if leg in channels:
            with contextlib.suppress(AriError):
                await client.hangup(leg)
    await queue.dispatcher.wake_all()
