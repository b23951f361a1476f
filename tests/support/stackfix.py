"""The integration stack as the tests see it: start it, call it, read what the app did."""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from scripts.stack import ROOT, AriUnreachable, Stack
from tests.support.sipp import AgentPhone, SippResult, run_caller

# tighter than production so the silence and retry paths finish quickly;
# everything else is the shipped config
TEST_OVERRIDES: dict[str, Any] = {
    "timers": {"digit_timeout": 2, "tries": 2, "inter_digit_timeout": 2},
    "callers": {"blocklist": ["97400000666"], "anonymous": "allow"},
    "queue": {"ring_timeout": 5, "wrapup_seconds": 2, "announce_first_after": 2,
              "announce_interval": 10, "max_wait": 90,
              "routing": {"sector_after": 5, "fallback_language_after": 6},
              "supervisors": ["a021"]},
}


def write_test_config(dest: Path) -> Path:
    raw = yaml.safe_load((ROOT / "config/hotline.yaml").read_text(encoding="utf-8"))
    for key, val in TEST_OVERRIDES.items():
        raw[key] = dict(raw.get(key) or {}, **val) if isinstance(val, dict) else val
    for key in ("agents_file", "prompts_dir"):
        if raw.get(key) or key == "prompts_dir":
            raw[key] = str((ROOT / "config" / raw.get(key, "prompts")).resolve())
    dest.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return dest


@contextlib.contextmanager
def app_config(stack: StackUnderTest, **top: Any) -> Iterator[None]:
    """Restart the app with config keys overridden (a dict value merges into that
    section); restore the config and restart it afterwards."""
    s = stack.stack
    original = s.write_app_config

    def patched() -> None:
        original()
        raw = yaml.safe_load(s.app_config.read_text(encoding="utf-8"))
        for key, val in top.items():
            raw[key] = dict(raw.get(key) or {}, **val) if isinstance(val, dict) else val
        s.app_config.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False),
                                encoding="utf-8")

    s.write_app_config = patched  # type: ignore[method-assign]
    try:
        s.start_app()
        yield
    finally:
        s.write_app_config = original  # type: ignore[method-assign]
        s.start_app()


class StackUnderTest:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    @property
    def sip_port(self) -> int:
        return self.stack.ports.sip

    def new_caller(self) -> str:
        """A number no earlier call used, so no remembered language leaks between tests."""
        return f"974{random.randint(10_000_000, 99_999_999)}"

    def call(self, steps: str, caller: str | None = None, number: str = "109",
             timeout: float = 120) -> tuple[SippResult, str]:
        caller = caller or self.new_caller()
        return run_caller(self.sip_port, steps, caller=caller, number=number,
                          timeout=timeout), caller

    def records(self) -> list[dict[str, Any]]:
        import redis

        from ari_app.records.events import records_in_stream

        r = redis.Redis(port=self.stack.ports.redis)
        try:
            return records_in_stream(f for _id, f in r.xrange("{hotline}:records"))
        finally:
            r.close()

    def record_for(self, caller: str, timeout: float = 15.0) -> dict[str, Any]:
        """The call record the app published for this caller (waits for it to land)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.records() if r.get("caller") == caller]
            if found:
                return found[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no call record for caller {caller} after {timeout}s")
            time.sleep(0.1)

    def records_for(self, caller: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("caller") == caller]

    def log_lines(self, since: int = 0, **match: Any) -> list[dict[str, Any]]:
        """App log lines matching `match`, from byte offset `since` of the log."""
        out = []
        raw = self.stack.app_log.read_bytes()[since:]
        for line in raw.decode("utf-8", "replace").splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if all(obj.get(k) == v for k, v in match.items()):
                out.append(obj)
        return out

    def wait_no_leftovers(self, timeout: float = 10.0) -> dict[str, list[Any]]:
        """What Asterisk still holds once it holds nothing, or at the deadline.

        An ARI that stays unreachable until the deadline raises AriUnreachable:
        not being able to look is a failure, never "nothing left".
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                left = self.stack.leftovers()
            except AriUnreachable:
                if time.monotonic() > deadline:
                    raise
            else:
                if not left["channels"] and not left["bridges"]:
                    return left
                if time.monotonic() > deadline:
                    return left
            time.sleep(0.1)


class Agents:
    """Agents for a test: phones registered with SIPp, logged in through the real pool."""

    def __init__(self, sut: StackUnderTest) -> None:
        from ari_app.config.loader import load_config

        self.sut = sut
        self.cfg = load_config(sut.stack.app_config)
        self.phones: dict[str, AgentPhone] = {}

    def _run(self, coro_fn: Any) -> Any:
        import asyncio

        import redis.asyncio as aioredis

        from ari_app.agents.pool import AgentPool

        async def go() -> Any:
            r = aioredis.from_url(f"redis://127.0.0.1:{self.sut.stack.ports.redis}/0")
            try:
                return await coro_fn(AgentPool(r, self.cfg.agents))
            finally:
                await r.aclose()

        return asyncio.run(go())

    def phone(self, agent_id: str, mode: str = "answer", talk_ms: int = 2000,
              ring_ms: int = 300, register: bool = True,
              transfer_to: str = "800", keys: str = "") -> AgentPhone:
        agent = next(a for a in self.cfg.agents if a.id == agent_id)
        pw = (self.sut.stack.dir / "secrets" / "agents" / f"{agent_id}.secret").read_text().strip()
        phone = AgentPhone(self.sut.sip_port, agent.endpoint, pw, mode=mode, talk_ms=talk_ms,
                           ring_ms=ring_ms, transfer_to=transfer_to, keys=keys)
        self.phones[agent_id] = phone
        if register:
            phone.register()
            self.wait_reachable(agent_id, True)
        return phone

    def status(self, agent_id: str) -> Any:
        return self._run(lambda pool: pool.status(agent_id))

    def wait_reachable(self, agent_id: str, want: bool, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(agent_id)
            if st is not None and st.reachable == want:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{agent_id} reachable={want} not seen in {timeout}s")
            time.sleep(0.1)

    def login(self, *agent_ids: str) -> None:
        for agent_id in agent_ids:
            self._run(lambda pool, a=agent_id: pool.login(a))

    def pause(self, agent_id: str, reason: str = "break") -> None:
        self._run(lambda pool: pool.pause(agent_id, reason))

    def close(self) -> None:
        for agent_id, phone in self.phones.items():
            phone.stop()
            with contextlib.suppress(Exception):
                phone.register(expires=0)
            self._run(lambda pool, a=agent_id: pool.logout(a))
        # every agent this config knows ends logged out, whoever logged it in
        ids = [a.id for a in self.cfg.agents]

        async def all_out(pool: Any) -> None:
            for a in ids:
                st = await pool.status(a)
                if st is not None and str(st.state) != "logged_out":
                    await pool.logout(a)

        self._run(all_out)


def resume(team: Agents, agent_id: str) -> None:
    team._run(lambda pool: pool.resume(agent_id))
