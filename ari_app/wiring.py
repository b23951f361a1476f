"""The call path's states and their typed dependencies, wired in one place.

The app's start-up (ari_app/app.py) and the state tests (tests/support/replay.py)
both build their registry here, so a state is wired the same way in each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ari_app.announcements.play import Announcer
from ari_app.callback.deps import CallbackDeps
from ari_app.callback.offer import CallbackMenu
from ari_app.callback.service import CallbackService
from ari_app.callback.states import CallbackRing
from ari_app.config.models import HotlineConfig
from ari_app.conversation.consult import Consulting
from ari_app.conversation.deps import TalkDeps
from ari_app.conversation.states import Talking
from ari_app.interactions.context import CallContext
from ari_app.interactions.machine import Counters, Finish, State, StateRegistry
from ari_app.journey.states import (
    Answer,
    Chosen,
    EntityMenu,
    JourneyDeps,
    LanguageMenu,
    Route,
    WelcomeBack,
)
from ari_app.queue.deps import QueueDeps
from ari_app.queue.service import QueueService
from ari_app.queue.states import Queued, Ringing
from ari_app.supervision.service import SupervisionService


def wire_states(cfg: HotlineConfig, queue: QueueService, counters: Counters | None,
                announcer: Announcer | None = None,
                *, on_offer: Callable[[CallContext, str, str], Awaitable[None]] | None = None,
                supervision: SupervisionService | None = None,
                callbacks: CallbackService | None = None,
                ) -> tuple[StateRegistry, Callable[[], State]]:
    """Every feature's states with their typed dependencies, in one place: the app's
    start-up and the state tests (tests/support/replay.py) wire calls alike."""
    registry = StateRegistry()

    def requeue(entity: str, priority: int, transferred: bool) -> State:
        return Queued(entity=entity, priority=priority, transferred=transferred,
                      deps=queue_deps)

    def talk(entity: str, agent: str, started: float) -> State:
        return Talking(entity=entity, agent=agent, started=started, deps=talk_deps)

    talk_deps = TalkDeps(svc=queue, counters=counters, requeue=requeue, talk=talk,
                         app_name=cfg.ari.app,
                         on_talk=supervision.on_talk if supervision else None,
                         after_agent=supervision.after_agent if supervision else None)
    menu = None
    callback_deps = None
    if callbacks is not None:
        callback_deps = CallbackDeps(svc=queue, store=callbacks.store, settings=cfg.callback,
                                     connect=talk)
        if cfg.callback.enabled:
            menu = CallbackMenu(cfg.callback, callbacks.store, queue.waiting, cfg.timezone,
                                cfg.instance_id, callbacks.adopt)
    queue_deps = QueueDeps(svc=queue, counters=counters, connect=talk,
                           before_queue=announcer.before_queue if announcer else None,
                           on_offer=on_offer, callback=menu)
    journey_deps = JourneyDeps(
        counters=counters, handover=lambda entity: Queued(entity=entity, deps=queue_deps),
        before_menu=announcer.before_menu if announcer else None)
    for journey in (Answer, Route, WelcomeBack, LanguageMenu, EntityMenu, Chosen):
        registry.add(journey, journey_deps)
    for waiting in (Queued, Ringing):
        registry.add(waiting, queue_deps)
    for conversation in (Talking, Consulting):
        registry.add(conversation, talk_deps)
    if callback_deps is not None:
        registry.add(CallbackRing, callback_deps)
    registry.add(Finish)
    if supervision is not None:
        supervision.register(registry)
    return registry, lambda: Answer(deps=journey_deps)
