"""Announcements in Redis, shared by every app instance and site.

Keys (all under the config's hash tag, so a cluster keeps them in one slot):

  {p}:announce:current       hash  scope -> Announcement JSON
  {p}:announce:audio:<sha>   string  a sound (WAV bytes), named by its content
  {p}:announce:version       integer, bumped by every change
  {p}:announce:audit         stream  one event per change: who, when, what
  {p}:announce:changed       pub/sub channel: the new version, to every instance

A change is one MULTI/EXEC (sounds, current, version, audit), then a publish.
Instances read the version on the publish (or every poll_seconds, if a publish
was missed), never per call.
"""

from __future__ import annotations

import json
import time
from typing import Any

from redis.asyncio import Redis

from ari_app.announcements.model import Announcement, iso


class AnnouncementStore:
    def __init__(self, redis: Redis, *, key_prefix: str = "hotline",
                 audit_keep: int = 10_000) -> None:
        if "{" in key_prefix or "}" in key_prefix:
            raise ValueError("key_prefix must not contain braces: it becomes the hash tag")
        self.redis = redis
        self.base = "{" + key_prefix + "}:announce:"
        self.current_key = self.base + "current"
        self.version_key = self.base + "version"
        self.audit_key = self.base + "audit"
        self.channel = self.base + "changed"
        self.audit_keep = audit_keep

    def audio_key(self, sha: str) -> str:
        return f"{self.base}audio:{sha}"

    async def version(self) -> int:
        raw = await self.redis.get(self.version_key)
        return int(raw) if raw is not None else 0

    async def current(self) -> dict[str, Announcement]:
        raw: dict[Any, Any] = await self.redis.hgetall(self.current_key)
        out: dict[str, Announcement] = {}
        for scope, value in raw.items():
            key = scope.decode() if isinstance(scope, bytes) else str(scope)
            out[key] = Announcement.loads(value)
        return out

    async def audio(self, sha: str) -> bytes | None:
        data = await self.redis.get(self.audio_key(sha))
        return data.encode() if isinstance(data, str) else data

    async def put(self, ann: Announcement, sounds: dict[str, bytes], source: str) -> int:
        """Set (or replace) the scope's announcement; returns the new version."""
        before = await self.current()
        event = _audit("set", ann.scope, ann.by, source, ann.describe())
        async with self.redis.pipeline(transaction=True) as pipe:
            for sha, data in sounds.items():
                pipe.set(self.audio_key(sha), data)
            pipe.hset(self.current_key, ann.scope, ann.dumps())
            pipe.incr(self.version_key)
            pipe.xadd(self.audit_key, event, maxlen=self.audit_keep, approximate=True)
            res = await pipe.execute()
        version = int(res[len(sounds) + 1])
        await self._forget(before, {**before, ann.scope: ann})
        await self.redis.publish(self.channel, str(version))
        return version

    async def clear(self, scope: str, by: str, source: str) -> tuple[Announcement | None, int]:
        """Remove the scope's announcement (if any); the change is audited either way."""
        before = await self.current()
        old = before.get(scope)
        what: dict[str, Any] = {"cleared": old.describe() if old else None}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self.current_key, scope)
            pipe.incr(self.version_key)
            pipe.xadd(self.audit_key, _audit("clear", scope, by, source, what),
                      maxlen=self.audit_keep, approximate=True)
            res = await pipe.execute()
        version = int(res[1])
        after = {k: v for k, v in before.items() if k != scope}
        await self._forget(before, after)
        await self.redis.publish(self.channel, str(version))
        return old, version

    async def audit(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest changes, newest first."""
        rows: Any = await self.redis.xrevrange(self.audit_key, count=limit)
        out: list[dict[str, Any]] = []
        for event_id, fields in rows or []:
            f = {_text(k): _text(v) for k, v in (fields or {}).items()}
            out.append({"event": _text(event_id), "at": f.get("at"), "by": f.get("by"),
                        "action": f.get("action"), "scope": f.get("scope"),
                        "source": f.get("source"), "what": json.loads(f.get("what", "null"))})
        return out

    async def _forget(self, before: dict[str, Announcement],
                      after: dict[str, Announcement]) -> None:
        """Drop sounds nothing uses any more (instances keep their files a while)."""
        used = {sha for a in after.values() for sha in a.sounds.values()}
        stale = {sha for a in before.values() for sha in a.sounds.values()} - used
        if stale:
            await self.redis.delete(*(self.audio_key(sha) for sha in stale))


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _audit(action: str, scope: str, by: str, source: str,
           what: dict[str, Any]) -> dict[Any, Any]:
    return {"at": iso(time.time()) or "", "by": by, "action": action, "scope": scope,
            "source": source, "what": json.dumps(what, ensure_ascii=False, sort_keys=True)}
