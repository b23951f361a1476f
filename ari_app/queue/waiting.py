"""Per-entity waiting queues in Redis, shared by every app instance.

One sorted set per entity, scored so that a plain ZRANGE gives the order in
which callers should be served: higher priority first, then earlier arrival.
The score packs both into one exact double: (PRIORITY_CEILING - priority) *
1e13 + arrival in ms; with priorities up to 199 that stays under 2**53, so no
two callers ever compare wrongly through rounding.

A transferred caller keeps their original arrival time and gets a priority
boost, so they go ahead of everyone who has not yet been served once.

Removal is the claim: only the instance whose ZREM removed the caller may
connect them, so two instances never bridge one caller to two agents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

PRIORITY_CEILING = 199
_BAND = 10**13
CALLER_TTL = 6 * 3600

_JOIN = r"""
local B, call, entity = ARGV[1], ARGV[2], ARGV[3]
local ck = B .. 'wcall:' .. call
local old = redis.call('HGET', ck, 'entity')
if old and old ~= entity then redis.call('ZREM', B .. 'wait:' .. old, call) end
local arrival = tonumber(ARGV[6])
if arrival < 0 then
  local t = redis.call('TIME')
  arrival = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local prio = tonumber(ARGV[5])
local score = (tonumber(ARGV[8]) - prio) * tonumber(ARGV[9]) + arrival
redis.call('HSET', ck, 'entity', entity, 'lang', ARGV[4], 'prio', ARGV[5],
  'arrival', string.format('%d', arrival), 'transferred', ARGV[7])
redis.call('EXPIRE', ck, tonumber(ARGV[10]))
redis.call('ZADD', B .. 'wait:' .. entity, string.format('%d', score), call)
redis.call('SADD', B .. 'waitq', entity)
return redis.call('ZRANK', B .. 'wait:' .. entity, call) + 1
"""

# Every entity's first ARGV[2] callers with what a dispatcher needs, in one
# round trip: flat {call, entity, lang, prio, arrival, transferred}...
_ALL = r"""
local B, limit = ARGV[1], tonumber(ARGV[2])
local out = {}
for _, entity in ipairs(redis.call('SMEMBERS', B .. 'waitq')) do
  local q = B .. 'wait:' .. entity
  -- a broken key is that entity's problem (logged by nobody, skipped by all)
  local calls = {}
  if redis.call('TYPE', q)['ok'] == 'zset' then calls = redis.call('ZRANGE', q, 0, limit - 1) end
  for _, call in ipairs(calls) do
    local h = redis.call('HMGET', B .. 'wcall:' .. call, 'entity', 'lang', 'prio', 'arrival',
      'transferred')
    if h[1] and h[2] and h[3] and h[4] then
      out[#out + 1] = call
      for j = 1, 5 do out[#out + 1] = h[j] or '0' end
    end
  end
end
return out
"""


@dataclass(frozen=True)
class WaitingCaller:
    call_id: str
    entity: str
    language: str
    priority: int
    arrival: float
    transferred: bool


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class WaitingQueues:
    def __init__(self, redis: Redis, *, key_prefix: str = "hotline"):
        if "{" in key_prefix or "}" in key_prefix:
            raise ValueError("key_prefix must not contain braces: it becomes the hash tag")
        self.redis = redis
        self.base = "{" + key_prefix + "}:"
        self._join = redis.register_script(_JOIN)
        self._all = redis.register_script(_ALL)

    def _q(self, entity: str) -> str:
        return self.base + "wait:" + entity

    def _c(self, call_id: str) -> str:
        return self.base + "wcall:" + call_id

    async def join(
        self,
        entity: str,
        call_id: str,
        language: str,
        *,
        priority: int = 0,
        arrival: float | None = None,
        transferred: bool = False,
    ) -> int:
        """Queue (or re-queue) a caller; returns their 1-based position.

        `arrival` (epoch seconds) defaults to now on the Redis clock. A caller
        already waiting for another entity is moved, not duplicated."""
        prio = max(0, min(PRIORITY_CEILING, priority))
        arr = -1 if arrival is None else round(arrival * 1000)
        res = await self._join(
            keys=[self._q(entity), self._c(call_id)],
            args=[
                self.base,
                call_id,
                entity,
                language,
                prio,
                arr,
                "1" if transferred else "0",
                PRIORITY_CEILING,
                _BAND,
                CALLER_TTL,
            ],
        )
        return int(res)

    async def rejoin_transferred(
        self, entity: str, caller: WaitingCaller, *, boost: int = 10
    ) -> int:
        """An agent transferred the caller: ahead of new callers, in original arrival order."""
        return await self.join(
            entity,
            caller.call_id,
            caller.language,
            priority=caller.priority + boost,
            arrival=caller.arrival,
            transferred=True,
        )

    async def position(self, entity: str, call_id: str) -> int | None:
        r: Any = await self.redis.zrank(self._q(entity), call_id)
        return None if r is None else int(r) + 1

    async def length(self, entity: str) -> int:
        return int(await self.redis.zcard(self._q(entity)))

    async def get(self, call_id: str) -> WaitingCaller | None:
        return _caller(call_id, await self.redis.hgetall(self._c(call_id)))

    async def language(self, call_id: str) -> str | None:
        v = await self.redis.hget(self._c(call_id), "lang")
        return None if v is None else _s(v)

    async def waiting(self, entity: str, limit: int = 100) -> list[WaitingCaller]:
        """One entity's callers in serving order (the dispatcher reads every
        entity at once with `everyone`)."""
        ids = [_s(i) for i in await self.redis.zrange(self._q(entity), 0, limit - 1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hgetall(self._c(i))
            raws = await pipe.execute()
        found = (_caller(i, r) for i, r in zip(ids, raws, strict=True))
        return [c for c in found if c is not None]

    async def everyone(self, limit: int = 50) -> list[WaitingCaller]:
        """The first `limit` callers of every entity, merged into one serving
        order (higher priority, then earlier arrival, then call id: the order of
        the queues' scores, which use one formula for every entity), in one
        round trip. A dispatcher walks this so that an agent who serves several
        entities takes the caller who has waited longest among all of them."""
        raw = await self._all(keys=[self.base + "waitq"], args=[self.base, limit])
        out: list[WaitingCaller] = []
        for j in range(0, len(raw), 6):
            call, entity, lang, prio, arrival, transferred = (_s(x) for x in raw[j:j + 6])
            out.append(WaitingCaller(call_id=call, entity=entity, language=lang,
                                     priority=int(prio), arrival=int(arrival) / 1000.0,
                                     transferred=transferred == "1"))
        out.sort(key=serving_order)
        return out

    async def head(self, entity: str) -> WaitingCaller | None:
        w = await self.waiting(entity, 1)
        return w[0] if w else None

    async def entities(self) -> list[str]:
        """Entities that have (or recently had) someone waiting."""
        return sorted(_s(e) for e in await self.redis.smembers(self.base + "waitq"))

    async def remove(self, entity: str, call_id: str, *, forget: bool = True) -> bool:
        """Take the caller out of the queue; True only for the one caller of this
        that actually removed them (use it as the claim before bridging).

        `forget=False` keeps the stored caller (language, arrival) for a
        transfer that will rejoin another queue."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._q(entity), call_id)
            if forget:
                pipe.delete(self._c(call_id))
            res = await pipe.execute()
        return bool(res[0])


def serving_order(c: WaitingCaller) -> tuple[int, int, str]:
    """The sort key equal to a queue's score order (ties by member, as ZRANGE)."""
    return (-c.priority, round(c.arrival * 1000), c.call_id)


def _caller(call_id: str, raw: dict[Any, Any]) -> WaitingCaller | None:
    h = {_s(k): _s(v) for k, v in raw.items()}
    if not h:
        return None
    return WaitingCaller(
        call_id=call_id,
        entity=h["entity"],
        language=h["lang"],
        priority=int(h["prio"]),
        arrival=int(h["arrival"]) / 1000.0,
        transferred=h.get("transferred") == "1",
    )
