"""HTTPS served by the app and the Redis TLS/ACL settings (issue 17 part 4)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import ValidationError

from ari_app.config.models import HttpSettings, RedisSettings
from ari_app.config.secure import TlsConfigError, https_context, redis_kwargs
from ari_app.web.server import WebServer
from scripts.stack import make_test_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


async def serve(server: WebServer) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(server.serve(stop))
    await asyncio.wait_for(server.started.wait(), 10)
    return stop, task


def with_cookie(server: WebServer) -> None:
    async def login(request: web.Request) -> web.Response:
        del request
        resp = web.Response(text="ok")
        resp.set_cookie("session", "x", httponly=True)
        return resp
    server.app.router.add_get("/cookie", login)


async def test_https_serves_tls12_plus_with_hsts_and_secure_cookies(pki: dict[str, Path]) -> None:
    ctx = https_context(HttpSettings(tls_cert=pki["cert"], tls_key=pki["key"],
                                     hsts_max_age=600), None)
    assert ctx is not None and ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    server = WebServer("127.0.0.1", 0, lambda: {"ready": True}, ssl_context=ctx,
                       hsts_max_age=600)
    with_cookie(server)
    stop, task = await serve(server)
    client_ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    try:
        async with aiohttp.ClientSession() as http:
            base = f"https://127.0.0.1:{server.bound_port}"
            async with http.get(f"{base}/health", ssl=client_ctx) as r:
                assert r.status == 200 and (await r.json())["ready"] is True
                assert r.headers["Strict-Transport-Security"] == "max-age=600; includeSubDomains"
            async with http.get(f"{base}/cookie", ssl=client_ctx) as r:
                cookie = r.headers["Set-Cookie"]
                assert "session=x" in cookie and "Secure" in cookie, cookie
            # verified against the CA: a client trusting another CA gets no page
            other = ssl.create_default_context(cafile=str(make_test_pki(pki["ca"].parent
                                                                        / "other")["ca"]))
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with http.get(f"{base}/health", ssl=other):
                    pass
    finally:
        stop.set()
        await task


async def test_plain_http_sends_no_hsts_and_leaves_cookies_alone() -> None:
    server = WebServer("127.0.0.1", 0, lambda: {"ready": True})
    with_cookie(server)
    stop, task = await serve(server)
    try:
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{server.bound_port}/cookie") as r:
            assert "Strict-Transport-Security" not in r.headers
            assert "Secure" not in r.headers["Set-Cookie"]
    finally:
        stop.set()
        await task


def test_https_context_names_a_missing_or_mismatched_file(pki: dict[str, Path],
                                                          tmp_path: Path) -> None:
    assert https_context(HttpSettings(), None) is None
    with pytest.raises(TlsConfigError, match="no such file"):
        https_context(HttpSettings(tls_cert=tmp_path / "nope.crt", tls_key=pki["key"]), None)
    other = make_test_pki(tmp_path / "other")
    with pytest.raises(TlsConfigError, match="unusable"):
        https_context(HttpSettings(tls_cert=pki["cert"], tls_key=other["key"]), None)


@pytest.mark.parametrize(("kw", "msg"), [
    ({"tls_cert": "/x.crt"}, "set both tls_cert and tls_key"),
    ({"tls_key": "/x.key"}, "set both tls_cert and tls_key"),
])
def test_http_tls_needs_both_files(kw: dict[str, Any], msg: str) -> None:
    with pytest.raises(ValidationError, match=msg):
        HttpSettings(**kw)


@pytest.mark.parametrize(("kw", "msg"), [
    ({"url": "rediss://hotline:hunter2hunter2@10.0.0.5:6380/0"}, "holds a password"),
    ({"url": "redis://127.0.0.1:6379/0", "tls_ca_file": "/ca.crt"}, "not rediss://"),
    ({"username": "hotline"}, "username is set without a password"),
])
def test_redis_settings_refuse_what_would_leak_or_not_work(kw: dict[str, Any], msg: str) -> None:
    with pytest.raises(ValidationError, match=msg):
        RedisSettings(**kw)


def test_redis_kwargs_log_in_and_verify_tls(pki: dict[str, Path], tmp_path: Path) -> None:
    pw = tmp_path / "redis_password"
    pw.write_text("s3cret-from-a-file\n")
    src = tmp_path / "hotline.yaml"
    s = RedisSettings(url="rediss://127.0.0.1:6380/0", username="hotline",
                      password={"file": "redis_password"}, tls_ca_file=pki["ca"])
    kw = redis_kwargs(s, src)  # the password file resolves beside the config
    assert kw["username"] == "hotline" and kw["password"] == "s3cret-from-a-file"
    assert kw["ssl_ca_certs"] == str(pki["ca"]) and kw["ssl_cert_reqs"] == "required"
    assert kw["ssl_check_hostname"] is True
    assert kw["ssl_min_version"] == ssl.TLSVersion.TLSv1_2
    assert redis_kwargs(RedisSettings(), src) == {}  # the default stays plain, no login
    with pytest.raises(TlsConfigError, match=r"redis\.tls_ca_file .*: no such file"):
        redis_kwargs(RedisSettings(url="rediss://h:1/0", tls_ca_file=tmp_path / "x"), src)
