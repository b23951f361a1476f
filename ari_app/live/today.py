"""Today's totals for the wallboard, shared in Redis by every instance and site.

One hash per local day, `{prefix}:today:<YYYY-MM-DD>` (the day cut in the
config's time zone), with integer fields only (the answer waits in ms), so
HINCRBY adds exactly and instances never overwrite one another. The hash
expires a few days after its day: nothing to clean up, and a restart (or
another instance) reads the day so far.

The call flow counts synchronously (it must never wait on Redis): an event
adds to this instance's pending deltas, which `sync` writes in one round
trip and then reads the day back. A failed sync keeps the deltas for the next
one, so a Redis outage delays figures but loses none. Without Redis (unit
tests, the simulator) the pending deltas are the totals.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from ari_app.logs import get_logger

log = get_logger("live.today")

FIELDS: tuple[str, ...] = ("offered", "answered", "answered_in_sla", "abandoned_in_queue",
                           "abandoned_in_menu", "answer_wait_ms")
KEEP_SECONDS = 3 * 86400


class DayTotals:
    """Counts per local day; shared through Redis when given one."""

    def __init__(self, redis: Redis | None = None, *, key_prefix: str = "hotline",
                 tz: str = "Asia/Qatar", clock: Callable[[], float] = time.time) -> None:
        if "{" in key_prefix or "}" in key_prefix:
            raise ValueError("key_prefix must not contain braces: it becomes the hash tag")
        self.redis = redis
        self.base = "{" + key_prefix + "}:today:"
        self.tz = ZoneInfo(tz)
        self._clock = clock
        self._pending: dict[date, dict[str, int]] = {}
        self._shared: dict[date, dict[str, int]] = {}
        self.sync_errors = 0
        self._lock = asyncio.Lock()

    def day(self) -> date:
        return datetime.fromtimestamp(self._clock(), self.tz).date()

    def add(self, **deltas: int) -> None:
        """Count now, in today's local day: e.g. add(answered=1, answer_wait_ms=4200)."""
        unknown = set(deltas) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown day totals {sorted(unknown)}")
        p = self._pending.setdefault(self.day(), dict.fromkeys(FIELDS, 0))
        for k, n in deltas.items():
            p[k] += n

    def figures(self, day: date | None = None) -> dict[str, int]:
        """The day's totals: the shared ones last read plus this instance's unsent."""
        d = day or self.day()
        shared = self._shared.get(d, {})
        pending = self._pending.get(d, {})
        return {k: shared.get(k, 0) + pending.get(k, 0) for k in FIELDS}

    async def sync(self) -> None:
        """Send the pending deltas and read today back, in one round trip.
        Raises the Redis error (the deltas are kept for the next try)."""
        if self.redis is None:
            return
        async with self._lock:  # two syncs at once would subtract the same deltas twice
            await self._sync(self.redis)

    async def _sync(self, redis: Redis) -> None:
        today = self.day()
        sent = {d: dict(p) for d, p in self._pending.items()}
        async with redis.pipeline(transaction=False) as pipe:
            for d, p in sent.items():
                key = self.base + d.isoformat()
                for k, n in p.items():
                    if n:
                        pipe.hincrby(key, k, n)
                pipe.expire(key, KEEP_SECONDS)
            pipe.hgetall(self.base + today.isoformat())
            res = await pipe.execute()
        for d, p in sent.items():  # what came in while we waited stays pending
            left = self._pending[d]
            for k, n in p.items():
                left[k] -= n
            if not any(left.values()):
                del self._pending[d]
        self._shared = {today: _ints(res[-1])}

    async def sync_quietly(self) -> None:
        try:
            await self.sync()
        except Exception as e:  # noqa: BLE001 - figures wait for the next sync
            self.sync_errors += 1
            log.warning("today.sync_failed", error=repr(e))


def _ints(raw: dict[Any, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, v in raw.items():
        name = k.decode() if isinstance(k, bytes) else str(k)
        try:
            out[name] = int(v)
        except (TypeError, ValueError):
            log.warning("today.bad_field", field=name)
    return out
