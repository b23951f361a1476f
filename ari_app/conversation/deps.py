"""What the conversation's states need, typed, built once at start-up (ari_app/app.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ari_app.interactions.context import CallContext
from ari_app.interactions.machine import Counters, State
from ari_app.queue.service import QueueService


@dataclass(frozen=True)
class TalkDeps:
    svc: QueueService
    counters: Counters | None
    # back into a queue: (entity, priority, transferred) -> the queue's waiting state
    requeue: Callable[[str, int, bool], State]
    # a conversation with an agent: (entity, agent id, epoch start) -> its state
    talk: Callable[[str, str, float], State]
    # the app name agent and consult legs are originated into
    app_name: str = "hotline"
    # supervision's hooks (ari_app/supervision), None where not wired: caller and
    # agent are bridged (start recording, make the call visible to supervisors);
    # the agent hung up first: (ctx, entity, agent) -> what follows (a survey) or None
    on_talk: Callable[[CallContext], Awaitable[None]] | None = None
    after_agent: Callable[[CallContext, str, str], State | None] | None = None
