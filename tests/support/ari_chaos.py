"""A fault-injecting ARI proxy on loopback, between the app and Asterisk.

Every REST request the app sends is forwarded to Asterisk unless a seeded
random draw (one per request, in arrival order) picks it for a fault; faults
alternate between an HTTP 500 and a hold (the proxy keeps the request open and
answers nothing until the client gives up). A 500 never reaches Asterisk. Holds
alternate between the two ways a timeout happens: the request is lost on the
way (Asterisk never sees it) or the answer is (Asterisk did it, the app cannot
know: an originate that rings an agent anyway, a hang-up that happened). The events
websocket is forwarded both ways and its handshake is never faulted; it can be
dropped on demand (once or more), and the app must then reconnect.

Nothing the app sends is excluded from the draw: swagger loading
(`/ari/api-docs/...`) at a reconnect is faulted like any call's request. The
only thing kept out is time: the test starts the app with the fault rate at 0
and turns it up once the app is ready, so the stack can start at all.

`ChaosProxy` runs on the caller's event loop; `ChaosThread` runs one in a
thread of its own for synchronous (pytest + SIPp) tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

# hop-by-hop headers (RFC 9110 7.6.1) and those aiohttp recomputes for the new body
_DROP_REQUEST = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
                 "transfer-encoding", "upgrade", "content-length"}
_DROP_RESPONSE = _DROP_REQUEST | {"content-encoding"}
_ID_SEGMENT = re.compile(r"[0-9]")


def op_name(method: str, path: str) -> str:
    """'POST /ari/channels/abc-1/answer' -> 'POST channels/*/answer' (ids, which
    always hold a digit here, folded)."""
    parts = [p for p in path.split("/") if p][1:]  # drop the leading 'ari'
    return method + " " + "/".join("*" if _ID_SEGMENT.search(p) else p for p in parts)


@dataclass
class ChaosCounts:
    forwarded: int = 0
    failed_500: int = 0
    held: int = 0
    held_abandoned: int = 0  # holds the client gave up on (its timeout fired)
    held_after: int = 0      # holds of the answer: Asterisk carried the request out
    upstream_errors: int = 0
    ws_opened: int = 0
    ws_dropped: int = 0
    faulted_ops: Counter[str] = field(default_factory=Counter)
    # what a (re)connect costs: websocket and swagger (api-docs) requests, with the
    # time since the proxy started, what the proxy did and how long it took
    trace: list[str] = field(default_factory=list)

    def snapshot(self) -> ChaosCounts:
        out = ChaosCounts(**{k: v for k, v in vars(self).items()
                             if k not in ("faulted_ops", "trace")})
        out.faulted_ops = Counter(self.faulted_ops)
        out.trace = list(self.trace)
        return out


class ChaosProxy:
    def __init__(self, upstream: str, *, seed: int, fault_rate: float = 0.0,
                 hold_max: float = 60.0,
                 exclude: Callable[[str, str], bool] | None = None) -> None:
        """`upstream`: Asterisk's HTTP base, e.g. http://127.0.0.1:8088 ;
        `hold_max`: a held request is answered 504 after this long if the client
        is still there (a client without a timeout would otherwise hang forever)."""
        self.upstream = upstream.rstrip("/")
        self.fault_rate = fault_rate
        self.hold_max = hold_max
        self.exclude = exclude or (lambda _m, _p: False)
        self.counts = ChaosCounts()
        self._rng = random.Random(seed)
        self._faults = 0
        self._sockets: set[web.WebSocketResponse] = set()
        self._ws_open = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._t0 = 0.0
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def start(self, port: int = 0) -> str:
        self._t0 = asyncio.get_running_loop().time()
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=30), auto_decompress=False,
            connector=aiohttp.TCPConnector(limit=0))
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        return self.url

    async def stop(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # -- faults ------------------------------------------------------------------
    def _draw(self, method: str, path: str) -> str | None:
        """None (forward), '500' or 'hold'; one draw per request, in arrival order."""
        if self.exclude(method, path):
            return None
        if self._rng.random() >= self.fault_rate:
            return None
        self._faults += 1
        if self._faults % 2:
            return "500"
        return "hold" if self._faults % 4 else "hold_after"

    async def _hold(self, request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.hold_max
        try:
            while loop.time() < deadline:
                transport = request.transport
                if transport is None or transport.is_closing():
                    self.counts.held_abandoned += 1
                    break
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:  # aiohttp cancels the handler when the client goes
            self.counts.held_abandoned += 1
            raise
        return web.Response(status=504, text="held by the chaos proxy")

    # -- forwarding ----------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        response = await self._answer(request)
        if "/api-docs/" in request.path or "/events" in request.path:
            what = "ws" if isinstance(response, web.WebSocketResponse) else response.status
            if len(self.counts.trace) < 400:
                self.counts.trace.append(
                    f"{t0 - self._t0:8.3f}s {op_name(request.method, request.path)} -> {what} "
                    f"in {(loop.time() - t0) * 1000:.0f} ms")
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        fault = self._draw(request.method, request.path)
        if fault is not None:
            self.counts.faulted_ops[f"{fault} {op_name(request.method, request.path)}"] += 1
            if fault == "500":
                self.counts.failed_500 += 1
                return web.Response(status=500, text="injected by the chaos proxy")
            self.counts.held += 1
            if fault == "hold_after":
                self.counts.held_after += 1
                await self._forward(request)
            return await self._hold(request)
        return await self._forward(request)

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        # Host is kept: Asterisk writes it into the swagger basePath, which is where
        # asyncari then sends every request, so it must name this proxy
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST}
        body = await request.read()
        try:
            async with self._session.request(request.method, self.upstream + request.path_qs,
                                             headers=headers, data=body or None,
                                             allow_redirects=False) as up:
                payload = await up.read()
                out = {k: v for k, v in up.headers.items() if k.lower() not in _DROP_RESPONSE}
                self.counts.forwarded += 1
                return web.Response(status=up.status, body=payload, headers=out)
        except (aiohttp.ClientError, TimeoutError) as e:
            self.counts.upstream_errors += 1
            return web.Response(status=502, text=f"chaos proxy: upstream failed: {e}")

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("authorization", "host")}
        try:
            upstream = await self._session.ws_connect(
                self.upstream + request.path_qs, headers=headers, autoping=True,
                heartbeat=None, timeout=aiohttp.ClientWSTimeout(ws_close=2.0))
        except (aiohttp.ClientError, TimeoutError) as e:
            self.counts.upstream_errors += 1
            return web.Response(status=502, text=f"chaos proxy: upstream websocket failed: {e}")
        down = web.WebSocketResponse(autoping=True)
        await down.prepare(request)
        self.counts.ws_opened += 1
        self._sockets.add(down)
        self._ws_open.set()

        async def pump(src: Any, dst: Any) -> None:
            async for msg in src:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await dst.send_str(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    await dst.send_bytes(msg.data)
                else:
                    break

        try:
            tasks = [asyncio.ensure_future(pump(upstream, down)),
                     asyncio.ensure_future(pump(down, upstream))]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._sockets.discard(down)
            if not self._sockets:
                self._ws_open.clear()
            await upstream.close()
            await down.close()
        return down

    async def drop_websocket(self) -> int:
        """Close every open events websocket (both sides) as a network fault would."""
        dropped = 0
        for ws in list(self._sockets):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"chaos drop")
            dropped += 1
        self.counts.ws_dropped += dropped
        return dropped

    async def wait_websocket(self, timeout: float) -> None:
        await asyncio.wait_for(self._ws_open.wait(), timeout)


class ChaosThread:
    """A ChaosProxy on its own event loop in a daemon thread, driven from sync code."""

    def __init__(self, upstream: str, *, seed: int, hold_max: float = 60.0) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ari-chaos",
                                        daemon=True)
        self.proxy = ChaosProxy(upstream, seed=seed, hold_max=hold_max)

    def _call(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> str:
        self._thread.start()
        return str(self._call(self.proxy.start()))

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self.proxy.stop(), timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def set_fault_rate(self, rate: float) -> None:
        self._loop.call_soon_threadsafe(setattr, self.proxy, "fault_rate", rate)

    def drop_websocket(self) -> int:
        return int(self._call(self.proxy.drop_websocket()))

    def wait_websocket(self, timeout: float) -> None:
        self._call(self.proxy.wait_websocket(timeout), timeout + 1)

    def counts(self) -> ChaosCounts:
        async def snap() -> ChaosCounts:
            return self.proxy.counts.snapshot()

        return self._call(snap())  # type: ignore[no-any-return]
