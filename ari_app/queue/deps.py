"""What the queue's states need, typed, built once at start-up (ari_app/app.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ari_app.interactions.context import CallContext
from ari_app.interactions.machine import Counters, State
from ari_app.queue.service import QueueService


@dataclass(frozen=True)
class QueueDeps:
    svc: QueueService
    counters: Counters | None
    # the caller and the agent are bridged: (entity, agent id, epoch start) -> the
    # conversation's first state, from the package that owns conversations
    connect: Callable[[str, str, float], State]
    # a call is about to ring this agent: (call, agent id, entity), for the agent's
    # screen-pop (ari_app/desktop); must not raise and returns within half a second
    on_offer: Callable[[CallContext, str, str], Awaitable[None]] | None = None
