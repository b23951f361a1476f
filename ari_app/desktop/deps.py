"""What the desktop needs from the rest of the app, as narrow typed interfaces.

The app builds one `DesktopDeps` at start-up (ari_app/app.py). The agent's
actions go through the same control the agents' API uses (the pool, waking
the dispatcher); wrap-up is the wrap-up package's `WrapUps`
(ari_app/agents/wrapup.py) once the app wires it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis

from ari_app.config.agent_work import PauseReason
from ari_app.config.desktop import DesktopSettings
from ari_app.desktop.auth import DesktopAuth
from ari_app.desktop.history import CallerHistory


class AgentActions(Protocol):
    async def login(self, agent_id: str) -> str: ...
    async def logout(self, agent_id: str) -> str: ...
    async def pause(self, agent_id: str, reason: str) -> str: ...
    async def resume(self, agent_id: str) -> str: ...
    async def status(self, agent_id: str) -> dict[str, Any] | None: ...


class WrapUpService(Protocol):
    """The wrap-up package's `WrapUps` (the interface agreed with it)."""

    async def tag(self, agent_id: str, call_id: str, kind: str, sub_reason: str | None,
                  note: str | None) -> None: ...
    async def done(self, agent_id: str) -> None: ...
    async def extend(self, agent_id: str, seconds: float) -> float: ...
    def reasons(self, entity: str) -> Sequence[Any]: ...


@dataclass(frozen=True)
class WrapUp:
    service: WrapUpService
    error: type[Exception]  # what `service` raises for a refusal the agent must read


@dataclass(frozen=True)
class DesktopDeps:
    settings: DesktopSettings
    auth: DesktopAuth
    redis: Redis
    key_prefix: str
    agents: AgentActions
    history: CallerHistory | None
    # the center's pause reasons (agent_work.pause_reasons); "missed_call" is the system's
    pause_reasons: Sequence[PauseReason]
    wrapup: WrapUp | None = None
