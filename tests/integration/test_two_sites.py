"""Issue 8: two sites for real — two Asterisk servers joined by an inter-site trunk,
one app instance each, one Redis, one agent pool."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import yaml

from ari_app.agents.pool import AgentPool
from ari_app.config.loader import load_config
from scripts.stack import Ports, Stack
from tests.support.sipp import AgentPhone, run_caller
from tests.support.stackfix import write_test_config

SITE_A, SITE_B = "doha_hq", "al_rayyan"
AGENT_A, AGENT_B = "a014", "a100"  # English speakers serving phcc, one at each site


class TwoSites:
    def __init__(self, a: Stack, b: Stack) -> None:
        self.a, self.b = a, b
        self.cfg = load_config(a.app_config)
        self.phones: list[AgentPhone] = []

    def pool(self, fn: Any) -> Any:
        async def go() -> Any:
            r = aioredis.from_url(f"redis://127.0.0.1:{self.a.ports.redis}/0")
            try:
                return await fn(AgentPool(r, self.cfg.agents))
            finally:
                await r.aclose()

        return asyncio.run(go())

    def phone(self, stack: Stack, agent_id: str) -> AgentPhone:
        agent = next(x for x in self.cfg.agents if x.id == agent_id)
        pw = (stack.dir / "secrets" / "agents" / f"{agent_id}.secret").read_text().strip()
        phone = AgentPhone(stack.ports.sip, agent.endpoint, pw, mode="answer")
        # register to that site's server, on its own address
        phone.sip_port = stack.ports.sip
        from tests.support import sipp

        res = sipp.register_agent(stack.ports.sip, agent.endpoint, pw, phone.port,
                                  server=stack.sip_address)
        assert res.ok, res.stderr
        phone._start()
        self.phones.append(phone)
        return phone

    def wait(self, what: str, pred: Any, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            assert time.monotonic() < deadline, f"not seen within {timeout}s: {what}"
            time.sleep(0.2)

    def reachable(self, agent_id: str) -> bool:
        st = self.pool(lambda p: p.status(agent_id))
        return bool(st and st.reachable)

    def call_a(self, steps: str) -> tuple[bool, str]:
        caller = f"9746{int(time.time() * 1000) % 10_000_000:07d}"
        res = run_caller(self.a.ports.sip, steps, caller=caller, number="1091", timeout=90)
        return res.ok, caller

    def record(self, caller: str) -> dict[str, Any]:
        import redis

        from ari_app.records.events import records_in_stream

        r = redis.Redis(port=self.a.ports.redis)
        deadline = time.monotonic() + 15
        try:
            while True:
                for rec in records_in_stream(f for _, f in r.xrange("{hotline}:records")):
                    if rec["caller"] == caller:
                        return rec
                assert time.monotonic() < deadline, f"no record for {caller}"
                time.sleep(0.2)
        finally:
            r.close()

    def clean(self) -> None:
        # both sites' Asterisk must answer: an unreachable ARI is a failure
        # (leftovers() raises), never "nothing left behind"
        for s in (self.a, self.b):
            left = s.leftovers()
            deadline = time.monotonic() + 10
            while (left["channels"] or left["bridges"]) and time.monotonic() < deadline:
                time.sleep(0.2)
                left = s.leftovers()
            assert not left["channels"] and not left["bridges"], f"{s.name}: {left}"


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoSites]:
    base = int(os.environ.get("HOTLINE_PORT_OFFSET", "0"))
    pa, pb = Ports(300 + base), Ports(400 + base)
    cfg_path: Path = write_test_config(tmp_path_factory.mktemp("sites") / "hotline.yaml")
    raw = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    servers: dict[str, Any] = {
        s["id"]: {"address": f"127.0.1.{i}", "sip_port": 5060}
        for i, s in enumerate(raw["sites"], start=10)}
    servers[SITE_A] = {"address": "127.0.0.1", "sip_port": pa.sip}
    servers[SITE_B] = {"address": "127.0.0.2", "sip_port": pb.sip}
    raw["deploy"] = {"servers": servers}
    cfg_path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    a = Stack(f"siteA{300 + base}", 300 + base, config=cfg_path, site=SITE_A)
    b = Stack(f"siteB{400 + base}", 400 + base, config=cfg_path, site=SITE_B,
              sip_address="127.0.0.2", carrier="127.0.0.250", redis_port=pa.redis)
    a.up()
    try:
        b.start_asterisk()
        b.start_app()
        two = TwoSites(a, b)
        two.phone(a, AGENT_A)
        two.phone(b, AGENT_B)
        two.wait("both phones reachable", lambda: two.reachable(AGENT_A)
                 and two.reachable(AGENT_B))
        yield two
    finally:
        for phone in locals().get("two", TwoSites(a, b)).phones:
            phone.stop()
        b.down()
        a.down()


def test_caller_at_site_a_is_bridged_to_an_agent_at_site_b(sites: TwoSites) -> None:
    sites.pool(lambda p: p.login(AGENT_B))
    ok, caller = sites.call_a("wait:400,dtmf:2,wait:5000,hangup")
    assert ok
    rec = sites.record(caller)
    assert rec["outcome"] == "answered"
    assert rec["agent"] == AGENT_B and rec["site"] == SITE_B
    assert rec["app"] == f"{SITE_A}-hotline"  # site A's app drove the call
    # the agent state is one truth: site B's instance sees the same wrap-up/available
    assert str(sites.pool(lambda p: p.status(AGENT_B)).state) in ("wrapup", "available")
    sites.clean()


def test_site_b_down_its_agents_are_not_offered_until_it_is_back(sites: TwoSites) -> None:
    sites.pool(lambda p: p.login(AGENT_B))
    sites.pool(lambda p: p.login(AGENT_A))
    sites.b.kill_app()
    sites.wait("site B's agents withheld", lambda: not sites.reachable(AGENT_B))
    # site A keeps serving with its own agent, even though B's agent has been idle longer
    ok, caller = sites.call_a("wait:400,dtmf:2,wait:3000,hangup")
    assert ok and sites.record(caller)["agent"] == AGENT_A
    sites.clean()
    # with A's agent gone, a caller waits: B's agent is not offered while B is down
    sites.pool(lambda p: p.logout(AGENT_A))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as ex:
        call = ex.submit(sites.call_a, "wait:400,dtmf:2,wait:14000,hangup")
        time.sleep(5)
        sites.b.start_app()  # site B is back: its AMI resync makes its agents reachable
        ok, caller = call.result()
    assert ok
    rec = sites.record(caller)
    assert rec["agent"] == AGENT_B and rec["outcome"] == "answered"
    assert rec["speed_of_answer"] > 4  # not offered before site B came back
    sites.clean()
