"""The interaction: one citizen's contact, with its legs by role and its bridges.

A call used to be one coroutine that privately owned one agent leg (found by
the naming convention `{call_id}-a{n}`) and one bridge. An interaction names
every channel and bridge it owns, by role, so a second agent leg (consult), a
supervisor's snoop leg or a callback leg has a place, the event router can hand
each of their events to the interaction, and recovery after a restart knows
exactly what to clean up or resume from the checkpoint rather than a convention.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ari_app.interactions.session import CallSession

if TYPE_CHECKING:
    from ari_app.interactions.router import EventRouter

# checkpoints written by another layout of this class are not read back: the
# call they describe is ended cleanly instead (interactions/recovery.py)
MODEL_VERSION = 2


class Role(StrEnum):
    CALLER = "caller"
    AGENT = "agent"
    CONSULT = "consult"
    SUPERVISOR = "supervisor"
    SNOOP = "snoop"  # the snoop channel on the agent's leg a supervisor listens through
    CALLBACK = "callback"


@dataclass
class Leg:
    role: Role
    channel_id: str
    agent: str | None = None
    # ringing until the far end answers; up once it is in Stasis and answered
    status: str = "ringing"


@dataclass
class Interaction:
    """Everything Asterisk holds for one contact, and the session that drives it.

    The caller's leg is the session's channel; the other legs and the bridges are
    registered with the router as they are created, so their events reach this
    interaction's inbox, and unregistered when they go."""

    id: str
    session: CallSession
    router: EventRouter | None = None
    legs: dict[Role, Leg] = field(default_factory=dict)
    bridges: dict[str, str] = field(default_factory=dict)
    seen: int = 0  # leg/bridge ids handed out, so ids stay unique across a restart

    def __post_init__(self) -> None:
        self.legs.setdefault(Role.CALLER, Leg(Role.CALLER, self.session.channel_id, status="up"))

    @property
    def caller(self) -> Leg:
        return self.legs[Role.CALLER]

    def new_id(self, kind: str) -> str:
        """A fresh channel or bridge id of this interaction: `{id}-{kind}{n}`."""
        self.seen += 1
        return f"{self.id}-{kind}{self.seen}"

    def add_leg(self, role: Role, channel_id: str, agent: str | None = None) -> Leg:
        leg = Leg(role, channel_id, agent)
        self.legs[role] = leg
        if self.router is not None:
            self.router.register(channel_id, self)
        return leg

    def drop_leg(self, role: Role) -> Leg | None:
        leg = self.legs.pop(role, None) if role != Role.CALLER else None
        if leg is not None and self.router is not None:
            self.router.unregister(leg.channel_id)
        return leg

    def leg(self, role: Role) -> Leg | None:
        return self.legs.get(role)

    def role_of(self, channel_id: str) -> Role | None:
        for role, leg in self.legs.items():
            if leg.channel_id == channel_id:
                return role
        return None

    def add_bridge(self, purpose: str, bridge_id: str) -> None:
        self.bridges[purpose] = bridge_id
        if self.router is not None:
            self.router.register_bridge(bridge_id, self)

    def drop_bridge(self, purpose: str) -> str | None:
        bridge = self.bridges.pop(purpose, None)
        if bridge is not None and self.router is not None:
            self.router.unregister_bridge(bridge)
        return bridge

    def channel_ids(self) -> list[str]:
        return [leg.channel_id for leg in self.legs.values()]

    def deliver(self, event: dict[str, Any]) -> None:
        self.session.deliver(event)

    # -- persistence -------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        return {
            "v": MODEL_VERSION,
            "legs": [{"role": leg.role.value, "channel": leg.channel_id, "agent": leg.agent,
                      "status": leg.status} for leg in self.legs.values()],
            "bridges": dict(self.bridges),
            "seen": self.seen,
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Legs and bridges from a checkpoint; raises ValueError when it is not ours."""
        if data.get("v") != MODEL_VERSION:
            raise ValueError(f"interaction checkpoint version {data.get('v')!r}, "
                             f"this program reads {MODEL_VERSION}")
        self.seen = int(data.get("seen", 0))
        for item in data.get("legs") or []:
            role = Role(item["role"])
            if role == Role.CALLER:
                continue
            leg = self.add_leg(role, str(item["channel"]), item.get("agent"))
            leg.status = str(item.get("status") or "ringing")
        for purpose, bridge in (data.get("bridges") or {}).items():
            self.add_bridge(str(purpose), str(bridge))
