"""The app's HTTP server (aiohttp, loopback by default).

Routes (docs/wallboard.md has the details):
  GET  /health                       readiness JSON; 200 when ready, else 503
  GET  /metrics                      Prometheus text format (no auth)
  GET  /wallboard[?lang=ar]          the wall-screen page (no auth)
  GET  /wallboard/events             server-sent events: one live snapshot a second
  GET  /wallboard/static/{name}      the page's JS and CSS
  GET  /api/v1/agents/{id}           agent status            (Bearer token)
  POST /api/v1/agents/{id}/login|logout|pause|resume         (Bearer token)
  /desktop...                        the agents' desktop, mounted from `mounts`
                                     (ari_app/desktop/routes.py, docs/agent-desktop.md)

With an `ssl_context` (http.tls_cert/tls_key) it serves HTTPS only, sends
Strict-Transport-Security on every response and marks any cookie Secure.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from ari_app.logs import get_logger
from ari_app.web.api import MAX_BODY, AgentApi, FailureLimiter, json_errors
from ari_app.web.deps import WebDeps
from ari_app.web.metrics import STATS_KEY, MetricsEndpoint, WebStats
from ari_app.web.sse import SnapshotHub
from ari_app.web.wallboard import Wallboard

log = get_logger("web")

class WebServer:
    """`deps` is the app's `WebDeps`. A bare health callable is still accepted while
    the app's wiring moves over; it serves /health only."""

    def __init__(
        self,
        bind: str,
        port: int,
        deps: WebDeps | Callable[[], dict[str, Any]],
        *,
        snapshot_interval: float = 1.0,
        limiter: FailureLimiter | None = None,
        max_screens: int = 200,
        ssl_context: ssl.SSLContext | None = None,
        hsts_max_age: int = 31_536_000,
        mounts: Sequence[Callable[[web.Application], None]] = (),
    ) -> None:
        self.bind = bind
        self.ssl_context = ssl_context
        self.hsts = f"max-age={hsts_max_age}; includeSubDomains"
        self.port = port
        self.bound_port: int | None = None
        self.started = asyncio.Event()
        self.stats = WebStats()
        self.app = web.Application(client_max_size=MAX_BODY, middlewares=[json_errors])
        self.app[STATS_KEY] = self.stats
        if ssl_context is not None:
            self.app.on_response_prepare.append(self._secure_headers)
        if isinstance(deps, WebDeps):
            self.deps: WebDeps | None = deps
            self._health = deps.health
        else:
            self.deps = None
            self._health = deps
        self.app.router.add_get("/health", self.health, name="health")
        self.hub: SnapshotHub | None = None
        if self.deps is not None:
            self.hub = SnapshotHub(self.deps.live, interval=snapshot_interval,
                                   max_clients=max_screens)
            self.api = AgentApi(self.deps.agents, self.deps.token, self.stats, limiter)
            self.metrics = MetricsEndpoint(self.deps, self.stats, self.hub)
            self.wallboard = Wallboard()
            self.app.router.add_get("/metrics", self.metrics.handle, name="metrics")
            self.wallboard.add_routes(self.app)
            self.app.router.add_get("/wallboard/events", self.hub.handle, name="wallboard.events")
            self.api.add_routes(self.app)
            self.app.on_shutdown.append(self._close_streams)
        for mount in mounts:  # pages that other packages own add their routes here
            mount(self.app)

    async def _close_streams(self, app: web.Application) -> None:
        del app
        if self.hub is not None:
            await self.hub.close()

    async def _secure_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        del request
        response.headers["Strict-Transport-Security"] = self.hsts
        # aiohttp has already turned the cookies into Set-Cookie headers by now
        cookies = response.headers.getall("Set-Cookie", [])
        if cookies:
            del response.headers["Set-Cookie"]
            for c in cookies:
                secure = "secure" in (p.strip().lower() for p in c.split(";"))
                response.headers.add("Set-Cookie", c if secure else f"{c}; Secure")

    async def health(self, request: web.Request) -> web.Response:
        del request
        body = self._health()
        return web.json_response(body, status=200 if body.get("ready") else 503)

    async def serve(self, stop: asyncio.Event) -> None:
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(runner, self.bind, self.port, ssl_context=self.ssl_context)
        await site.start()
        addrs = runner.addresses
        self.bound_port = int(addrs[0][1]) if addrs else self.port
        log.info("web.listening", bind=self.bind, port=self.bound_port,
                 scheme="https" if self.ssl_context else "http",
                 api=bool(self.deps and self.deps.token))
        self.started.set()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
