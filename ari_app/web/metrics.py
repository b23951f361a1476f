"""GET /metrics: the app's metrics plus the web layer's own, in Prometheus text format.

`WebDeps.refresh` (gauges that need Redis: waiting per entity, agents per
state) runs before rendering, at most once a second however many scrapers
ask, and with a time limit: a slow Redis yields slightly stale gauges, never
a hung scrape.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiohttp import web

from ari_app.live.counters import family
from ari_app.logs import get_logger
from ari_app.web.deps import WebDeps
from ari_app.web.sse import SnapshotHub

log = get_logger("web.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class WebStats:
    auth_failures: int = 0
    rate_limited: int = 0
    refresh_errors: int = 0
    api: dict[tuple[str, int], int] = field(default_factory=dict)

    def api_request(self, action: str, status: int) -> None:
        key = (action, status)
        self.api[key] = self.api.get(key, 0) + 1

    def render(self, hub: SnapshotHub) -> str:
        lines: list[str] = []
        lines += family("hotline_http_auth_failures_total", "counter",
                        "API requests refused for a missing or wrong token.",
                        [({}, self.auth_failures)])
        lines += family("hotline_http_rate_limited_total", "counter",
                        "API requests refused with 429 after repeated failed authentications.",
                        [({}, self.rate_limited)])
        lines += family("hotline_http_api_requests_total", "counter",
                        "Agents' API requests by action and HTTP status.",
                        [({"action": a, "code": str(c)}, n)
                         for (a, c), n in sorted(self.api.items())])
        lines += family("hotline_metrics_refresh_errors_total", "counter",
                        "Failed or timed-out refreshes of Redis-derived gauges.",
                        [({}, self.refresh_errors)])
        lines += family("hotline_wallboard_clients", "gauge",
                        "Wallboard screens connected to this instance.", [({}, len(hub.clients))])
        lines += family("hotline_wallboard_snapshots_total", "counter",
                        "Live snapshots produced for the wallboard.", [({}, hub.snapshots)])
        lines += family("hotline_wallboard_snapshot_errors_total", "counter",
                        "Live snapshots that failed.", [({}, hub.errors)])
        lines += family("hotline_wallboard_snapshot_seconds", "gauge",
                        "Duration of the last live snapshot, seconds.", [({}, hub.last_duration)])
        return "\n".join(lines) + "\n"


STATS_KEY: web.AppKey[WebStats] = web.AppKey("web_stats", WebStats)


class MetricsEndpoint:
    def __init__(self, deps: WebDeps, stats: WebStats, hub: SnapshotHub, *,
                 min_interval: float = 1.0, timeout: float = 3.0) -> None:
        self.deps = deps
        self.stats = stats
        self.hub = hub
        self.min_interval = min_interval
        self.timeout = timeout
        self._lock = asyncio.Lock()
        self._refreshed = 0.0

    async def _refresh(self) -> None:
        if self.deps.refresh is None:
            return
        async with self._lock:
            if time.monotonic() - self._refreshed < self.min_interval:
                return
            try:
                await asyncio.wait_for(self.deps.refresh(), self.timeout)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - a scrape must still answer
                self.stats.refresh_errors += 1
                log.warning("metrics.refresh_failed", error=repr(e))
            self._refreshed = time.monotonic()

    async def handle(self, request: web.Request) -> web.Response:
        del request
        await self._refresh()
        body = self.deps.metrics.prometheus()
        if body and not body.endswith("\n"):
            body += "\n"
        body += self.stats.render(self.hub)
        return web.Response(body=body.encode(), headers={"Content-Type": CONTENT_TYPE,
                                                        "Cache-Control": "no-store"})
