"""Pending callbacks, from the request to the last attempt, owned by one app instance.

A ticket waits in the shared waiting queue like a caller (its id is its
member id), so the dispatcher offers it to an agent in the same order as the
callers on the line. This service is what takes that offer for the ticket: it
keeps an open slot in the dispatcher's offer box for each queued ticket of this
instance, starts an attempt (callback/states.py) when an offer arrives, puts
a ticket whose attempt was not answered back in line after the retry interval,
holds tickets outside the configured hours, and fails tickets older than the
maximum age. Everything is in Redis (callback/store.py), so a restarted
instance picks its tickets up where they were.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from redis.exceptions import RedisError

from ari_app.agents.pool import Offer
from ari_app.callback.store import (
    DIALLING,
    HELD,
    QUEUED,
    RETRY,
    CallbackStore,
    Ticket,
    new_member,
)
from ari_app.config.callback import CallbackSettings
from ari_app.logs import get_logger
from ari_app.queue.service import QueueService

log = get_logger("callback")

# (ticket, agent offer) -> None: start the attempt's interaction (app.py)
StartAttempt = Callable[[Ticket, Offer], None]
# (ticket, result) -> None: record a ticket that ended without an attempt (expired)
RecordEnd = Callable[[Ticket, str], None]


class CallbackService:
    def __init__(self, settings: CallbackSettings, store: CallbackStore, queue: QueueService,
                 instance: str, tz: str, start: StartAttempt, ended: RecordEnd,
                 tick: float = 1.0) -> None:
        self.settings = settings
        self.store = store
        self.queue = queue
        self.instance = instance
        self.tz = ZoneInfo(tz)
        self.start = start
        self.ended = ended
        self.tick = tick
        # ticket id -> (the member id it waits under, the slot its offer lands in)
        self._slots: dict[str, tuple[str, asyncio.Future[Offer]]] = {}
        self._poke = asyncio.Event()

    def adopt(self, ticket: Ticket) -> None:
        """A ticket just booked here: take its offers from now on."""
        self._open(ticket)
        self._poke.set()

    def _open(self, ticket: Ticket) -> None:
        if ticket.id not in self._slots:
            fut = self.queue.box.open(ticket.member)
            fut.add_done_callback(lambda _f: self._poke.set())
            self._slots[ticket.id] = (ticket.member, fut)

    def _shut(self, ticket_id: str) -> tuple[str, Offer | None]:
        member, _fut = self._slots.pop(ticket_id, ("", None))
        return member, (self.queue.box.close(member) if member else None)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.round()
            except RedisError as e:
                log.warning("callback.redis_error", error=str(e))
            except Exception:  # one bad ticket must not stop every callback
                log.exception("callback.round_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self.tick)
            self._poke.clear()
        for ticket_id in list(self._slots):
            member, late = self._shut(ticket_id)
            if late is not None:  # stopping: the agent goes back, the ticket stays in line
                with contextlib.suppress(RedisError):
                    await self.queue.pool.unoffer(late.agent.id, member)

    async def round(self) -> None:
        now = time.time()
        open_now = self.settings.open_at(datetime.now(self.tz).time())
        for t in await self.store.all():
            if t.owner != self.instance:
                continue
            held = self._slots.get(t.id)
            slot = held[1] if held is not None else None
            if held is not None and held[1].done():
                await self._offered(t)
                continue
            if t.state == DIALLING:
                continue  # its attempt's interaction owns it now
            if now - t.requested_epoch > self.settings.max_age:
                await self._expire(t)
            elif not open_now:
                if t.state == QUEUED:
                    await self._hold(t)
            elif t.state in (RETRY, HELD) and now >= t.next_at:
                await self.store.update(t, state=QUEUED)
                await self._line_up(t)
            elif t.state == QUEUED and slot is None:
                await self._line_up(t)

    async def _line_up(self, t: Ticket) -> None:
        """In the waiting queue at the ticket's original place, with a slot for its
        offer. A member id no longer waiting (its attempt is over, or an offer for
        it found nobody while this instance restarted) is replaced by a fresh one."""
        if await self.queue.waiting.position(t.entity, t.member) is None:
            await self.queue.waiting.remove(t.entity, t.member)  # its stored details
            await self.store.update(t, member=new_member(t.id))
            await self.queue.waiting.join(t.entity, t.member, t.language, priority=t.priority,
                                          arrival=t.arrival)
        self._open(t)
        await self.queue.dispatcher.own(t.member)
        self.queue.dispatcher.wake()

    async def _offered(self, t: Ticket) -> None:
        member, offer = self._shut(t.id)
        if offer is None:
            return
        if member != t.member or t.attempts >= self.settings.max_attempts or \
                t.state != QUEUED:
            await self.queue.pool.unoffer(offer.agent.id, member)
            return
        await self.store.update(t, state=DIALLING)
        log.info("callback.offered", ticket=t.id, agent=offer.agent.id, attempt=t.attempts + 1)
        self.start(t, offer)

    async def _hold(self, t: Ticket) -> None:
        member, late = self._shut(t.id)
        await self.queue.waiting.remove(t.entity, t.member)
        if late is not None:
            await self.queue.pool.unoffer(late.agent.id, member)
        await self.store.update(t, state=HELD, next_at=0.0)
        log.info("callback.held", ticket=t.id, why="outside callback hours")

    async def _expire(self, t: Ticket) -> None:
        member, late = self._shut(t.id)
        await self.queue.waiting.remove(t.entity, t.member)
        if late is not None:
            await self.queue.pool.unoffer(late.agent.id, member)
        await self.store.close(t)
        log.info("callback.expired", ticket=t.id, attempts=t.attempts)
        self.ended(t, "expired")
