"""`hotline doctor`: one line per real part, and a non-zero exit when any is down."""

from __future__ import annotations

import asyncio

import httpx
import redis.asyncio as aioredis
from panoramisk import Manager

from ari_app.config.models import HotlineConfig, resolve_secret


async def check_redis(cfg: HotlineConfig) -> str:
    r = aioredis.from_url(cfg.redis.url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await r.ping()
        info = await r.info("server")
        return f"redis {info.get('redis_version')} at {cfg.redis.url}"
    finally:
        await r.aclose()


async def check_ari(cfg: HotlineConfig) -> list[tuple[bool, str]]:
    pw = resolve_secret(cfg.ari.password, cfg.source).get_secret_value()
    base = cfg.ari.url.rstrip("/") + "/ari"
    out: list[tuple[bool, str]] = []
    async with httpx.AsyncClient(auth=(cfg.ari.username, pw), timeout=3) as c:
        r = await c.get(f"{base}/asterisk/info")
        if r.status_code == 401:
            return [(False, f"ARI at {cfg.ari.url}: authentication refused for user "
                            f"{cfg.ari.username!r}")]
        r.raise_for_status()
        version = r.json().get("system", {}).get("version", "?")
        out.append((True, f"ARI reachable at {cfg.ari.url}: Asterisk {version}"))
        r = await c.get(f"{base}/applications/{cfg.ari.app}")
        if r.status_code == 200:
            out.append((True, f"Stasis application {cfg.ari.app!r} registered"))
        else:
            out.append((False, f"Stasis application {cfg.ari.app!r} not registered "
                               "(is `hotline run` connected?)"))
    return out


async def check_ami(cfg: HotlineConfig) -> str:
    secret = resolve_secret(cfg.ami.secret, cfg.source).get_secret_value()
    m = Manager(host=cfg.ami.host, port=cfg.ami.port, username=cfg.ami.username, secret=secret,
                ping_delay=3600, reconnect_timeout=3600, loop=asyncio.get_running_loop())
    try:
        await asyncio.wait_for(m.connect(), 3)
        for _ in range(100):
            if m.authenticated_future is not None:
                break
            await asyncio.sleep(0.01)
        fut = m.authenticated_future
        if fut is None:
            raise RuntimeError("no login exchange")
        resp = await asyncio.wait_for(fut, 3)
        if not resp.success:
            raise RuntimeError(f"login refused for user {cfg.ami.username!r}")
        return f"AMI login as {cfg.ami.username!r} at {cfg.ami.host}:{cfg.ami.port}"
    finally:
        m.close()


async def run_doctor(cfg: HotlineConfig) -> int:
    results: list[tuple[bool, str]] = []
    try:
        results.extend(await check_ari(cfg))
    except Exception as e:  # noqa: BLE001
        results.append((False, f"ARI at {cfg.ari.url} unreachable: {type(e).__name__}: {e}"))
    for name, check in (("AMI", check_ami), ("Redis", check_redis)):
        try:
            results.append((True, await check(cfg)))
        except Exception as e:  # noqa: BLE001
            results.append((False, f"{name} check failed: {type(e).__name__}: {e}"))
    for ok, line in results:
        print(f"{'ok  ' if ok else 'FAIL'} {line}")
    return 0 if all(ok for ok, _ in results) else 1
