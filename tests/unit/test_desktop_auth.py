"""Desktop sign-in, sessions, CSRF and the guard, over a real web server and Redis."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from yarl import URL

from ari_app.config.desktop import DesktopSettings
from ari_app.desktop.accounts import AccountError, Accounts, load_accounts, set_password
from ari_app.desktop.auth import COOKIE, CSRF_HEADER, SessionStore
from tests.unit.desk_support import PASSWORDS, TOKEN, client, desk_stack, sign_in


async def test_sign_in_sets_a_strict_cookie_and_me_answers(redis_url: str, tmp_path: Path
                                                           ) -> None:
    async with desk_stack(redis_url, tmp_path) as st, client() as http:
        async with http.post(st.url + "/desktop/api/signin",
                             json={"user": "a001", "password": PASSWORDS["a001"]}) as r:
            assert r.status == 200
            cookie = r.headers["Set-Cookie"]
            csrf = (await r.json())["csrf"]
        parts = [p.strip().lower() for p in cookie.split(";")]
        assert parts[0].startswith(f"{COOKIE}=")
        assert "httponly" in parts and "samesite=strict" in parts and "path=/" in parts
        assert "secure" not in parts  # plain HTTP here; HTTPS adds it (server hook)
        async with http.get(st.url + "/desktop/api/me") as r:
            me = await r.json()
        assert me["user"] == "a001" and me["role"] == "agent" and me["csrf"] == csrf
        assert me["status"]["state"] == "logged_out"
        assert [p["id"] for p in me["pause_reasons"]][:3] == ["break", "prayer", "meal"]
        # the session key in Redis holds the hash of the cookie's id, never the id
        sid = cookie.split(";")[0].split("=", 1)[1]
        keys = [k.decode() async for k in st.redis.scan_iter(match="*desk:session:*")]
        assert keys and all(sid not in k for k in keys)


async def test_wrong_password_is_rate_limited_per_user_and_address(redis_url: str,
                                                                   tmp_path: Path) -> None:
    async with desk_stack(redis_url, tmp_path, signin_fail_per_user=3,
                          signin_fail_per_address=5) as st, client() as http:
        for _ in range(3):
            async with http.post(st.url + "/desktop/api/signin",
                                 json={"user": "a001", "password": "wrong-password!"}) as r:
                assert r.status == 401
                assert (await r.json())["error"] == "wrong user or password"
        # now even the right password waits
        async with http.post(st.url + "/desktop/api/signin",
                             json={"user": "a001", "password": PASSWORDS["a001"]}) as r:
            assert r.status == 429
            wait = int(r.headers["Retry-After"])
            assert 1 <= wait <= 300
            assert "too many failed sign-ins" in (await r.json())["error"]
        # another user from the same address: two more failures reach the address's limit
        for _ in range(2):
            async with http.post(st.url + "/desktop/api/signin",
                                 json={"user": "a002", "password": "nope-nope-nope"}) as r:
                assert r.status == 401
        async with http.post(st.url + "/desktop/api/signin",
                             json={"user": "a002", "password": PASSWORDS["a002"]}) as r:
            assert r.status == 429
        # the API token is no password
        async with http.post(st.url + "/desktop/api/signin",
                             json={"user": "sup1", "password": TOKEN}) as r:
            assert r.status == 429


async def test_changes_need_the_csrf_token_and_act_only_for_the_signed_in_agent(
        redis_url: str, tmp_path: Path) -> None:
    async with desk_stack(redis_url, tmp_path) as st, client() as http:
        csrf = await sign_in(http, st.url, "a001")
        async with http.post(st.url + "/desktop/api/login") as r:
            assert r.status == 403
            assert "CSRF" in (await r.json())["error"]
        async with http.post(st.url + "/desktop/api/login",
                             headers={CSRF_HEADER: csrf[:-1] + "x"}) as r:
            assert r.status == 403
        assert (await st.pool.status("a001")) is None or \
            str((await st.pool.status("a001")).state) == "logged_out"  # type: ignore[union-attr]
        h = {CSRF_HEADER: csrf}
        async with http.post(st.url + "/desktop/api/login", headers=h) as r:
            assert r.status == 200, await r.text()
        await st.pool.login("a002")
        # naming another agent is refused, and a002 stays as it was
        async with http.post(st.url + "/desktop/api/pause", headers=h,
                             json={"agent": "a002", "reason": "meal"}) as r:
            assert r.status == 403
            assert "only for yourself" in (await r.json())["error"]
        st2 = await st.pool.status("a002")
        assert st2 is not None and str(st2.state) == "available"
        # the machine API does not take a desk session; the desk does not take the token
        async with http.post(st.url + "/api/v1/agents/a002/pause", json={"reason": "x"}) as r:
            assert r.status == 401
        async with http.post(st.url + "/desktop/api/pause", json={"reason": "meal"},
                             headers={**h, "Authorization": f"Bearer {TOKEN}"}) as r:
            assert r.status == 401
        # a reason outside the list is refused with the list
        async with http.post(st.url + "/desktop/api/pause", headers=h,
                             json={"reason": "nap"}) as r:
            assert r.status == 400
            assert "prayer" in (await r.json())["error"]
        async with http.post(st.url + "/desktop/api/pause", headers=h,
                             json={"reason": "prayer"}) as r:
            assert r.status == 200
            assert (await r.json())["status"]["reason"] == "prayer"
        # a cross-site page cannot post even with a token it could not read anyway
        async with http.post(st.url + "/desktop/api/resume",
                             headers={**h, "Origin": "https://evil.example"}) as r:
            assert r.status == 403
        async with http.post(st.url + "/desktop/api/resume", headers=h) as r:
            assert r.status == 200
            assert (await r.json())["status"]["state"] == "available"


async def test_sign_out_ends_the_session_and_the_guard_checks_roles(redis_url: str,
                                                                    tmp_path: Path) -> None:
    async with desk_stack(redis_url, tmp_path) as st, client() as http:
        async with http.get(st.url + "/test/supervision") as r:
            assert r.status == 401
        csrf = await sign_in(http, st.url, "a001")
        async with http.get(st.url + "/test/supervision") as r:
            assert r.status == 403
            assert "supervisor" in (await r.json())["error"]
        cookie = http.cookie_jar.filter_cookies(URL(st.url))[COOKIE].value
        async with http.post(st.url + "/desktop/api/signout", headers={CSRF_HEADER: csrf}) as r:
            assert r.status == 200
        # the old cookie, replayed, is worth nothing
        async with http.get(st.url + "/desktop/api/me",
                            headers={"Cookie": f"{COOKIE}={cookie}"}) as r:
            assert r.status == 401
        await sign_in(http, st.url, "sup1")
        async with http.get(st.url + "/test/supervision") as r:
            assert r.status == 200
            assert (await r.json()) == {"hello": "sup1"}
        async with http.post(st.url + "/desktop/api/login", headers={CSRF_HEADER: "x"}) as r:
            assert r.status == 403  # a supervisor account is no agent


async def test_sessions_end_at_the_absolute_limit(redis_url: str, tmp_path: Path) -> None:
    from redis.asyncio import Redis

    now = [1000.0]
    settings = DesktopSettings(session_idle_seconds=60, session_absolute_seconds=300)
    r = Redis.from_url(redis_url)
    try:
        store = SessionStore(r, "abs-test", settings, clock=lambda: now[0])
        sid, _ = await store.create("a001", "agent")
        assert await store.get(sid) is not None
        assert 0 < await r.ttl(store.key(sid)) <= 60  # idle expiry is Redis's TTL
        now[0] += 299
        assert await store.get(sid) is not None
        assert await r.ttl(store.key(sid)) <= 1  # never longer than what is left
        now[0] += 2
        assert await store.get(sid) is None
        assert not await r.exists(store.key(sid))
    finally:
        await r.aclose()


def test_accounts_file_rules(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    set_password(path, "a001", "long enough pw", "agent", ["a001"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(AccountError, match="not a configured agent id"):
        set_password(path, "zz9", "long enough pw", "agent", ["a001"])
    with pytest.raises(AccountError, match="at least"):
        set_password(path, "a001", "short", "agent", ["a001"])
    set_password(path, "boss", "long enough pw", "supervisor", ["a001"])
    accounts = Accounts(path, ["a001"])
    assert accounts.verify("a001", "long enough pw") is not None
    assert accounts.verify("a001", "long enough pX") is None
    assert accounts.verify("nobody", "long enough pw") is None
    os.chmod(path, 0o644)
    with pytest.raises(AccountError, match="chmod 600"):
        load_accounts(path, ["a001"])


def test_passwd_command_reads_stdin_and_writes_a_0600_file(tmp_path: Path) -> None:
    import yaml

    from tests.unit.desk_support import CONFIG

    raw = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    raw["agents_file"] = str((CONFIG.parent / raw["agents_file"]).resolve())
    raw["prompts_dir"] = str((CONFIG.parent / raw.get("prompts_dir", "prompts")).resolve())
    raw["desktop"] = {"credentials_file": "secrets/desk.json"}
    cfg = tmp_path / "hotline.yaml"
    cfg.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    exe = [sys.executable, "-m", "ari_app", "--config", str(cfg), "desktop", "passwd"]
    ok = subprocess.run([*exe, "a001"], input="a fine password\n", text=True,
                        capture_output=True, check=False)
    assert ok.returncode == 0, ok.stderr
    creds = tmp_path / "secrets" / "desk.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert "a fine password" not in creds.read_text()
    assert Accounts(creds, ["a001"]).verify("a001", "a fine password") is not None
    bad = subprocess.run([*exe, "not-an-agent"], input="a fine password\n", text=True,
                         capture_output=True, check=False)
    assert bad.returncode == 2 and "not a configured agent id" in bad.stderr
