"""`redis.sentinel`: the combinations that cannot work are refused with the key and the
reason; a good one builds a client of the Sentinel-named primary."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from ari_app.config.redis_client import BlockingSentinelPool, SentinelRedis, redis_client
from ari_app.config.services import RedisSettings

GOOD = {"sentinels": ["10.0.0.1:26379", "10.0.0.2:26379", "[::1]:26379"],
        "service_name": "hotline"}


@pytest.mark.parametrize(("kw", "msg"), [
    ({"url": "redis://127.0.0.1:6379/0", "sentinel": GOOD}, "either url or sentinel"),
    ({"tls_ca_file": "ca.pem", "sentinel": GOOD}, "TLS is not supported with sentinel"),
    ({"sentinel": dict(GOOD, sentinels=[])}, "at least 1 item"),
    ({"sentinel": dict(GOOD, sentinels=["10.0.0.1"])}, "'10.0.0.1' is not host:port"),
    ({"sentinel": dict(GOOD, sentinels=["h:70000"])}, "'h:70000' is not host:port"),
    ({"sentinel": dict(GOOD, sentinels=["h:1", "h:1"])}, "h:1 is listed twice"),
    ({"sentinel": dict(GOOD, service_name="bad name")}, "service_name"),
    ({"sentinel": {"sentinels": ["h:1"]}}, "service_name"),
    ({"sentinel": dict(GOOD, db=16)}, "db"),
    ({"sentinel": dict(GOOD, password="plain")}, "password"),
])
def test_bad_sentinel_settings_are_refused_with_the_reason(kw: dict[str, Any], msg: str) -> None:
    with pytest.raises(ValidationError) as e:
        RedisSettings(**kw)
    assert msg in str(e.value)


def test_sentinel_client_reads_both_passwords_from_files(tmp_path: Path) -> None:
    (tmp_path / "redis_pw").write_text("data-secret\n")
    (tmp_path / "sentinel_pw").write_text("sentinel-secret\n")
    s = RedisSettings(password={"file": "redis_pw"},
                      sentinel=dict(GOOD, password={"file": "sentinel_pw"}, db=3))
    assert s.where() == ("sentinel service hotline via "
                         "10.0.0.1:26379,10.0.0.2:26379,[::1]:26379")
    client = redis_client(s, tmp_path / "hotline.yaml", socket_timeout=1,
                          socket_connect_timeout=1, max_connections=9)
    try:
        assert isinstance(client, SentinelRedis) and client.manager is not None
        pool = client.connection_pool
        assert isinstance(pool, BlockingSentinelPool) and pool.max_connections == 9
        assert pool.connection_kwargs["password"] == "data-secret"
        assert pool.connection_kwargs["db"] == 3
        assert [(c.connection_pool.connection_kwargs["host"],
                 c.connection_pool.connection_kwargs["password"])
                for c in client.manager.sentinels] == [
            ("10.0.0.1", "sentinel-secret"), ("10.0.0.2", "sentinel-secret"),
            ("::1", "sentinel-secret")]
    finally:
        asyncio.run(client.aclose())


def test_a_missing_password_file_is_named(tmp_path: Path) -> None:
    s = RedisSettings(sentinel=dict(GOOD, password={"file": "nowhere"}))
    with pytest.raises(Exception, match="nowhere"):
        redis_client(s, tmp_path / "hotline.yaml", socket_timeout=1, socket_connect_timeout=1)
