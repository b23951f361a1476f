"""Per-call state in Redis: checkpoints for restarts, and callers' remembered language.

Every key carries the `{prefix}` hash tag, so each atomic operation touches one
Redis Cluster slot. Redis trouble never ends a call: a failed write is logged
and the call goes on (the degraded mode in docs/operations.md).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ari_app.logs import get_logger
from ari_app.records.model import CallRecord

log = get_logger("store")
CHECKPOINT_TTL = 6 * 3600


class CallStore:
    def __init__(self, redis: aioredis.Redis, prefix: str, salt: str) -> None:
        self.redis = redis
        self.tag = "{" + prefix + "}"
        self._salt = salt.encode()
        self.errors = 0

    def _k(self, *parts: str) -> str:
        return ":".join((self.tag, *parts))

    def caller_key(self, caller: str) -> str:
        """A salted hash: Redis never holds callers' numbers in the clear."""
        digest = hashlib.sha256(self._salt + caller.encode()).hexdigest()[:32]
        return self._k("lang", digest)

    async def checkpoint(self, call_id: str, state: str, data: dict[str, Any],
                         record: CallRecord) -> None:
        key = self._k("call", call_id)
        try:
            async with self.redis.pipeline(transaction=True) as p:
                p.hset(key, mapping={
                    "state": state,
                    "data": json.dumps(data, ensure_ascii=False),
                    "record": record.model_dump_json(),
                    "updated": f"{time.time():.3f}",
                })
                p.expire(key, CHECKPOINT_TTL)
                p.sadd(self._k("calls", "active"), call_id)
                await p.execute()
        except RedisError as e:
            self.errors += 1
            log.warning("store.checkpoint_failed", error=str(e))

    async def finish(self, call_id: str) -> None:
        try:
            async with self.redis.pipeline(transaction=True) as p:
                p.delete(self._k("call", call_id))
                p.srem(self._k("calls", "active"), call_id)
                await p.execute()
        except RedisError as e:
            self.errors += 1
            log.warning("store.finish_failed", error=str(e))

    async def active_calls(self) -> dict[str, dict[str, str]]:
        ids = await self.redis.smembers(self._k("calls", "active"))
        out: dict[str, dict[str, str]] = {}
        for raw in ids:
            cid = raw.decode() if isinstance(raw, bytes) else str(raw)
            h = await self.redis.hgetall(self._k("call", cid))
            out[cid] = {(k.decode() if isinstance(k, bytes) else k):
                        (v.decode() if isinstance(v, bytes) else v) for k, v in h.items()}
        return out

    async def remember_language(self, caller: str, lang: str, days: int) -> None:
        if not caller or days <= 0:
            return
        try:
            await self.redis.set(self.caller_key(caller), lang, ex=days * 86400)
        except RedisError as e:
            self.errors += 1
            log.warning("store.remember_failed", error=str(e))

    async def remembered_language(self, caller: str) -> str | None:
        if not caller:
            return None
        try:
            val = await self.redis.get(self.caller_key(caller))
        except RedisError as e:
            self.errors += 1
            log.warning("store.lookup_failed", error=str(e))
            return None
        if val is None:
            return None
        return val.decode() if isinstance(val, bytes) else str(val)
