"""The agents' API over a real AgentPool: auth, rate limit, JSON errors, state changes."""

from __future__ import annotations

import aiohttp
import pytest
from structlog.testing import capture_logs

from ari_app.agents.pool import AgentState
from ari_app.web.api import FailureLimiter
from tests.unit.test_web_server import TOKEN, web_stack

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_auth_missing_bad_and_good_token(redis_url: str) -> None:
    async with web_stack(redis_url) as st, aiohttp.ClientSession() as http:
        url = st.url + "/api/v1/agents/a001"
        async with http.get(url) as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
            assert await r.json() == {"error": "missing bearer token", "status": 401}
        async with http.get(url, headers={"Authorization": "Bearer nope"}) as r:
            assert r.status == 401 and (await r.json())["error"] == "invalid token"
            assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
        async with http.get(url, headers={"Authorization": f"Basic {TOKEN}"}) as r:
            assert r.status == 401 and "Bearer <token>" in (await r.json())["error"]
        async with http.post(url + "/login", headers={"Authorization": "Bearer nope"}) as r:
            assert r.status == 401
        assert (await st.pool.status("a001")) is not None
        assert (await st.pool.status("a001")).state is AgentState.LOGGED_OUT  # type: ignore[union-attr]
        async with http.get(url, headers=AUTH) as r:
            assert r.status == 200
            body = await r.json()
            assert body["id"] == "a001" and body["state"] == "logged_out"
            assert body["site"] == "doha_hq"
        # read-only pages need no token
        for path in ("/health", "/metrics", "/wallboard"):
            async with http.get(st.url + path) as r:
                assert r.status == 200


async def test_state_changes_are_visible_in_the_pool(redis_url: str) -> None:
    async with web_stack(redis_url) as st, aiohttp.ClientSession() as http:
        url = st.url + "/api/v1/agents/a002"

        async def post(action: str, **kw: object) -> tuple[int, dict[str, object]]:
            async with http.post(f"{url}/{action}", headers=AUTH, **kw) as r:  # type: ignore[arg-type]
                return r.status, await r.json()

        status, body = await post("login")
        assert status == 200 and body["result"] == "available"
        assert body["status"]["state"] == "available"  # type: ignore[index]
        assert (await st.pool.status("a002")).state is AgentState.AVAILABLE  # type: ignore[union-attr]

        status, body = await post("pause", json={"reason": "prayer"})
        assert status == 200 and body["result"] == "paused"
        st_p = await st.pool.status("a002")
        assert st_p is not None and st_p.state is AgentState.PAUSED and st_p.reason == "prayer"

        status, body = await post("resume")
        assert status == 200 and body["result"] == "available"
        status, body = await post("logout", data=b"")
        assert status == 200 and body["result"] == "available"  # the state it was in
        assert (await st.pool.status("a002")).state is AgentState.LOGGED_OUT  # type: ignore[union-attr]

        status, body = await post("pause", json={"reason": "break"})
        assert status == 409 and "logged_out" in str(body["error"])


async def test_bad_requests_get_json_errors(redis_url: str) -> None:
    async with web_stack(redis_url) as st, aiohttp.ClientSession() as http:
        base = st.url + "/api/v1/agents"
        hdr = {**AUTH, "Content-Type": "application/json"}
        async with http.post(f"{base}/a003/pause", headers=hdr, data=b'{"reason": ') as r:
            assert r.status == 400
            assert "not valid JSON" in (await r.json())["error"]
        async with http.post(f"{base}/a003/pause", headers=hdr, data=b"[1, 2]") as r:
            assert r.status == 400 and "JSON object" in (await r.json())["error"]
        async with http.post(f"{base}/a003/pause", headers=AUTH) as r:
            assert r.status == 400 and "'reason'" in (await r.json())["error"]
        async with http.post(f"{base}/a003/pause", headers=AUTH, json={"reason": "  "}) as r:
            assert r.status == 400
        async with http.post(f"{base}/a003/pause", headers=AUTH, json={"reason": "x" * 65}) as r:
            assert r.status == 400 and "at most 64" in (await r.json())["error"]
        async with http.post(f"{base}/nobody/login", headers=AUTH) as r:
            assert r.status == 404
            assert await r.json() == {"error": "unknown agent 'nobody'", "status": 404}
        async with http.get(f"{base}/..%2Fetc", headers=AUTH) as r:
            assert r.status == 404 and "error" in await r.json()
        async with http.get(f"{base}/a003/login", headers=AUTH) as r:
            assert r.status == 405
            assert "POST" in r.headers["Allow"]
            assert (await r.json())["error"] == "method GET not allowed"
        async with http.post(f"{base}/a003/login", headers=hdr, data=b"{" + b" " * 70_000 + b"}"
                             ) as r:
            assert r.status == 413 and "65536" in (await r.json())["error"]
        async with http.get(st.url + "/api/v1/nothing", headers=AUTH) as r:
            assert r.status == 404 and (await r.json())["error"] == "no such endpoint"


async def test_repeated_auth_failures_are_rate_limited(redis_url: str) -> None:
    limiter = FailureLimiter(limit=3, window=60)
    with capture_logs() as logs:
        async with web_stack(redis_url, limiter=limiter) as st, aiohttp.ClientSession() as http:
            url = st.url + "/api/v1/agents/a004/login"
            for _ in range(3):
                async with http.post(url, headers={"Authorization": f"Bearer {TOKEN}x"}) as r:
                    assert r.status == 401
            async with http.post(url, headers={"Authorization": "Bearer nope"}) as r:
                assert r.status == 429
                assert 55 <= int(r.headers["Retry-After"]) <= 60
                assert "too many failed authentications" in (await r.json())["error"]
            async with http.post(url, headers=AUTH) as r:  # even the right token, for now
                assert r.status == 429
            assert st.server.stats.auth_failures == 3 and st.server.stats.rate_limited == 2
    assert any(e["event"] == "api.auth_failed" for e in logs)
    assert TOKEN not in repr(logs)  # the server never logs the token (nor a wrong one)


def test_limiter_window_per_client_and_bounded_memory() -> None:
    now = [1000.0]
    lim = FailureLimiter(limit=2, window=60, max_clients=100, clock=lambda: now[0])
    lim.failed("10.0.0.1")
    assert lim.retry_after("10.0.0.1") is None
    lim.failed("10.0.0.1")
    assert lim.retry_after("10.0.0.1") == pytest.approx(60)
    assert lim.retry_after("10.0.0.2") is None  # other addresses are not affected
    now[0] += 30
    assert lim.retry_after("10.0.0.1") == pytest.approx(30)
    now[0] += 30.5
    assert lim.retry_after("10.0.0.1") is None
    for i in range(1000):
        lim.failed(f"10.1.{i // 256}.{i % 256}")
    assert len(lim) == 100


async def test_api_disabled_without_a_token(redis_url: str) -> None:
    async with web_stack(redis_url, token="") as st, aiohttp.ClientSession() as http, \
            http.post(st.url + "/api/v1/agents/a001/login",
                      headers={"Authorization": "Bearer "}) as r:
        assert r.status == 503 and "disabled" in (await r.json())["error"]
