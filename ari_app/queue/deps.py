"""What the queue's states need, typed, built once at start-up (ari_app/app.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ari_app.agents.pool import Offer
from ari_app.interactions.machine import Counters, State
from ari_app.queue.service import QueueService

if TYPE_CHECKING:
    from ari_app.interactions.context import CallContext


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
    callback: CallbackOffer | None = None
