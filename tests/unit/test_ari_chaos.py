"""The chaos proxy itself, against a stand-in ARI server: it forwards what it
does not fault, faults what its seed says, holds until the client's timeout,
and forwards and drops the events websocket."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest
from aiohttp import web

from ari_app.ari.client import make_http
from tests.support.ari_chaos import ChaosProxy, op_name


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, list[str]]]:
    """A stand-in for Asterisk: echoes the request, and a websocket that says hello
    and echoes. Returns its base URL and the paths it served."""
    seen: list[str] = []

    async def rest(request: web.Request) -> web.Response:
        seen.append(request.method + " " + request.path_qs)
        if request.path == "/ari/reset":
            assert request.transport is not None
            request.transport.close()  # the connection dies under this one request
            await asyncio.sleep(0.1)
        if request.path.startswith("/ari/slow/"):
            await asyncio.sleep(0.4)  # answered inside the client's 0.5 s
        return web.json_response({"host": request.headers.get("Host"),
                                  "auth": request.headers.get("Authorization"),
                                  "body": (await request.read()).decode()}, status=200)

    async def events(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"type": "hello", "q": request.query_string}))
        async for msg in ws:
            await ws.send_str("echo:" + msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/ari/events", events)
    app.router.add_route("*", "/ari/{tail:.*}", rest)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


@pytest.fixture
async def proxy(upstream: tuple[str, list[str]]) -> AsyncIterator[ChaosProxy]:
    p = ChaosProxy(upstream[0], seed=7, hold_max=5.0)
    await p.start()
    yield p
    await p.stop()


async def test_forwards_method_path_body_and_keeps_host(
        proxy: ChaosProxy, upstream: tuple[str, list[str]]) -> None:
    async with httpx.AsyncClient() as c:
        r = await c.post(proxy.url + "ari/channels/c-1/answer?x=1", content=b"{}",
                         headers={"Authorization": "Basic abc"})
    assert r.status_code == 200
    body = r.json()
    assert body == {"host": f"127.0.0.1:{proxy.port}", "auth": "Basic abc", "body": "{}"}
    assert upstream[1] == ["POST /ari/channels/c-1/answer?x=1"]
    assert proxy.counts.forwarded == 1 and proxy.counts.failed_500 == 0


async def test_faults_alternate_500_and_holds_before_and_after_asterisk(
        proxy: ChaosProxy, upstream: tuple[str, list[str]]) -> None:
    proxy.fault_rate = 1.0
    http = make_http("127.0.0.1", "u", "p", timeout=0.5)
    try:
        with pytest.raises(httpx.HTTPStatusError) as e:
            await http.request("DELETE", proxy.url + "ari/channels/c-1")
        assert e.value.response.status_code == 500
        t0 = time.monotonic()
        with pytest.raises(httpx.TimeoutException):
            await http.request("POST", proxy.url + "ari/bridges/b-1/addChannel")
        # the app's request timeout, not the proxy's hold_max, ended the hold
        assert time.monotonic() - t0 < 2.0
        assert upstream[1] == []  # neither reached Asterisk
        with pytest.raises(httpx.HTTPStatusError):
            await http.request("POST", proxy.url + "ari/channels/c-2/answer")
        # the fourth fault: Asterisk carries it out, the answer is lost
        with pytest.raises(httpx.TimeoutException):
            await http.request("POST", proxy.url + "ari/channels/c-3/answer")
        assert upstream[1] == ["POST /ari/channels/c-3/answer"]
    finally:
        await http.close()
    for _ in range(50):
        if proxy.counts.held_abandoned == 2:
            break
        await asyncio.sleep(0.05)
    c = proxy.counts
    assert (c.failed_500, c.held, c.held_after, c.held_abandoned) == (2, 2, 1, 2)
    assert c.faulted_ops == {"500 DELETE channels/*": 1, "hold POST bridges/*/addChannel": 1,
                             "500 POST channels/*/answer": 1,
                             "hold_after POST channels/*/answer": 1}


async def test_the_seed_decides_which_requests_fail(upstream: tuple[str, list[str]]) -> None:
    async def pattern(seed: int) -> list[int]:
        p = ChaosProxy(upstream[0], seed=seed, fault_rate=0.3, hold_max=2.0)
        await p.start()
        try:
            async with httpx.AsyncClient(timeout=0.2) as c:
                out = []
                for _ in range(30):
                    try:
                        out.append((await c.get(p.url + "ari/asterisk/info")).status_code)
                    except httpx.TimeoutException:
                        out.append(0)
                return out
        finally:
            await p.stop()

    a, b = await pattern(11), await pattern(11)
    assert a == b and 500 in a and 0 in a and 200 in a
    assert a != await pattern(12)


async def test_websocket_is_forwarded_both_ways_and_dropped_on_demand(proxy: ChaosProxy) -> None:
    proxy.fault_rate = 1.0  # the handshake is never faulted
    async with aiohttp.ClientSession() as s, \
            s.ws_connect(proxy.url + "ari/events?app=hotline&api_key=u:p") as ws:
        hello = await ws.receive_str(timeout=5)
        assert "app=hotline" in hello
        await ws.send_str("ping1")
        assert await ws.receive_str(timeout=5) == "echo:ping1"
        assert await proxy.drop_websocket() == 1
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert proxy.counts.ws_opened == 1 and proxy.counts.ws_dropped == 1
    assert proxy.counts.failed_500 == proxy.counts.held == 0


def test_op_name_folds_ids() -> None:
    assert op_name("POST", "/ari/channels/1f3a-a1/play/pb-9") == "POST channels/*/play/*"
    assert op_name("GET", "/ari/api-docs/resources.json") == "GET api-docs/resources.json"


def test_request_timeout_is_a_bounded_ari_setting() -> None:
    from pydantic import ValidationError

    from ari_app.config.models import AriSettings

    assert AriSettings().request_timeout == 10.0
    assert AriSettings(request_timeout=2).request_timeout == 2.0
    for bad in (0, -1, 600):
        with pytest.raises(ValidationError, match="request_timeout"):
            AriSettings(request_timeout=bad)


async def test_one_timed_out_request_does_not_fail_the_others_in_flight(
        upstream: tuple[str, list[str]]) -> None:
    """A hold that times out one call's request must not break the requests other
    calls have in flight on the same connection pool."""
    p = ChaosProxy(upstream[0], seed=1, hold_max=5.0)
    await p.start()
    http = make_http("127.0.0.1", "u", "p", timeout=0.5)
    try:
        # one request held; while it waits, others start; it times out while they
        # are still in flight (they take 0.4 s, well inside their own 0.5 s)
        loop = asyncio.get_running_loop()
        p.fault_rate = 1.0
        p._faults = 1  # the next fault is a hold
        held = loop.create_task(http.request("GET", p.url + "ari/held"))
        await asyncio.sleep(0.1)
        p.fault_rate = 0.0
        await asyncio.sleep(0.2)
        others = [loop.create_task(http.request("GET", p.url + f"ari/slow/{i}"))
                  for i in range(8)]
        with pytest.raises(httpx.TimeoutException):
            await held
        results = await asyncio.gather(*others, return_exceptions=True)
        assert [getattr(r, "status_code", r) for r in results] == [200] * 8
    finally:
        await http.close()
        await p.stop()


async def test_one_broken_connection_does_not_fail_the_others_in_flight(
        upstream: tuple[str, list[str]]) -> None:
    http = make_http("127.0.0.1", "u", "p", timeout=2.0)
    try:
        loop = asyncio.get_running_loop()
        others = [loop.create_task(http.request("GET", upstream[0] + f"/ari/slow/{i}"))
                  for i in range(8)]
        await asyncio.sleep(0.1)
        with pytest.raises(httpx.TransportError):
            await http.request("GET", upstream[0] + "/ari/reset")
        results = await asyncio.gather(*others, return_exceptions=True)
        assert [getattr(r, "status_code", r) for r in results] == [200] * 8
        # and the fresh pool serves the next request
        assert (await http.request("GET", upstream[0] + "/ari/next")).status_code == 200
    finally:
        await http.close()
