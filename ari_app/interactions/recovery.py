"""Picking interactions up again after the app restarts (SIGKILL, crash, deploy).

Asterisk keeps a Stasis application's channels and bridges while the app is
away: callers in a bridge go on talking, callers on hold go on hearing music.
What the app needs to carry on is in Redis: each interaction's last state, its
legs and bridges, its record and the events not yet published, checkpointed
before every step. On reconnect the app compares those checkpoints with
Asterisk's own channel list and, for each interaction:

- still there: rebuilds the state and resumes it; the state itself decides how
  (journey states play their menu again, a queued caller re-joins with the
  original arrival time, a ringing offer goes back to the head of the queue, a
  bridged call goes on);
- gone: the call ended while the app was away. The state closes its books (its
  agent, queue place), the legs and bridges still held are released, and the
  record is completed with what is known;
- unreadable or from another version of the program: that one call is ended
  cleanly (hung up, failure recorded) and recovery goes on with the others.

Channels that entered our Stasis application and belong to no interaction are
hung up, so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from ari_app.ari.client import AriClient, AriError
from ari_app.interactions.machine import State, StateRegistry, outcome_for_hangup
from ari_app.interactions.model import Interaction
from ari_app.interactions.runner import InteractionRunner
from ari_app.interactions.store import CHECKPOINT_VERSION
from ari_app.logs import get_logger
from ari_app.records.events import Recorder
from ari_app.records.model import CallRecord, HangupBy, Outcome, iso, utcnow

log = get_logger("recovery")

# starts a recovered interaction's task in the owner's task group
Resume = Callable[[Interaction, State, Recorder], None]


@dataclass
class RecoveryReport:
    resumed: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    foreign: int = 0


@dataclass
class Recovery:
    instance: str
    app: str
    runner: InteractionRunner
    registry: StateRegistry

    async def run(self, client: AriClient, known: set[str],
                  resume: Resume) -> RecoveryReport:
        """`resume(interaction, state, recorder)` starts the interaction's task."""
        report = RecoveryReport()
        channels = {str(c["id"]): c for c in await client.channels()}
        claimed: set[str] = set(known)
        for call_id, cp in (await self.runner.store.active_calls()).items():
            with structlog.contextvars.bound_contextvars(call_id=call_id):
                try:
                    await self._one(client, call_id, cp, channels, claimed, known, resume,
                                    report)
                except Exception as e:
                    log.exception("recovery.call_failed", error=repr(e))
                    report.unreadable.append(call_id)
                    await self._end_unreadable(client, call_id, cp, repr(e), claimed)
        for chan_id, chan in channels.items():
            # a channel an interaction took since the list was read is no orphan
            if chan_id not in claimed and _ours(chan, self.app) and \
                    self.runner.router.owner(chan_id) is None:
                with contextlib.suppress(AriError):
                    await client.hangup(chan_id)
                report.orphans.append(chan_id)
        log.info("recovery.done", resumed=len(report.resumed), ended=len(report.ended),
                 unreadable=len(report.unreadable), orphans=len(report.orphans),
                 foreign=report.foreign)
        return report

    async def _one(self, client: AriClient, call_id: str, cp: dict[str, str],
                   channels: dict[str, dict[str, Any]],
                   claimed: set[str], known: set[str], resume: Resume,
                   report: RecoveryReport) -> None:
        if cp.get("v") != str(CHECKPOINT_VERSION):
            raise ValueError(f"checkpoint version {cp.get('v')!r}, this program reads "
                             f"{CHECKPOINT_VERSION}")
        rec = CallRecord.model_validate_json(cp["record"])
        if rec.app != self.instance:
            report.foreign += 1
            return
        if rec.channel_uniqueid in known:
            return  # an interaction this process is already driving
        interaction = self.runner.interaction(call_id, rec.channel_uniqueid, rec.caller,
                                              rec.dialled, [rec.dialled])
        try:
            interaction.restore(json.loads(cp["interaction"]))
            recorder = Recorder.restore(rec, json.loads(cp["recorder"]))
            state = self.registry.rebuild(cp["state"], json.loads(cp.get("data") or "{}"))
        except Exception:
            self.runner.router.unregister(rec.channel_uniqueid)
            for leg in interaction.legs.values():
                claimed.add(leg.channel_id)
            await self.runner.release(interaction)
            raise
        claimed.update(interaction.channel_ids())
        session = interaction.session
        session.language = rec.language or self.runner.cfg.default_language
        session.prompts = list(rec.prompts)
        session.digits = list(rec.digits)
        ctx = self.runner.context(interaction, recorder)
        if rec.channel_uniqueid in channels:
            hook = getattr(state, "resume", None)
            if hook is not None:
                state = await hook(ctx, channels)
            log.info("recovery.resume", was=cp["state"], now=state.name)
            resume(interaction, state, recorder)
            report.resumed.append(call_id)
            return
        hook = getattr(state, "abandon", None)
        if hook is not None:
            await hook(ctx, channels)
        await self.runner.release(interaction)
        rec.ended_at = utcnow()
        rec.hangup_by = rec.hangup_by or HangupBy.SYSTEM
        rec.failure = "ended while the app was restarting; ended_at is when the app found out"
        rec.outcome = outcome_for_hangup(state.phase, rec) or Outcome.FAILED
        ctx.emit("ended")
        await self.runner.records.publish_events(recorder.take())
        await self.runner.store.finish(call_id)
        report.ended.append(call_id)

    async def _end_unreadable(self, client: AriClient, call_id: str, cp: dict[str, str],
                              why: str, claimed: set[str]) -> None:
        """End a call whose checkpoint this program cannot read: hang its channels
        up and record the failure, with whatever of the record can be read."""
        try:
            rec = CallRecord.model_validate_json(cp.get("record") or "")
        except ValueError:
            rec = CallRecord(call_id=call_id, app=self.instance,
                             arrived_at=_at(cp.get("updated")))
        channels = {rec.channel_uniqueid} if rec.channel_uniqueid else set()
        with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
            legs = json.loads(cp.get("interaction") or "{}").get("legs") or []
            channels.update(str(leg["channel"]) for leg in legs)
        for chan in channels:
            claimed.add(chan)
            with contextlib.suppress(AriError):
                await client.hangup(chan)
        rec.ended_at = utcnow()
        rec.outcome = Outcome.FAILED
        rec.hangup_by = HangupBy.APP
        rec.failure = f"checkpoint unreadable after a restart: {why}"[:500]
        try:
            recorder = Recorder.restore(rec, json.loads(cp.get("recorder") or "{}"))
        except (ValueError, TypeError, AttributeError):
            recorder = Recorder(rec, 0, {})
        recorder.emit("ended")
        await self.runner.records.publish_events(recorder.take())
        await self.runner.store.finish(call_id)


def _at(updated: str | None) -> str:
    try:
        return iso(datetime.fromtimestamp(float(updated or ""), UTC))
    except ValueError:
        return utcnow()


def _ours(chan: dict[str, Any], app: str) -> bool:
    data = str((chan.get("dialplan") or {}).get("app_data", ""))
    return data == app or data.startswith(app + ",")
