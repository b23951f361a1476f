"""A real web server with the desktop mounted, over real Redis, for the desktop's tests.

Accounts: agents a001 and a002, supervisor `sup1` (passwords in PASSWORDS),
written with the same `set_password` that `hotline desktop passwd` uses.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from redis.asyncio import Redis

from ari_app.agents.pool import AgentPool
from ari_app.config.desktop import DesktopSettings
from ari_app.config.loader import load_config
from ari_app.config.models import HotlineConfig
from ari_app.desktop.accounts import set_password
from ari_app.desktop.auth import require_session, session_of
from ari_app.desktop.routes import Desktop
from ari_app.desktop.screenpop import ScreenPop
from ari_app.desktop.setup import build_desktop
from ari_app.live.counters import CallCounters
from ari_app.live.view import RedisLiveView
from ari_app.queue.waiting import WaitingQueues
from ari_app.web.api import PoolAgentControl
from ari_app.web.deps import WebDeps
from ari_app.web.server import WebServer

CONFIG = Path(__file__).resolve().parents[2] / "config" / "hotline.yaml"
TOKEN = "t0ken-for-desk-tests-" + "y" * 20
SALT = "salt-for-desk-tests"
PASSWORDS = {"a001": "a001-correct horse", "a002": "a002-battery staple",
             "sup1": "sup1-supervises well"}


def write_accounts(path: Path, cfg: HotlineConfig) -> None:
    ids = [a.id for a in cfg.agents]
    for user, pw in PASSWORDS.items():
        set_password(path, user, pw, "supervisor" if user.startswith("sup") else "agent", ids)


@dataclass
class Desk:
    url: str
    server: WebServer
    redis: Redis
    cfg: HotlineConfig
    pool: AgentPool
    desktop: Desktop
    screenpop: ScreenPop | None


_written: dict[str, bytes] = {}  # argon2 is slow on purpose: hash the test accounts once


def desk_config(tmp: Path, **settings: Any) -> HotlineConfig:
    cfg = load_config(CONFIG)
    creds = tmp / "desk-users.json"
    if not creds.exists():
        if "body" not in _written:
            write_accounts(creds, cfg)
            _written["body"] = creds.read_bytes()
        creds.write_bytes(_written["body"])
        creds.chmod(0o600)
    update: dict[str, Any] = {}
    if "archive" in settings:
        update["archive"] = cfg.archive.model_copy(update={"url": settings.pop("archive")})
    desk = DesktopSettings(credentials_file=creds, **settings)
    return cfg.model_copy(update={**update, "desktop": desk, "redis": cfg.redis.model_copy(
        update={"key_prefix": f"d-{uuid.uuid4().hex[:8]}"})})


async def supervisors_only(request: web.Request) -> web.Response:
    """What the supervision console does with the guard."""
    return web.json_response({"hello": session_of(request).user})


@asynccontextmanager
async def desk_stack(redis_url: str, tmp: Path, **settings: Any) -> AsyncIterator[Desk]:
    redis = Redis.from_url(redis_url)
    cfg = desk_config(tmp, **settings)
    pool = AgentPool(redis, cfg.agents, key_prefix=cfg.redis.key_prefix)
    await pool.sync()
    control = PoolAgentControl(pool)
    desktop, pop = build_desktop(cfg, redis, SALT, control, https=False)
    view = RedisLiveView(redis, pool, WaitingQueues(redis, key_prefix=cfg.redis.key_prefix),
                         cfg, CallCounters())

    def guarded(app: web.Application) -> None:
        app.router.add_get("/test/supervision", require_session(role="supervisor")(
            supervisors_only))

    deps = WebDeps(health=lambda: {"ready": True}, live=view, metrics=CallCounters(),
                   agents=control, token=TOKEN)
    server = WebServer("127.0.0.1", 0, deps, mounts=[desktop.mount, guarded])
    stop = asyncio.Event()
    task = asyncio.create_task(server.serve(stop))
    await asyncio.wait_for(server.started.wait(), 5)
    try:
        yield Desk(f"http://127.0.0.1:{server.bound_port}", server, redis, cfg, pool,
                   desktop, pop)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await redis.aclose()


def client() -> aiohttp.ClientSession:
    # the default jar keeps no cookie for an IP address host such as 127.0.0.1
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def sign_in(http: aiohttp.ClientSession, url: str, user: str,
                  password: str | None = None) -> str:
    """Signs in; returns the CSRF token."""
    async with http.post(url + "/desktop/api/signin",
                         json={"user": user, "password": password or PASSWORDS[user]}) as r:
        body = await r.json()
        assert r.status == 200, body
        return str(body["csrf"])
