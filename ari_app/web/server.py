"""The app's HTTP server (aiohttp, loopback by default)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ari_app.logs import get_logger

log = get_logger("web")


class WebServer:
    def __init__(self, bind: str, port: int, health: Callable[[], dict[str, Any]]) -> None:
        self.bind = bind
        self.port = port
        self._health = health
        self.app = web.Application(client_max_size=64 * 1024)
        self.app.router.add_get("/health", self.health)

    async def health(self, request: web.Request) -> web.Response:
        body = self._health()
        return web.json_response(body, status=200 if body.get("ready") else 503)

    async def serve(self, stop: asyncio.Event) -> None:
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.bind, self.port)
        await site.start()
        log.info("web.listening", bind=self.bind, port=self.port)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
