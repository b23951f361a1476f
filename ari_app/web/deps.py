"""What the HTTP layer needs from the rest of the app, as narrow typed interfaces.

The app builds one `WebDeps` at start-up; tests build one over real Redis
state. Nothing in web/ reaches into the app's internals beyond these.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web


class LiveView(Protocol):
    async def snapshot(self) -> dict[str, Any]:
        """The live picture for the wallboard, shaped as:

        {
          "at": "2026-11-28T10:00:00.000Z",
          "waiting": [{"entity": "phcc", "name": {"en": "...", "ar": "..."},
                       "count": 3, "longest_seconds": 42.0}],        # every entity with callers
          "sites": [{"site": "doha_hq", "name": "Doha HQ",
                     "agents": {"available": 4, "offered": 1, "on_call": 9, "wrapup": 2,
                                "paused": 1, "logged_out": 33},
                     "unreachable": 0}],
          "today": {"offered": 120, "answered": 100, "abandoned_in_queue": 6,
                    "abandoned_in_menu": 9, "asa_seconds": 11.2,
                    "service_level": 0.83, "sla_seconds": 20},
          "in_menus": 5,
        }
        """
        ...


class Metrics(Protocol):
    def prometheus(self) -> str:
        """Every metric in Prometheus text exposition format (counters, gauges, histograms)."""
        ...


class AgentControl(Protocol):
    """What the agents' HTTP API (and the phones' feature codes) may do."""

    async def login(self, agent_id: str) -> str: ...
    async def logout(self, agent_id: str) -> str: ...
    async def pause(self, agent_id: str, reason: str) -> str: ...
    async def resume(self, agent_id: str) -> str: ...
    async def status(self, agent_id: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class WebDeps:
    health: Callable[[], dict[str, Any]]
    live: LiveView
    metrics: Metrics
    agents: AgentControl
    token: str
    # refreshed metrics gauges that need I/O (queue lengths, agents per state)
    refresh: Callable[[], Awaitable[None]] | None = None
    # more /api/ routes (the announcements'): (app, the API's token check) -> None
    api_routes: Callable[[web.Application, Callable[[web.Request], None]], None] | None = None
