"""The app-owned queue: waiting callers, routing steps, expected wait, settings."""

from ari_app.queue.estimate import WaitEstimator, spoken_wait
from ari_app.queue.routing import CandidateQuery, next_step_in, settings_of, steps_for
from ari_app.queue.settings import MessageAndHangup, QueueSettings, RoutingSteps, ToEntity
from ari_app.queue.waiting import WaitingCaller, WaitingQueues

__all__ = [
    "CandidateQuery",
    "MessageAndHangup",
    "QueueSettings",
    "RoutingSteps",
    "ToEntity",
    "WaitEstimator",
    "WaitingCaller",
    "WaitingQueues",
    "next_step_in",
    "settings_of",
    "spoken_wait",
    "steps_for",
]
