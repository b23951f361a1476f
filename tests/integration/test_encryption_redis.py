"""Redis with TLS and an ACL user, as across sites (issue 17 part 4): a real
redis-server (Debian's is built with TLS) on loopback, the agent pool, the records
stream and the archiver process, all from one config's `redis:` section.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions as redis_exc
import yaml

from ari_app.agents.pool import AgentPool
from ari_app.config.loader import load_config
from ari_app.config.secure import redis_kwargs
from ari_app.deploy.verify import free_port
from ari_app.records.model import CallRecord, Outcome, utcnow
from ari_app.records.stream import RecordStream
from scripts.stack import ROOT, make_test_pki
from tests.support.stackfix import write_test_config

HOTLINE = str(ROOT / ".venv/bin/hotline")


# ------------------------------------------------- Redis: TLS + ACL user ---

REDIS_USER = "hotline"


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Path]]]:
    """redis-server with TLS only (no plain port) and one ACL user whose password's
    SHA-256 alone is in its ACL file; returns a hotline.yaml that logs in as it."""
    pki = make_test_pki(tmp_path / "pki")
    password = secrets.token_urlsafe(24)
    acl = tmp_path / "users.acl"
    digest = hashlib.sha256(password.encode()).hexdigest()
    acl.write_text(f"user default off\n"
                   f"user {REDIS_USER} on #{digest} ~{{hotline}}:* ~hotline:* &* +@all\n")
    pw_file = tmp_path / "redis_password"
    pw_file.write_text(password + "\n")
    pw_file.chmod(0o600)
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(pki["cert"]), "--tls-key-file", str(pki["key"]),
         "--tls-ca-cert-file", str(pki["ca"]), "--tls-auth-clients", "no",
         "--tls-protocols", "TLSv1.2 TLSv1.3", "--aclfile", str(acl), "--dir", str(data),
         "--save", "", "--appendonly", "no", "--logfile", str(data / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
                break
            except OSError:
                assert proc.poll() is None, (data / "redis.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "redis-server (TLS) not listening"
                time.sleep(0.05)
        raw: dict[str, Any] = yaml.safe_load(write_test_config(tmp_path / "hotline.yaml")
                                             .read_text())
        raw["redis"] = dict(raw.get("redis") or {}, url=f"rediss://127.0.0.1:{port}/0",
                            username=REDIS_USER, password={"file": "redis_password"},
                            tls_ca_file=str(pki["ca"]))
        cfg = tmp_path / "hotline.yaml"
        cfg.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False))
        yield cfg, {**pki, "password": pw_file}
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.integration
def test_agent_pool_and_records_run_over_redis_tls_as_an_acl_user(
        tls_redis: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    cfg_path, files = tls_redis
    cfg = load_config(cfg_path)
    kw = redis_kwargs(cfg.redis, cfg.source)
    call_id = f"tls-{time.time_ns()}"

    async def pool_and_stream() -> str:
        client = aioredis.Redis.from_url(cfg.redis.url, **kw)
        try:
            agent = cfg.agents[0]
            pool = AgentPool(client, cfg.agents)
            await pool.sync()
            await pool.login(agent.id, reachable=True)
            st = await pool.status(agent.id)
            assert st is not None and str(st.state) == "available", st
            await pool.logout(agent.id)
            stream = RecordStream(client, cfg.redis.key_prefix,
                                  spool_path=tmp_path / "spool.jsonl")
            await stream.publish(CallRecord(call_id=call_id, arrived_at=utcnow(),
                                            ended_at=utcnow(), outcome=Outcome.ANSWERED,
                                            entity="phcc"))
            assert not (tmp_path / "spool.jsonl").exists() or \
                not (tmp_path / "spool.jsonl").read_text(), "the record was spooled, not sent"
            return str(await client.acl_whoami())
        finally:
            await client.aclose()

    assert asyncio.run(pool_and_stream()) == REDIS_USER
    # the archiver process, from the same config, moves the record into SQLite
    db = tmp_path / "archive.sqlite3"
    log = tmp_path / "archiver.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([HOTLINE, "--config", str(cfg_path), "archiver", "--db", str(db)],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            if db.exists():
                with contextlib.closing(sqlite3.connect(db)) as conn, \
                        contextlib.suppress(sqlite3.OperationalError):
                    if conn.execute("SELECT count(*) FROM calls WHERE call_id = ?",
                                    (call_id,)).fetchone()[0]:
                        break
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, f"record not archived:\n{log.read_text()[-2000:]}"
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(10)
    assert files["password"].read_text().strip() not in log.read_text()


@pytest.mark.integration
def test_redis_tls_refuses_plain_clients_wrong_passwords_and_strange_cas(
        tls_redis: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    cfg_path, _files = tls_redis
    cfg = load_config(cfg_path)
    kw = redis_kwargs(cfg.redis, cfg.source)
    other_ca = make_test_pki(tmp_path / "other")["ca"]

    async def attempt(url: str, **over: Any) -> None:
        client = aioredis.Redis.from_url(url, **{**kw, **over}, socket_connect_timeout=3,
                                         socket_timeout=3)
        try:
            await client.ping()
        finally:
            await client.aclose()

    plain = cfg.redis.url.replace("rediss://", "redis://")
    with pytest.raises(redis_exc.ConnectionError):  # no TLS: the server drops it
        asyncio.run(attempt_plain(plain, kw))
    with pytest.raises(redis_exc.AuthenticationError):
        asyncio.run(attempt(cfg.redis.url, password="not-the-password"))
    with pytest.raises(redis_exc.ConnectionError, match="certificate verify failed"):
        asyncio.run(attempt(cfg.redis.url, ssl_ca_certs=str(other_ca)))
    asyncio.run(attempt(cfg.redis.url))  # and the right settings do connect


async def attempt_plain(url: str, kw: dict[str, Any]) -> None:
    client = aioredis.Redis.from_url(url, username=kw["username"], password=kw["password"],
                                     socket_connect_timeout=3, socket_timeout=3)
    try:
        await client.ping()
    finally:
        await client.aclose()
