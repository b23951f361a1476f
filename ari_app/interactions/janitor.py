"""Channels and bridges the app let go of but could not remove from Asterisk.

A hang-up or a bridge's destruction can fail (a lost answer, an ARI outage): the
channel or bridge would then stay in Asterisk with nobody to remove it. The
janitor keeps trying, a bounded number of times, and says so in the log when it
gives up, so nothing of ours is left behind silently."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ari_app.ari.client import AriClient, AriError
from ari_app.logs import get_logger

log = get_logger("janitor")


class Janitor:
    def __init__(self, ari_ref: Callable[[], AriClient | None], attempts: int = 10,
                 interval: float = 1.0) -> None:
        self._ari_ref = ari_ref
        self.attempts = attempts
        self.interval = interval
        self._pending: dict[tuple[str, str], int] = {}
        self.gave_up = 0

    def later(self, kind: str, ident: str) -> None:
        """`kind` is "channel" or "bridge"."""
        self._pending[(kind, ident)] = self.attempts

    def __len__(self) -> int:
        return len(self._pending)

    async def _remove_once(self, client: AriClient, kind: str, ident: str) -> None:
        if kind == "channel":
            await client.hangup(ident)
        else:
            await client.destroy_bridge(ident)

    async def remove(self, kind: str, ident: str) -> bool:
        """Try once now; on failure keep trying in the background. True if removed."""
        client = self._ari_ref()
        if client is not None:
            try:
                await self._remove_once(client, kind, ident)
                return True
            except AriError as e:
                log.info("janitor.deferred", kind=kind, id=ident, error=str(e)[:120])
        self.later(kind, ident)
        return False

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
            for key in list(self._pending):
                kind, ident = key
                client = self._ari_ref()
                if client is None or not client.attached:
                    break  # back when ARI is
                try:
                    await self._remove_once(client, kind, ident)
                    self._pending.pop(key, None)
                    log.info("janitor.removed", kind=kind, id=ident)
                except AriError as e:
                    left = self._pending.get(key, 1) - 1
                    if left <= 0:
                        self._pending.pop(key, None)
                        self.gave_up += 1
                        log.error("janitor.gave_up", kind=kind, id=ident, error=str(e)[:200])
                    else:
                        self._pending[key] = left
