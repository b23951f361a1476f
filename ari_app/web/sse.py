"""Server-sent events for the wallboard: one shared producer, any number of screens.

A single producer task reads `LiveView.snapshot()` once per interval and hands
the encoded frame to every connected screen, so 50 screens cost Redis exactly
what one does (no polling storm). The producer runs only while at least one
screen is connected. Each screen has a one-frame mailbox: a slow screen skips
to the newest frame instead of growing a backlog in memory.

Screens reconnect through EventSource's own retry (the `retry:` field sets
its delay), and the page adds a fallback for the cases where the browser gives
up (an HTTP error status from a proxy, for instance).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from aiohttp import web

from ari_app.logs import get_logger
from ari_app.web.deps import LiveView

log = get_logger("web.sse")

RETRY_MS = 3000
KEEPALIVE_SECONDS = 15.0
Frame = bytes | None  # None tells a screen's handler to end the stream (shutdown)


def frame(event: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {body}\n\n".encode()


class SnapshotHub:
    def __init__(
        self,
        source: LiveView,
        *,
        interval: float = 1.0,
        timeout: float = 5.0,
        max_clients: int = 200,
    ) -> None:
        self.source = source
        self.interval = interval
        self.timeout = timeout
        self.max_clients = max_clients
        self.clients: set[asyncio.Queue[Frame]] = set()
        self.last: bytes | None = None
        self.last_at = 0.0
        self.seq = 0
        self.snapshots = 0
        self.errors = 0
        self.last_duration = 0.0
        self.closed = False
        self._task: asyncio.Task[None] | None = None

    # -- producer ----------------------------------------------------------------------------
    def subscribe(self) -> asyncio.Queue[Frame]:
        q: asyncio.Queue[Frame] = asyncio.Queue(maxsize=1)
        self.clients.add(q)
        if self.last is not None and time.monotonic() - self.last_at < 2 * self.interval:
            q.put_nowait(self.last)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._produce(), name="wallboard-producer")
        return q

    def unsubscribe(self, q: asyncio.Queue[Frame]) -> None:
        self.clients.discard(q)

    def _broadcast(self, msg: Frame) -> None:
        for q in list(self.clients):
            if q.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
            q.put_nowait(msg)

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        failing = False
        while self.clients and not self.closed:
            t0 = loop.time()
            try:
                snap = await asyncio.wait_for(self.source.snapshot(), self.timeout)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - any failure of the source is reported alike
                self.errors += 1
                if not failing:
                    log.warning("wallboard.snapshot_failed", error=repr(e))
                failing = True
                self._broadcast(frame("unavailable", {"error": "live data unavailable"}))
            else:
                if failing:
                    log.info("wallboard.snapshot_recovered")
                failing = False
                self.seq += 1
                self.snapshots += 1
                self.last = frame("snapshot", snap, self.seq)
                self.last_at = time.monotonic()
                self._broadcast(self.last)
            self.last_duration = loop.time() - t0
            await asyncio.sleep(max(0.05, self.interval - self.last_duration))

    async def close(self) -> None:
        """End every stream (at shutdown) and stop the producer."""
        self.closed = True
        self._broadcast(None)
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- one screen --------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.closed:
            raise web.HTTPServiceUnavailable(text="shutting down")
        if len(self.clients) >= self.max_clients:
            log.warning("wallboard.too_many_clients", limit=self.max_clients)
            return web.json_response(
                {"error": f"too many wallboard screens (limit {self.max_clients})"},
                status=503, headers={"Retry-After": "30"},
            )
        resp = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache, no-store",
            "X-Accel-Buffering": "no",
            "X-Content-Type-Options": "nosniff",
        })
        await resp.prepare(request)
        q = self.subscribe()
        log.info("wallboard.connected", remote=request.remote, screens=len(self.clients))
        try:
            await resp.write(f"retry: {RETRY_MS}\n\n".encode())
            while True:
                try:
                    msg = await asyncio.wait_for(q.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    await resp.write(b": keepalive\n\n")
                    continue
                if msg is None:
                    break
                await resp.write(msg)
        except ConnectionError:
            pass
        finally:
            self.unsubscribe(q)
            log.info("wallboard.disconnected", remote=request.remote, screens=len(self.clients))
        return resp
