"""Keeps one ARI connection alive.

asyncari connects once and never reconnects. This supervisor owns the
connection: it reconnects with exponential backoff and full jitter (a restarted
Asterisk is not hammered by every app instance at once, and there is no tight
loop while it is down), logs each state change, and tells the app when the
connection comes and goes so calls can be reconciled.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio

from ari_app.ari import transcript
from ari_app.ari.client import AriClient, Event, RawClient, make_http
from ari_app.config.models import AriSettings
from ari_app.logs import get_logger

log = get_logger("ari")


class Backoff:
    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self.attempt = 0
        self._rng = rng or random.Random()

    def reset(self) -> None:
        self.attempt = 0

    def next(self) -> float:
        """Full jitter: uniform in [initial/2, min(max, initial * 2**attempt)]."""
        cap = min(self.maximum, self.initial * (2 ** self.attempt))
        self.attempt += 1
        return self._rng.uniform(min(self.initial / 2, cap), cap)


class AriSupervisor:
    def __init__(self, settings: AriSettings, password: str,
                 on_event: Callable[[Event], None],
                 on_connected: Callable[[AriClient], None],
                 on_disconnected: Callable[[], None]) -> None:
        self.settings = settings
        self._password = password
        self._on_event = on_event
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self.client: AriClient | None = None
        self.connected = asyncio.Event()
        self.connects = 0
        self.failures = 0
        self.backoff = Backoff(settings.reconnect_initial, settings.reconnect_max)
        # a capture of the ARI traffic for test fixtures (ari/transcript.py); when the
        # variable is unset the plain sink and client are used, at no cost
        self.transcript = transcript.from_env()
        if self.transcript is not None:
            self._on_event = self.transcript.event_sink(on_event)
            log.warning("ari.transcript_on", path=str(self.transcript.path))

    def _client(self, raw: RawClient) -> AriClient:
        timeout = self.settings.request_timeout
        if self.transcript is None:
            return AriClient(raw, timeout)
        return transcript.RecordingAriClient(raw, self.transcript, timeout)

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[RawClient]:
        host = urllib.parse.urlparse(self.settings.url).hostname or "127.0.0.1"
        http = make_http(host, self.settings.username, self._password,
                         timeout=self.settings.request_timeout)
        try:
            async with anyio.create_task_group() as tg:
                raw = RawClient(tg, self.settings.url, self.settings.app, http, self._on_event)
                async with raw:
                    try:
                        yield raw
                    finally:
                        tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await http.close()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with self._session() as raw:
                    if self.client is None:
                        self.client = self._client(raw)
                    else:
                        self.client.attach(raw)
                    if self.transcript is not None:
                        self.transcript.write({"kind": "connected"})
                    self.connects += 1
                    self.backoff.reset()
                    self.connected.set()
                    log.info("ari.connected", url=self.settings.url, app=self.settings.app,
                             connects=self.connects)
                    self._on_connected(self.client)
                    stopper = asyncio.ensure_future(stop.wait())
                    closed = asyncio.ensure_future(raw.closed.wait())
                    try:
                        await asyncio.wait({stopper, closed}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        stopper.cancel()
                        closed.cancel()
                    if not stop.is_set():
                        log.warning("ari.disconnected", reason="websocket closed")
            except Exception as e:  # noqa: BLE001 - any failure means: retry later
                self.failures += 1
                log.warning("ari.connect_failed", error=_describe(e), attempt=self.backoff.attempt)
            finally:
                # the client stays: requests made until the next connect wait for it
                if self.client is not None and self.client.attached:
                    self.client.detach()
                    if self.transcript is not None:
                        self.transcript.write({"kind": "disconnected"})
                    self.connected.clear()
                    self._on_disconnected()
            if stop.is_set():
                break
            delay = self.backoff.next()
            log.info("ari.reconnect_wait", seconds=round(delay, 2))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)


def _describe(e: BaseException) -> str:
    if isinstance(e, BaseExceptionGroup) and e.exceptions:
        return _describe(e.exceptions[0])
    return f"{type(e).__name__}: {e}"[:300]
