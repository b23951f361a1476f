"""The web server over real Redis state: /health, /metrics, /wallboard and its SSE stream.

`web_stack` is shared by the API tests and the browser tests: a real WebServer
on a free loopback port, over a real AgentPool / WaitingQueues / CallCounters.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from ari_app.agents.pool import AgentPool
from ari_app.config.loader import load_config
from ari_app.config.models import HotlineConfig
from ari_app.live.counters import CallCounters
from ari_app.live.view import RedisLiveView
from ari_app.queue.waiting import WaitingQueues
from ari_app.web.api import FailureLimiter, PoolAgentControl
from ari_app.web.deps import LiveView, WebDeps
from ari_app.web.server import WebServer
from tests.unit.test_metrics_counters import parse_prometheus, value

CONFIG = Path(__file__).resolve().parents[2] / "config" / "hotline.yaml"
TOKEN = "t0ken-for-tests-only-" + "x" * 20


@dataclass
class Stack:
    url: str
    server: WebServer
    redis: Redis
    cfg: HotlineConfig
    pool: AgentPool
    waiting: WaitingQueues
    counters: CallCounters
    view: RedisLiveView
    health: dict[str, Any]


@asynccontextmanager
async def web_stack(
    redis_url: str,
    *,
    token: str = TOKEN,
    limiter: FailureLimiter | None = None,
    live: LiveView | None = None,
    interval: float = 0.2,
    max_screens: int = 200,
) -> AsyncIterator[Stack]:
    redis = Redis.from_url(redis_url)
    cfg = load_config(CONFIG)
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    pool = AgentPool(redis, cfg.agents, key_prefix=prefix)
    wq = WaitingQueues(redis, key_prefix=prefix)
    counters = CallCounters()
    view = RedisLiveView(redis, pool, wq, cfg, counters)
    await pool.sync()
    health: dict[str, Any] = {"ready": True, "ari": True}
    deps = WebDeps(health=lambda: dict(health), live=live or view, metrics=counters,
                   agents=PoolAgentControl(pool), token=token, refresh=view.refresh)
    server = WebServer("127.0.0.1", 0, deps, snapshot_interval=interval, limiter=limiter,
                       max_screens=max_screens)
    stop = asyncio.Event()
    task = asyncio.create_task(server.serve(stop))
    await asyncio.wait_for(server.started.wait(), 5)
    try:
        yield Stack(f"http://127.0.0.1:{server.bound_port}", server, redis, cfg, pool, wq,
                    counters, view, health)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await redis.aclose()


class CountingLive:
    def __init__(self, inner: LiveView | None = None, fail: bool = False) -> None:
        self.inner = inner
        self.calls = 0
        self.fail = fail

    async def snapshot(self) -> dict[str, Any]:
        self.calls += 1
        if self.fail or self.inner is None:
            raise ConnectionError("redis is down")
        return await self.inner.snapshot()


async def read_events(resp: aiohttp.ClientResponse, n: int, timeout: float = 5.0
                      ) -> list[dict[str, Any]]:
    """The next `n` SSE events as {"id", "event", "data"} (comments and retry skipped)."""
    out: list[dict[str, Any]] = []
    cur: dict[str, Any] = {}

    async def go() -> None:
        async for raw in resp.content:
            line = raw.decode().rstrip("\n")
            if not line:
                if "event" in cur or "data" in cur:
                    out.append(dict(cur))
                    if len(out) == n:
                        return
                cur.clear()
                continue
            if line.startswith(":"):
                continue
            k, _, v = line.partition(": ")
            cur[k] = json.loads(v) if k == "data" else v

    await asyncio.wait_for(go(), timeout)
    return out


async def test_health_200_when_ready_503_when_not(redis_url: str) -> None:
    async with web_stack(redis_url) as st, aiohttp.ClientSession() as http:
        async with http.get(st.url + "/health") as r:
            assert r.status == 200 and (await r.json())["ready"] is True
        st.health["ready"] = False
        async with http.get(st.url + "/health") as r:
            assert r.status == 503 and (await r.json())["ready"] is False


async def test_health_only_server_for_the_old_wiring() -> None:
    server = WebServer("127.0.0.1", 0, lambda: {"ready": True})
    stop = asyncio.Event()
    task = asyncio.create_task(server.serve(stop))
    await server.started.wait()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{server.bound_port}/health") as r:
            assert r.status == 200
        async with http.get(f"http://127.0.0.1:{server.bound_port}/metrics") as r:
            assert r.status == 404
    stop.set()
    await task


async def test_metrics_text_format_with_refreshed_redis_gauges(redis_url: str) -> None:
    async with web_stack(redis_url) as st, aiohttp.ClientSession() as http:
        await st.waiting.join("phcc", "c1", "ar", arrival=time.time() - 30)
        await st.waiting.join("phcc", "c2", "ar")
        await st.pool.login("a001")
        st.counters.answered(12)
        async with http.get(st.url + "/metrics") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            fams = parse_prometheus(await r.text())
    assert value(fams, "hotline_queue_waiting", entity="phcc") == 2
    assert value(fams, "hotline_queue_waiting", entity="moi") == 0
    assert value(fams, "hotline_queue_longest_wait_seconds", entity="phcc") >= 29
    assert value(fams, "hotline_agents", site="doha_hq", state="available") == 1
    assert value(fams, "hotline_speed_of_answer_seconds_bucket", le="20") == 1
    assert fams["hotline_wallboard_clients"].kind == "gauge"
    assert fams["hotline_http_auth_failures_total"].kind == "counter"
    assert value(fams, "hotline_metrics_refresh_errors_total") == 0
    assert len(fams) == len({n for n in fams})  # no family declared twice


async def test_wallboard_page_english_and_arabic(redis_url: str) -> None:
    async with web_stack(redis_url) as st, aiohttp.ClientSession() as http:
        async with http.get(st.url + "/wallboard") as r:
            html = await r.text()
            assert r.status == 200 and r.content_type == "text/html"
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        assert '<html lang="en" dir="ltr">' in html
        async with http.get(st.url + "/wallboard?lang=ar") as r:
            assert '<html lang="ar" dir="rtl">' in await r.text()
        async with http.get(st.url + "/wallboard?lang=<script>") as r:
            assert '<html lang="en" dir="ltr">' in await r.text()
        for name, ctype in (("wallboard.js", "text/javascript"), ("wallboard.css", "text/css")):
            async with http.get(f"{st.url}/wallboard/static/{name}") as r:
                assert r.status == 200 and r.content_type == ctype
        async with http.get(st.url + "/wallboard/static/..%2Fserver.py") as r:
            assert r.status == 404
        async with http.get(st.url + "/wallboard/?lang=ar", allow_redirects=False) as r:
            assert r.status == 308 and r.headers["Location"] == "/wallboard?lang=ar"
        assert "http://" not in html and "https://" not in html  # nothing from outside


async def test_sse_two_screens_share_one_producer(redis_url: str) -> None:
    counting = CountingLive()
    async with web_stack(redis_url, live=counting, interval=0.1) as st:
        await st.waiting.join("phcc", "c1", "ar")
        counting.inner = st.view
        hub = st.server.hub
        assert hub is not None
        async with aiohttp.ClientSession() as http:
            a = await http.get(st.url + "/wallboard/events")
            b = await http.get(st.url + "/wallboard/events")
            assert a.headers["Content-Type"].startswith("text/event-stream")
            ea, eb = await asyncio.gather(read_events(a, 5), read_events(b, 5))
            assert len(hub.clients) == 2
            assert all(e["event"] == "snapshot" for e in ea + eb)
            assert ea[-1]["data"]["waiting"][0]["entity"] == "phcc"
            # the same frames (same ids) went to both screens, produced once each
            ids_a, ids_b = {int(e["id"]) for e in ea}, {int(e["id"]) for e in eb}
            assert len(ids_a & ids_b) >= 3
            assert counting.calls == hub.seq
            assert counting.calls <= max(ids_a | ids_b) + 1
            a.close()
            b.close()
        for _ in range(50):  # the producer stops once nobody watches
            if not hub.clients and hub._task is not None and hub._task.done():
                break
            await asyncio.sleep(0.1)
        assert not hub.clients and hub._task is not None and hub._task.done()
        calls = counting.calls
        await asyncio.sleep(0.3)
        assert counting.calls == calls


async def test_sse_reports_unavailable_when_the_source_fails(redis_url: str) -> None:
    failing = CountingLive(fail=True)
    async with web_stack(redis_url, live=failing, interval=0.1) as st, \
            aiohttp.ClientSession() as http:
        async with http.get(st.url + "/wallboard/events") as r:
            [ev] = await read_events(r, 1)
        assert ev["event"] == "unavailable"
        assert st.server.hub is not None and st.server.hub.errors >= 1


async def test_sse_screen_limit_and_prompt_shutdown(redis_url: str) -> None:
    t0 = 0.0
    hub = None
    async with web_stack(redis_url, max_screens=1) as st, aiohttp.ClientSession() as http:
        hub = st.server.hub
        first = await http.get(st.url + "/wallboard/events")
        await read_events(first, 1)
        async with http.get(st.url + "/wallboard/events") as r:
            assert r.status == 503 and "too many" in (await r.json())["error"]
        t0 = time.monotonic()
    # leaving the stack stopped the server with a screen still connected
    assert time.monotonic() - t0 < 3
    assert hub is not None and hub.closed and not hub.clients
    first.close()


@pytest.mark.parametrize("lang", ["en", "ar"])
async def test_snapshot_frame_is_utf8_json(redis_url: str, lang: str) -> None:
    async with web_stack(redis_url) as st, aiohttp.ClientSession() as http:
        await st.waiting.join("phcc", "c1", lang)
        async with http.get(st.url + "/wallboard/events") as r:
            [ev] = await read_events(r, 1)
    assert ev["data"]["waiting"][0]["name"]["ar"] == "مؤسسة الرعاية الصحية الأولية"
