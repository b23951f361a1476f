"""The hooks the journey and the queue call (wired in app.py as typed callables).

Global: before the entity menu, in the caller's language once it is known (a
number with its own language, a remembered caller, or the language menu's
choice): the center has nine languages, and an emergency message in the number's
default language is noise to the callers who then press another language.
Per entity: when the caller joins that entity's queue (they keep their place
while it plays; an agent who frees up stops it), or before the "nobody can
serve" message when nobody can.

Each plays once per call: a caller sent back to a menu is not told again.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from ari_app.announcements.cache import AnnouncementCache, Playable
from ari_app.announcements.model import GLOBAL
from ari_app.interactions.context import CallContext
from ari_app.logs import get_logger

log = get_logger("announcements")


@dataclass(frozen=True)
class Announcer:
    cache: AnnouncementCache

    async def before_menu(self, ctx: CallContext) -> None:
        await self._play(ctx, GLOBAL, None)

    async def before_queue(self, ctx: CallContext, entity: str,
                           stop_on: asyncio.Future[Any] | None) -> None:
        await self._play(ctx, entity, stop_on)

    async def _play(self, ctx: CallContext, scope: str,
                    stop_on: asyncio.Future[Any] | None) -> None:
        found: Playable | None = self.cache.playable(scope, ctx.language)
        if found is None:
            return
        path = found.media.removeprefix("sound:")
        if any(p.endswith(path) for p in ctx.session.prompts):
            return  # heard already in this call
        t0 = time.monotonic()
        # an emergency message is heard whole: keys pressed meanwhile wait for the menu
        await ctx.session.play([found.media], interruptible=False, stop_on=stop_on)
        log.info("announcement.played", scope=scope, id=found.announcement.id,
                 lang=found.lang, media=found.media, seconds=found.seconds,
                 played_seconds=round(time.monotonic() - t0, 2),
                 stopped=bool(stop_on is not None and stop_on.done()))
