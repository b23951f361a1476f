"""Pending callbacks in Redis, shared by every app instance and kept across restarts.

A ticket is one citizen's request: the number to call (confirmed by the
caller), their language, entity, priority and the arrival time that keeps
their place in the waiting queue (queue/waiting.py), where it waits under its
`member` id, so the dispatcher serves it in the same order as the callers on
the line.

One pending ticket per number: the number's (salted, hashed) key is taken
with SET NX in the same script that writes the ticket, so two requests for
one number, on any instance, cannot both succeed.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, fields
from typing import Any

from redis.asyncio import Redis

from ari_app.callback.numbers import number_key

# ticket states: queued (waiting for an agent), dialling (an attempt is under
# way), retry (waiting for next_at), held (outside callback hours)
QUEUED, DIALLING, RETRY, HELD = "queued", "dialling", "retry", "held"

_BOOK = r"""
local numkey, tkey, set = KEYS[1], KEYS[2], KEYS[3]
if redis.call('SET', numkey, ARGV[1], 'NX', 'EX', tonumber(ARGV[2])) == false then
  return redis.call('GET', numkey) or ''
end
for i = 3, #ARGV, 2 do redis.call('HSET', tkey, ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', tkey, tonumber(ARGV[2]))
redis.call('SADD', set, ARGV[1])
return 'ok'
"""


@dataclass
class Ticket:
    id: str
    number: str
    language: str
    entity: str
    priority: int
    arrival: float  # epoch seconds the caller first joined the queue: their place
    requested_at: str  # ISO time of the request
    requested_epoch: float
    of_call: str  # the call that asked for it
    caller: str  # that call's caller id (may be empty: anonymous)
    waited: float  # seconds the caller had waited on the line when asking
    owner: str  # the app instance that dials it
    # the id it waits under in the queue, which is also its next attempt's call id
    # (the agent pool knows an offered agent by that id): a fresh one each time the
    # ticket lines up again, so each attempt is a call of its own
    member: str
    attempts: int = 0
    state: str = QUEUED
    next_at: float = 0.0
    last_result: str = ""

    def to_redis(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_redis(cls, raw: dict[Any, Any]) -> Ticket | None:
        h = {_s(k): _s(v) for k, v in raw.items()}
        try:
            kw: dict[str, Any] = {}
            for f in fields(cls):
                v = h[f.name]
                kw[f.name] = (int(v) if f.type == "int" else float(v) if f.type == "float"
                              else v)
            return cls(**kw)
        except (KeyError, ValueError):
            return None


class CallbackStore:
    def __init__(self, redis: Redis, *, key_prefix: str, salt: str) -> None:
        self.redis = redis
        self.base = "{" + key_prefix + "}:cb:"
        self._salt = salt
        self._book = redis.register_script(_BOOK)

    def _t(self, ticket_id: str) -> str:
        return self.base + "t:" + ticket_id

    def _n(self, number: str) -> str:
        return self.base + "num:" + number_key(number, self._salt)

    async def book(self, ticket: Ticket, ttl: float) -> bool:
        """Write a new ticket; False when its number already has a pending one."""
        args: list[str] = [ticket.id, str(int(ttl) + 60)]
        for k, v in ticket.to_redis().items():
            args += [k, v]
        res = await self._book(keys=[self._n(ticket.number), self._t(ticket.id),
                                     self.base + "tickets"], args=args)
        return _s(res) == "ok"

    async def pending_for(self, number: str) -> bool:
        return bool(await self.redis.exists(self._n(number)))

    async def get(self, ticket_id: str) -> Ticket | None:
        return Ticket.from_redis(await self.redis.hgetall(self._t(ticket_id)))

    async def all(self) -> list[Ticket]:
        ids = sorted(_s(i) for i in await self.redis.smembers(self.base + "tickets"))
        out: list[Ticket] = []
        for i in ids:
            t = await self.get(i)
            if t is None:  # expired or unreadable: nothing left to dial
                await self.redis.srem(self.base + "tickets", i)
                continue
            out.append(t)
        return out

    async def update(self, ticket: Ticket, **changes: Any) -> None:
        for k, v in changes.items():
            setattr(ticket, k, v)
        await self.redis.hset(self._t(ticket.id),
                              mapping={k: str(v) for k, v in changes.items()})

    async def close(self, ticket: Ticket) -> None:
        """The ticket is done (answered, failed, expired): forget it and free its number."""
        async with self.redis.pipeline(transaction=True) as p:
            p.delete(self._t(ticket.id))
            p.srem(self.base + "tickets", ticket.id)
            p.delete(self._n(ticket.number))
            await p.execute()


def new_member(ticket_id: str) -> str:
    return f"{ticket_id}-{uuid.uuid4().hex[:8]}"


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
