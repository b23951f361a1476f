"""Routes each ARI event to the interaction that owns it, without ever blocking.

Ownership is by id: every channel (caller, agent, consult, supervisor legs),
every bridge and, through its target, every playback. An event that names no
owned id and is no StasisStart is dropped: it belongs to a call that ended.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ari_app.ari.client import Event
from ari_app.logs import get_logger

if TYPE_CHECKING:
    from ari_app.interactions.model import Interaction

log = get_logger("router")


class EventRouter:
    def __init__(self, on_new_channel: Callable[[Event], None]) -> None:
        self._by_channel: dict[str, Interaction] = {}
        self._by_bridge: dict[str, Interaction] = {}
        self._on_new_channel = on_new_channel
        self.events = 0
        self.errors = 0

    def register(self, channel_id: str, owner: Interaction) -> None:
        self._by_channel[channel_id] = owner

    def unregister(self, channel_id: str) -> None:
        self._by_channel.pop(channel_id, None)

    def register_bridge(self, bridge_id: str, owner: Interaction) -> None:
        self._by_bridge[bridge_id] = owner

    def unregister_bridge(self, bridge_id: str) -> None:
        self._by_bridge.pop(bridge_id, None)

    def owner(self, channel_id: str) -> Interaction | None:
        return self._by_channel.get(channel_id)

    def interactions(self) -> list[Interaction]:
        return list({id(i): i for i in self._by_channel.values()}.values())

    def __len__(self) -> int:
        return len(self._by_channel)

    def dispatch(self, ev: Event) -> None:
        """Called by the ARI reader for every event. It never raises: one malformed
        event, or a fault in one interaction's hand-off, must not stop the reader
        that every other call depends on."""
        self.events += 1
        try:
            self._dispatch(ev)
        except Exception as e:  # noqa: BLE001
            self.errors += 1
            log.warning("router.bad_event", type=str(ev.get("type"))[:40], error=repr(e)[:200])

    def _dispatch(self, ev: Event) -> None:
        kind = str(ev.get("type") or "")
        chan_id, bridge_id = _ids_of(ev, kind)
        owner = self._by_channel.get(chan_id) if chan_id else None
        if owner is None and bridge_id:
            owner = self._by_bridge.get(bridge_id)
        if owner is not None:
            owner.deliver(ev)
            return
        if kind == "StasisStart" and chan_id:
            self._on_new_channel(ev)


def _ids_of(ev: Event, kind: str) -> tuple[str | None, str | None]:
    """The channel and the bridge an event is about, as far as it names them."""
    chan: Any = ev.get("channel") or {}
    if kind == "ChannelTransfer":  # a REFER from a phone: it names the channel it came on
        chan = ((ev.get("referred_by") or {}).get("source_channel")) or {}
    chan_id = chan.get("id") if isinstance(chan, dict) else None
    bridge: Any = ev.get("bridge") or {}
    bridge_id = bridge.get("id") if isinstance(bridge, dict) else None
    if chan_id is None and kind.startswith(("Playback", "Recording")):
        media = ev.get("playback") or ev.get("recording") or {}
        target = str(media.get("target_uri", "")) if isinstance(media, dict) else ""
        kind_, _, ident = target.partition(":")
        if kind_ == "channel":
            chan_id = ident
        elif kind_ == "bridge":
            bridge_id = ident
    return (str(chan_id) if chan_id is not None else None,
            str(bridge_id) if bridge_id is not None else None)
