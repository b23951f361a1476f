"""The supervision feature as the app wires it: one object, built once in app.py,
that hands the conversation its hooks, registers its state, observes ARI events
and runs its jobs in the app's services task group."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ari_app.config.models import HotlineConfig
from ari_app.interactions.context import CallContext
from ari_app.interactions.machine import State, StateRegistry
from ari_app.logs import get_logger
from ari_app.records.events import RecordEvent
from ari_app.supervision.recording import CallRecording
from ari_app.supervision.retention import RetentionJob
from ari_app.supervision.snoop import Supervision
from ari_app.supervision.survey import Survey, SurveyDeps, survey_for

log = get_logger("supervision")


class SupervisionService:
    def __init__(self, cfg: HotlineConfig,
                 publish: Callable[[list[RecordEvent]], Awaitable[object]],
                 prompts_known: Callable[[str], set[str]]) -> None:
        settings = cfg.supervision
        self.settings = settings
        self.recording = CallRecording(settings.recording)
        self.snoop = Supervision(cfg, settings.ring_timeout, cfg.ari.app)
        self.retention = RetentionJob(settings.recording, publish)
        self.survey_deps = SurveyDeps(settings.survey, publish)
        self.after_agent: Callable[[CallContext, str, str], State | None] = \
            survey_for(self.survey_deps, prompts_known)

    async def on_talk(self, ctx: CallContext) -> None:
        await self.recording.start(ctx)
        await self.snoop.on_talk(ctx)

    def register(self, registry: StateRegistry) -> None:
        registry.add(Survey, self.survey_deps)

    @property
    def records(self) -> bool:
        rs = self.settings.recording
        return rs.share > 0 or any(v > 0 for v in rs.entities.values())

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.snoop.run(stop), name="supervision")
            if self.records:
                folder = self.settings.recording.directory / self.settings.recording.subdir
                try:
                    # Asterisk writes here but does not create its spool's recording dir
                    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
                except OSError as e:
                    log.warning("recording.directory_unusable", directory=str(folder),
                                error=str(e))
                tg.create_task(self.retention.run(stop), name="recording-retention")
