"""The announcements' HTTP API on the app's real WebServer: the agents' API token
guards it, bad input gets 4xx JSON naming the problem, changes are audited."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from redis.asyncio import Redis

from ari_app.agents.pool import AgentPool
from ari_app.announcements.api import AnnouncementApi
from ari_app.announcements.service import AnnouncementService
from ari_app.announcements.store import AnnouncementStore
from ari_app.config.loader import load_config
from ari_app.live.counters import CallCounters
from ari_app.live.view import RedisLiveView
from ari_app.queue.waiting import WaitingQueues
from ari_app.web.api import PoolAgentControl
from ari_app.web.deps import WebDeps
from ari_app.web.server import WebServer
from tests.unit.test_announcements import CONFIG, wav_bytes

TOKEN = "announce-token-for-tests-" + "y" * 16
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@asynccontextmanager
async def api(redis_url: str) -> AsyncIterator[tuple[str, AnnouncementStore]]:
    redis = Redis.from_url(redis_url)
    cfg = load_config(CONFIG)
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    pool = AgentPool(redis, cfg.agents, key_prefix=prefix)
    counters = CallCounters()
    view = RedisLiveView(redis, pool, WaitingQueues(redis, key_prefix=prefix), cfg, counters)
    store = AnnouncementStore(redis, key_prefix=prefix)
    svc = AnnouncementService(cfg, store)
    deps = WebDeps(health=lambda: {"ready": True}, live=view, metrics=counters,
                   agents=PoolAgentControl(pool), token=TOKEN,
                   api_routes=lambda app, auth: AnnouncementApi(svc, auth).add_routes(app))
    server = WebServer("127.0.0.1", 0, deps)
    stop = asyncio.Event()
    task = asyncio.create_task(server.serve(stop))
    await asyncio.wait_for(server.started.wait(), 5)
    try:
        yield f"http://127.0.0.1:{server.bound_port}/api/v1/announcements", store
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await redis.aclose()


async def test_token_guards_every_route(redis_url: str) -> None:
    async with api(redis_url) as (url, store), aiohttp.ClientSession() as http:
        for method, path in (("GET", ""), ("GET", "/audit"), ("PUT", "/global"),
                             ("DELETE", "/global")):
            async with http.request(method, url + path, json={"by": "x", "texts": {"en": "hi"}},
                                    headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 401, (method, path)
                assert (await r.json())["error"] == "invalid token"
        assert await store.current() == {}


async def test_set_list_clear_and_audit(redis_url: str) -> None:
    async with api(redis_url) as (url, store), aiohttp.ClientSession() as http:
        async def call(method: str, path: str, **kw: Any) -> tuple[int, dict[str, Any]]:
            async with http.request(method, url + path, headers=AUTH, **kw) as r:
                return r.status, await r.json()

        status, body = await call("PUT", "/phcc", json={
            "by": "duty-manager", "texts": {"en": "Clinics close at noon today."},
            "ends": "2099-01-01T00:00"})
        assert status == 200, body
        assert body["announcement"]["scope"] == "phcc"
        assert body["announcement"]["languages"] == ["en"]
        status, body = await call("PUT", "/global", json={
            "by": "duty-manager", "audio": {"ar": base64.b64encode(wav_bytes(1.0)).decode()}})
        assert status == 200 and body["announcement"]["kind"] == "audio", body
        status, body = await call("GET", "")
        assert status == 200
        assert [(a["scope"], a["active"]) for a in body["announcements"]] == [
            ("global", True), ("phcc", True)]
        status, body = await call("DELETE", "/phcc?by=night-shift")
        assert status == 200 and body["cleared"]["scope"] == "phcc"
        status, body = await call("DELETE", "/phcc?by=night-shift")
        assert status == 404 and body["error"] == "no announcement is set for 'phcc'"
        status, body = await call("GET", "/audit?limit=10")
        assert [(a["action"], a["scope"], a["by"]) for a in body["audit"]] == [
            ("clear", "phcc", "night-shift"), ("clear", "phcc", "night-shift"),
            ("set", "global", "duty-manager"), ("set", "phcc", "duty-manager")]
        assert all(a["source"].startswith("api 127.0.0.1") for a in body["audit"])
        assert list(await store.current()) == ["global"]


async def test_bad_requests_name_the_problem(redis_url: str) -> None:
    async with api(redis_url) as (url, store), aiohttp.ClientSession() as http:
        async def put(path: str, body: Any) -> tuple[int, str]:
            async with http.put(url + path, headers=AUTH, json=body) as r:
                return r.status, (await r.json())["error"]

        status, error = await put("/nosuch", {"by": "x", "texts": {"en": "hi"}})
        assert status == 404
        assert error.startswith("unknown entity 'nosuch': give 'global' or an entity id")
        assert (await put("/global", {"by": "x", "texts": {"en": ""}})) == (
            400, "the text for 'en' is empty")
        assert (await put("/global", {"by": "x", "texts": {"zz": "hi"}}))[1].startswith(
            "unknown language 'zz'")
        assert (await put("/global", {"by": "x", "texts": {"en": "y" * 601}})) == (
            400, "the text for 'en' is 601 characters; at most 600")
        assert (await put("/global", {"texts": {"en": "hi"}}))[1].startswith("'by'")
        assert (await put("/global", {"by": "x", "audio": {"en": "%%%"}})) == (
            400, "the recording for 'en' is not valid base64")
        assert (await put("/global", {"by": "x", "text": "hi"})) == (400, "unknown field 'text'")
        assert (await put("/global", ["not", "an", "object"])) == (
            400, "request body must be a JSON object")
        async with http.get(url + "/audit?limit=0", headers=AUTH) as r:
            assert r.status == 400
        assert await store.current() == {} and await store.audit() == []
