"""The records of a ticket's attempts, and of a ticket that ended without one.

Each attempt is an interaction with its own record (dialled = "callback"),
so the archive holds one row per attempt: who was rung, what the citizen's
phone did, and for the answered one the conversation. docs/records.md says
how reports count them.
"""

from __future__ import annotations

from ari_app.agents.pool import Offer
from ari_app.callback.numbers import masked
from ari_app.callback.store import Ticket
from ari_app.config.models import HotlineConfig
from ari_app.interactions.machine import State, StateRegistry
from ari_app.interactions.model import Interaction
from ari_app.interactions.runner import EventSink, InteractionRunner
from ari_app.records.events import Recorder
from ari_app.records.model import Callback, CallRecord, HangupBy, Outcome, utcnow

DIALLED = "callback"


def attempt_ids(ticket: Ticket) -> tuple[str, str]:
    """(call id, citizen leg id) of the ticket's next attempt: the member id it was
    offered under, fresh each time it lined up (callback/store.py)."""
    return ticket.member, f"{ticket.member}-cz"


def attempt_record(cfg: HotlineConfig, ticket: Ticket, call_id: str, channel: str,
                   attempt: int) -> CallRecord:
    return CallRecord(
        call_id=call_id, app=cfg.instance_id, channel_uniqueid=channel, linkedid=channel,
        caller=ticket.number, dialled=DIALLED, arrived_at=utcnow(), language=ticket.language,
        entity=ticket.entity, sector=cfg.sector_of(ticket.entity), entity_path=[ticket.entity],
        callback=Callback(ticket=ticket.id, number=masked(ticket.number),
                          requested_at=ticket.requested_at, of_call=ticket.of_call,
                          waited=ticket.waited, attempt=attempt, result="dialling"))


def ended_without_attempt(cfg: HotlineConfig, ticket: Ticket, result: str) -> Recorder:
    """A ticket closed by the service itself (expired): one record that says so."""
    call_id, _leg = attempt_ids(ticket)
    rec = attempt_record(cfg, ticket, call_id, "", ticket.attempts)
    assert rec.callback is not None
    rec.callback.result = result
    rec.outcome = Outcome.FAILED
    rec.hangup_by = HangupBy.APP
    rec.failure = f"callback {result} after {ticket.attempts} attempt(s)"
    rec.ended_at = utcnow()
    recorder = Recorder(rec)
    recorder.emit("ended")
    return recorder


def new_attempt(runner: InteractionRunner, registry: StateRegistry, ticket: Ticket,
                offer: Offer) -> tuple[Interaction, State, Recorder]:
    """An agent was offered a pending callback: the attempt's interaction, its first
    state (built by the registry, which holds the callback's deps) and its record."""
    attempt = ticket.attempts + 1
    call_id, channel = attempt_ids(ticket)
    interaction = runner.interaction(call_id, channel, ticket.number, DIALLED,
                                     [DIALLED, ticket.id])
    interaction.session.language = ticket.language  # the greeting in the citizen's language
    recorder = Recorder(attempt_record(runner.cfg, ticket, call_id, channel, attempt))
    recorder.emit("callback_attempt")
    state = registry.rebuild("callback_ring", {"ticket": ticket.id, "agent": offer.agent.id,
                                               "step": offer.step, "attempt": attempt})
    return interaction, state, recorder


async def publish_ended(sink: EventSink, cfg: HotlineConfig, ticket: Ticket,
                        result: str) -> None:
    await sink.publish_events(ended_without_attempt(cfg, ticket, result).take())
