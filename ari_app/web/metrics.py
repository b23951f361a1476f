"""GET /metrics: the app's metrics plus the web layer's own, in Prometheus text format
(both exposed by prometheus_client, each from its own registry).

`WebDeps.refresh` (gauges that need Redis: waiting per entity, agents per
state) runs before rendering, at most once a second however many scrapers
ask, and with a time limit: a slow Redis yields slightly stale gauges, never
a hung scrape.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ari_app.live.counters import exposition
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
        """These figures alone, in the text format (tests and tools)."""
        reg = CollectorRegistry(auto_describe=True)
        reg.register(WebCollector(self, hub))
        return exposition(reg)


class WebCollector(Collector):
    """The web layer's own figures, read at scrape time."""

    def __init__(self, stats: WebStats, hub: SnapshotHub) -> None:
        self.stats = stats
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        st, hub = self.stats, self.hub
        yield CounterMetricFamily("hotline_http_auth_failures",
                                  "API requests refused for a missing or wrong token.",
                                  value=st.auth_failures)
        yield CounterMetricFamily(
            "hotline_http_rate_limited",
            "API requests refused with 429 after repeated failed authentications.",
            value=st.rate_limited)
        api = CounterMetricFamily("hotline_http_api_requests",
                                  "Agents' API requests by action and HTTP status.",
                                  labels=["action", "code"])
        for (a, c), n in sorted(st.api.items()):
            api.add_metric([a, str(c)], n)
        yield api
        yield CounterMetricFamily("hotline_metrics_refresh_errors",
                                  "Failed or timed-out refreshes of Redis-derived gauges.",
                                  value=st.refresh_errors)
        yield GaugeMetricFamily("hotline_wallboard_clients",
                                "Wallboard screens connected to this instance.",
                                value=len(hub.clients))
        yield CounterMetricFamily("hotline_wallboard_snapshots",
                                  "Live snapshots produced for the wallboard.",
                                  value=hub.snapshots)
        yield CounterMetricFamily("hotline_wallboard_snapshot_errors",
                                  "Live snapshots that failed.", value=hub.errors)
        yield GaugeMetricFamily("hotline_wallboard_snapshot_seconds",
                                "Duration of the last live snapshot, seconds.",
                                value=hub.last_duration)


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
        # this endpoint's own registry (never the client's global one)
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(WebCollector(stats, hub))

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
        body += exposition(self.registry)
        return web.Response(body=body.encode(), headers={"Content-Type": CONTENT_TYPE,
                                                        "Cache-Control": "no-store"})
