"""One call's view of Asterisk: an inbox of its ARI events and the few media
primitives every state is built from (play with barge-in, wait for a digit).

The ARI reader never blocks on a call: it only drops events in the inbox.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from ari_app.ari.client import AriClient, AriError, Event
from ari_app.logs import get_logger

log = get_logger("call")
DTMF_KEYS = frozenset("0123456789*#")
# AST_SOFTHANGUP_SHUTDOWN | AST_SOFTHANGUP_APPUNLOAD (include/asterisk/channel.h)
SYSTEM_SOFT_HANGUPS = 0x04 | 0x10
_ids = itertools.count(1)
MAX_PLAYBACK_SECONDS = 300.0


class CallerGone(Exception):
    """The caller's channel left Stasis (hung up, or Asterisk went away)."""

    def __init__(self, cause: str = "hangup") -> None:
        super().__init__(cause)
        self.cause = cause


class AriUnavailable(Exception):
    """The ARI connection is down; the call cannot be driven until it returns."""


@dataclass
class PlayResult:
    digit: str | None  # the key that interrupted the prompt, if any


@dataclass
class CallSession:
    call_id: str
    channel_id: str
    caller: str
    dialled: str
    app_args: list[str]
    ari_ref: Any  # a zero-arg callable returning the current AriClient or None
    inbox: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    gone: str | None = None
    language: str = "en"
    playbacks: set[str] = field(default_factory=set)
    prompts: list[str] = field(default_factory=list)
    digits: list[str] = field(default_factory=list)
    pending_digits: list[str] = field(default_factory=list)

    @property
    def ari(self) -> AriClient:
        client = self.ari_ref()
        if client is None:
            raise AriUnavailable()
        assert isinstance(client, AriClient)
        return client

    def deliver(self, event: Event) -> None:
        self.inbox.put_nowait(event)

    # -- event handling ---------------------------------------------------
    def _absorb(self, ev: Event) -> str | None:
        """Apply an event to the session. Returns a digit when one was pressed."""
        kind = ev.get("type")
        chan = (ev.get("channel") or {}).get("id")
        if kind == "ChannelHangupRequest" and chan == self.channel_id:
            log.info("call.hangup_request", cause=ev.get("cause"), soft=ev.get("soft"))
        if kind in ("StasisEnd", "ChannelDestroyed", "ChannelHangupRequest") \
                and chan == self.channel_id:
            # Asterisk shutting down (or unloading a module) hangs channels up itself:
            # that is not the caller's doing. A soft hang-up request's `cause` carries
            # Asterisk's soft-hangup reason; a caller's BYE or CANCEL is "explicit".
            lost = "lost" if ev.get("hotline_lost") else None
            system = "system" if kind == "ChannelHangupRequest" and ev.get("soft") and \
                int(ev.get("cause") or 0) & SYSTEM_SOFT_HANGUPS else None
            self.gone = self.gone or lost or system or \
                ("hangup" if kind != "StasisEnd" else "left")
            raise CallerGone(self.gone)
        if kind == "ChannelDtmfReceived" and chan == self.channel_id:
            digit = str(ev.get("digit", ""))
            if digit in DTMF_KEYS:
                self.digits.append(digit)
                return digit
        if kind == "PlaybackFinished":
            self.playbacks.discard((ev.get("playback") or {}).get("id", ""))
        return None

    async def _next(self, wait: float | None) -> Event | None:
        if self.gone:
            raise CallerGone(self.gone)
        try:
            if wait is None:
                return await self.inbox.get()
            return await asyncio.wait_for(self.inbox.get(), max(wait, 0))
        except TimeoutError:
            return None

    # -- primitives --------------------------------------------------------
    async def play(self, media: list[str], *, interruptible: bool = True,
                   lang: str | None = None,
                   stop_on: asyncio.Future[Any] | None = None) -> PlayResult:
        """Play a list of sounds as one playback; a key pressed stops it and is returned.

        A key already waiting (typed ahead) skips the prompt entirely, which is
        what callers who know the menu expect.
        """
        if interruptible and self.pending_digits:
            return PlayResult(self.pending_digits.pop(0))
        if not media:
            return PlayResult(None)
        pb_id = f"{self.call_id}-pb{next(_ids)}"
        self.playbacks.add(pb_id)
        lang = lang or self.language
        self.prompts.extend(_prompt_name(m, lang) for m in media)
        try:
            await self.ari.play(self.channel_id, media, lang, pb_id)
        except AriError as e:
            self.playbacks.discard(pb_id)
            if e.status == 404:
                raise CallerGone("hangup") from None
            # a channel Asterisk is tearing down answers 409/500: a hang-up event
            # follows at once. Otherwise the prompt is skipped rather than the call
            # lost: the menu that follows still waits for the caller's key.
            await self.pause(0.3)
            log.warning("call.prompt_skipped", error=str(e)[:160])
            await self._stop(pb_id)
            return PlayResult(None)
        # a PlaybackFinished lost (say, in an ARI reconnect the reconciliation did
        # not cover) must not hold the caller for ever: no prompt plays this long
        deadline = time.monotonic() + MAX_PLAYBACK_SECONDS
        while True:
            if stop_on is not None:
                # e.g. an agent became free during an announcement: stop talking
                await self.wait_for(stop_on, deadline - time.monotonic(), until_event=True)
                if stop_on.done():
                    await self._stop(pb_id)
                    return PlayResult(None)
            ev = await self._next(deadline - time.monotonic())
            if ev is None:
                log.warning("call.playback_never_finished", playback=pb_id)
                await self._stop(pb_id)
                return PlayResult(None)
            digit = self._absorb(ev)
            if digit is not None and interruptible:
                await self._stop(pb_id)
                return PlayResult(digit)
            if digit is not None:
                self.pending_digits.append(digit)
            if ev.get("type") == "PlaybackFinished" and \
                    (ev.get("playback") or {}).get("id") == pb_id:
                return PlayResult(None)

    async def _stop(self, pb_id: str) -> None:
        """Stop a playback; failing to is not worth a call (it ends by itself)."""
        self.playbacks.discard(pb_id)
        try:
            await self.ari.stop_playback(pb_id)
        except AriError as e:
            log.info("call.playback_stop_failed", playback=pb_id, error=str(e)[:120])

    async def music(self, on: bool) -> None:
        """Music on hold on or off. Failing is logged, not fatal: a moment of silence
        is better than a dropped call."""
        try:
            if on:
                await self.ari.start_moh(self.channel_id)
            else:
                await self.ari.stop_moh(self.channel_id)
        except AriError as e:
            log.warning("call.moh_failed", on=on, error=str(e)[:160])

    async def wait_digit(self, seconds: float) -> str | None:
        """The next key within `seconds`, or None."""
        if self.pending_digits:
            return self.pending_digits.pop(0)
        deadline = time.monotonic() + seconds
        while True:
            ev = await self._next(deadline - time.monotonic())
            if ev is None:
                return None
            digit = self._absorb(ev)
            if digit is not None:
                return digit

    async def pause(self, seconds: float) -> None:
        """Let time pass while still noticing a hang-up; keys are kept for later."""
        deadline = time.monotonic() + seconds
        while True:
            ev = await self._next(deadline - time.monotonic())
            if ev is None:
                return
            digit = self._absorb(ev)
            if digit is not None:
                self.pending_digits.append(digit)

    async def gone_or_raise(self, err: AriError) -> None:
        """An ARI call on the caller's channel failed: was it because the caller left?

        404: the channel is gone. Otherwise (Asterisk answers 409 or 500 for a
        channel it is tearing down) a hang-up event follows at once if so, and
        `pause` raises CallerGone; if none comes, the error was real."""
        if err.status == 404:
            raise CallerGone("hangup") from None
        await self.pause(1.0)
        raise err

    async def event(self, wait: float | None) -> Event | None:
        """The next event of this call (any of its channels), or None after `wait`.

        A hang-up of the caller raises CallerGone; keys pressed are kept.
        """
        ev = await self._next(wait)
        if ev is None:
            return None
        digit = self._absorb(ev)
        if digit is not None:
            self.pending_digits.append(digit)
        return ev

    async def wait_for(self, fut: asyncio.Future[Any], wait: float,
                       until_event: bool = False) -> Any:
        """The future's result, or None after `wait`; a caller hang-up still raises.

        `until_event`: return as soon as an event arrives too, leaving it (and
        only it) in the inbox for the caller to read next."""
        deadline = time.monotonic() + wait
        while not fut.done():
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            getter = asyncio.ensure_future(self.inbox.get())
            try:
                await asyncio.wait({fut, getter}, timeout=left,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not getter.done():
                    getter.cancel()
            # an event taken off the inbox is always applied, even if the
            # future won the race, so a hang-up is never lost
            if getter.done() and not getter.cancelled():
                if until_event:
                    self._requeue(getter.result())
                    return fut.result() if fut.done() else None
                digit = self._absorb(getter.result())
                if digit is not None:
                    self.pending_digits.append(digit)
        return fut.result()

    def _requeue(self, ev: Event) -> None:
        """Put an event back at the head of the inbox, ahead of any that came after."""
        rest: list[Event] = []
        while not self.inbox.empty():
            rest.append(self.inbox.get_nowait())
        self.inbox.put_nowait(ev)
        for item in rest:
            self.inbox.put_nowait(item)

    async def hangup(self, reason: str = "normal") -> None:
        if self.gone:
            return
        client = self.ari_ref()
        if client is not None:
            await client.hangup(self.channel_id, reason)
        self.gone = "app"


def _prompt_name(media: str, lang: str) -> str:
    """'lang:hotline/name' for the record, also for a path naming its own language."""
    path = media.removeprefix("sound:")
    if path.startswith("/") and "/sounds/" in path:
        own, _, rest = path.split("/sounds/", 1)[1].partition("/")
        return f"{own}:{rest}"
    return f"{lang}:{path}"
