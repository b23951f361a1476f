"""Routes each ARI event to the call it belongs to, without ever blocking."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ari_app.ari.client import Event
from ari_app.calls.session import CallSession
from ari_app.logs import get_logger

log = get_logger("router")


class EventRouter:
    def __init__(self, on_new_call: Callable[[Event], None]) -> None:
        self._by_channel: dict[str, CallSession] = {}
        self._on_new_call = on_new_call
        self.events = 0

    def register(self, channel_id: str, session: CallSession) -> None:
        self._by_channel[channel_id] = session

    def unregister(self, channel_id: str) -> None:
        self._by_channel.pop(channel_id, None)

    def sessions(self) -> list[CallSession]:
        return list({id(s): s for s in self._by_channel.values()}.values())

    def __len__(self) -> int:
        return len(self._by_channel)

    def dispatch(self, ev: Event) -> None:
        self.events += 1
        kind = ev.get("type")
        chan: Any = ev.get("channel") or {}
        if kind == "ChannelTransfer":  # a REFER from a phone: it names the channel it came on
            chan = ((ev.get("referred_by") or {}).get("source_channel")) or {}
        chan_id = chan.get("id") if isinstance(chan, dict) else None
        if chan_id is None and kind and kind.startswith("Playback"):
            target = str((ev.get("playback") or {}).get("target_uri", ""))
            chan_id = target.removeprefix("channel:") if target.startswith("channel:") else None
        session = self._by_channel.get(chan_id) if chan_id else None
        if session is not None:
            session.deliver(ev)
            return
        if kind == "StasisStart" and chan_id:
            self._on_new_call(ev)
