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
# bumped whenever what a checkpoint holds changes shape; recovery ends a call
# whose checkpoint has another version instead of guessing at it
CHECKPOINT_VERSION = 2


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
                         record: CallRecord, interaction: dict[str, Any],
                         recorder: dict[str, Any]) -> None:
        key = self._k("call", call_id)
        try:
            async with self.redis.pipeline(transaction=True) as p:
                p.hset(key, mapping={
                    "v": str(CHECKPOINT_VERSION),
                    "state": state,
                    "data": json.dumps(data, ensure_ascii=False),
                    "record": record.model_dump_json(),
                    "interaction": json.dumps(interaction, ensure_ascii=False),
                    "recorder": json.dumps(recorder, ensure_ascii=False),
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
        ids = [raw.decode() if isinstance(raw, bytes) else str(raw)
               for raw in await self.redis.smembers(self._k("calls", "active"))]
        async with self.redis.pipeline(transaction=False) as p:
            for cid in ids:
                p.hgetall(self._k("call", cid))
            found = await p.execute()
        return {cid: {(k.decode() if isinstance(k, bytes) else k):
                      (v.decode() if isinstance(v, bytes) else v) for k, v in h.items()}
                for cid, h in zip(ids, found, strict=True)}

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
