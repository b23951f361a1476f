"""What the queue's states need, typed, built once at start-up (ari_app/app.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ari_app.agents.pool import Offer
from ari_app.interactions.context import CallContext
from ari_app.interactions.machine import Counters, State
from ari_app.queue.service import QueueService


@dataclass(frozen=True)
class WaitCue:
    """Where a waiting caller stands when the callback is offered."""

    entity: str
    arrival: float
    priority: int
    expected: float | None  # the last expected-wait estimate, seconds


class CallbackOffer(Protocol):
    """The queued callback, offered to a waiting caller (ari_app/callback/offer.py)."""

    def offer_at(self, arrival: float) -> float | None:
        """When (epoch) to offer it by time waited; None: not by time."""

    def worth_offering(self, expected: float | None) -> bool:
        """Offer it now because the expected wait is long?"""

    async def offer(self, ctx: CallContext, cue: WaitCue,
                    agent_offer: asyncio.Future[Offer]) -> State | None:
        """Play the offer; the next state when a callback was booked (the caller's
        place now belongs to the ticket), None to keep holding."""


@dataclass(frozen=True)
class QueueDeps:
    svc: QueueService
    counters: Counters | None
    # the caller and the agent are bridged: (entity, agent id, epoch start) -> the
    # conversation's first state, from the package that owns conversations
    connect: Callable[[str, str, float], State]
    # plays the entity's runtime announcement as the caller joins its queue:
    # (context, entity, an offer that stops it early or None)
    before_queue: Callable[[CallContext, str, asyncio.Future[Any] | None],
                           Awaitable[None]] | None = None
    # a call is about to ring this agent: (call, agent id, entity), for the agent's
    # screen-pop (ari_app/desktop); must not raise and returns within half a second
    on_offer: Callable[[CallContext, str, str], Awaitable[None]] | None = None
    # offers a waiting caller the queued callback (ari_app/callback)
    callback: CallbackOffer | None = None
