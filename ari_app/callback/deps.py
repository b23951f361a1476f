"""What the callback's states need, typed, built once at start-up (ari_app/app.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ari_app.callback.store import CallbackStore
from ari_app.config.callback import CallbackSettings
from ari_app.interactions.machine import State
from ari_app.queue.service import QueueService


@dataclass(frozen=True)
class CallbackDeps:
    svc: QueueService
    store: CallbackStore
    settings: CallbackSettings
    # the citizen and the agent are bridged: (entity, agent id, epoch start) -> the
    # conversation's first state (conversation/)
    connect: Callable[[str, str, float], State]
