"""The callback offered to a waiting caller, in their language.

"Press 1 to be called back at this number, 2 to enter another number, or keep
holding." Another number is read back and confirmed; every number is checked
against the configured national number plan. A caller without a usable caller
id (anonymous, international) is offered only the entered number.

The caller stays in the waiting queue while they listen: an agent who frees up
meanwhile ends the menu and the call goes on to that agent. Once a number is
confirmed, the caller's place in the queue passes to the ticket (same entity,
arrival and priority) and the call ends; the ticket is served like a caller.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ari_app.agents.pool import Offer
from ari_app.callback.numbers import BadNumber, masked, national
from ari_app.callback.store import CallbackStore, Ticket, new_member
from ari_app.config.callback import CallbackSettings
from ari_app.interactions.context import CallContext
from ari_app.interactions.machine import Finish, State
from ari_app.interactions.session import CallSession
from ari_app.logs import get_logger
from ari_app.queue.deps import WaitCue
from ari_app.queue.waiting import WaitingQueues
from ari_app.records.model import Callback, Outcome, utcnow

log = get_logger("callback")
MAX_DIGITS = 15
NUMBER_TRIES = 2


@dataclass(frozen=True)
class CallbackMenu:
    """Implements queue.deps.CallbackOffer."""

    settings: CallbackSettings
    store: CallbackStore
    waiting: WaitingQueues
    tz: str
    instance: str
    adopt: Any  # (Ticket) -> None: the callback service takes the new ticket over

    def offer_at(self, arrival: float) -> float | None:
        return arrival + self.settings.offer_after

    def worth_offering(self, expected: float | None) -> bool:
        over = self.settings.offer_when_expected_over
        return over is not None and expected is not None and expected >= over

    def open_now(self) -> bool:
        return self.settings.open_at(datetime.now(ZoneInfo(self.tz)).time())

    async def offer(self, ctx: CallContext, cue: WaitCue,
                    agent_offer: asyncio.Future[Offer]) -> State | None:
        s = ctx.session
        if not self.open_now():
            return None
        own: str | None
        try:
            own = national(s.caller, self.settings.number_plan)
        except BadNumber:
            own = None  # anonymous or not national: only an entered number
        await s.music(False)
        booked: State | None = None
        try:
            number = await self._choose(ctx, own, agent_offer)
            if number is not None:
                booked = await self._book(ctx, cue, number, agent_offer)
            return booked
        finally:
            # music again while waiting on (and while an agent rings); a booked caller
            # hears the goodbye instead
            if booked is None and s.gone is None:
                await s.music(True)

    async def _choose(self, ctx: CallContext, own: str | None,
                      agent_offer: asyncio.Future[Offer]) -> str | None:
        s = ctx.session
        menu = "callback-offer" if own else "callback-offer-other"
        key = await _ask(s, ctx.media(menu), self.settings.digit_timeout, agent_offer)
        ctx.emit("callback_offered")
        if key == "1" and own:
            return own
        if key != "2":
            return None
        for _ in range(NUMBER_TRIES):
            typed = await self._typed(ctx, agent_offer)
            if typed is None:
                return None
            try:
                number = national(typed, self.settings.number_plan)
            except BadNumber as e:
                log.info("callback.bad_number", reason=str(e))
                await s.play(ctx.media("callback-bad-number"), interruptible=False,
                             stop_on=agent_offer)
                if agent_offer.done():
                    return None
                continue
            readback = [f"sound:hotline/{ctx.prompts.number(s.language, int(d))}"
                        for d in number]
            media = ctx.media("callback-you-entered") + readback + ctx.media("callback-confirm")
            key = await _ask(s, media, self.settings.digit_timeout, agent_offer)
            if key == "1":
                return number
            if key != "2":
                return None
        return None

    async def _typed(self, ctx: CallContext, agent_offer: asyncio.Future[Offer]) -> str | None:
        """Digits up to # (or the timeout after the last one); None when nothing came."""
        s = ctx.session
        first = await _ask(s, ctx.media("callback-enter"), self.settings.digit_timeout,
                           agent_offer)
        digits = ""
        key = first
        while key is not None and key != "#" and len(digits) < MAX_DIGITS:
            digits += key if key != "*" else ""
            key = await _key(s, self.settings.digit_timeout, agent_offer)
        return digits or None

    async def _book(self, ctx: CallContext, cue: WaitCue, number: str,
                    agent_offer: asyncio.Future[Offer]) -> State | None:
        s, rec = ctx.session, ctx.record
        if await self.store.pending_for(number):
            await s.play(ctx.media("callback-pending"), interruptible=False, stop_on=agent_offer)
            return None
        # the claim: only the one remover of the caller may hand their place on
        if not await self.waiting.remove(cue.entity, s.call_id):
            return None  # an agent's offer took them first
        now = time.time()
        ticket_id = f"cb{uuid.uuid4().hex[:18]}"
        ticket = Ticket(id=ticket_id, number=number, language=s.language,
                        entity=cue.entity, priority=cue.priority, arrival=cue.arrival,
                        requested_at=utcnow(), requested_epoch=now, of_call=s.call_id,
                        caller=s.caller, waited=round(now - cue.arrival, 3), owner=self.instance,
                        member=new_member(ticket_id))
        if not await self.store.book(ticket, self.settings.max_age):
            await self.waiting.join(cue.entity, s.call_id, s.language, priority=cue.priority,
                                    arrival=cue.arrival)
            await s.play(ctx.media("callback-pending"), interruptible=False, stop_on=agent_offer)
            return None
        await self.waiting.join(cue.entity, ticket.member, ticket.language, priority=cue.priority,
                                arrival=cue.arrival)
        self.adopt(ticket)
        rec.callback = Callback(ticket=ticket.id, number=masked(number),
                                requested_at=ticket.requested_at, of_call=s.call_id,
                                waited=ticket.waited, result="requested")
        if rec.queue:
            rec.queue[-1].left_at = ticket.requested_at
            rec.queue[-1].result = "callback"
        ctx.emit("callback_requested")
        log.info("callback.requested", ticket=ticket.id, number=masked(number),
                 waited=ticket.waited)
        return Finish(Outcome.CALLBACK_REQUESTED.value, prompts=["callback-booked"])


async def _ask(s: CallSession, media: list[str], seconds: float,
               stop: asyncio.Future[Any]) -> str | None:
    """Play a prompt (a key stops it) and wait for a key; None on silence or
    when `stop` (an agent's offer) comes first."""
    res = await s.play(media, stop_on=stop)
    if res.digit is not None:
        return res.digit
    return await _key(s, seconds, stop)


async def _key(s: CallSession, seconds: float, stop: asyncio.Future[Any]) -> str | None:
    deadline = time.monotonic() + seconds
    while True:
        if s.pending_digits:
            return s.pending_digits.pop(0)
        left = deadline - time.monotonic()
        if stop.done() or left <= 0:
            return None
        await s.wait_for(stop, left, until_event=True)
        if not stop.done():
            await s.event(0.05)  # applies the event: a key is kept, a hang-up raises
