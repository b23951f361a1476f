"""Issue 4: two app instances on one Asterisk, one Redis: no agent is ever offered two calls."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
import urllib.request
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import yaml

from tests.support.stackfix import Agents, StackUnderTest


def _ts(s: str) -> float:
    from ari_app.records.model import parse_iso

    return parse_iso(s).timestamp()


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
            return bool(json.loads(r.read()).get("ready"))
    except OSError:
        return False


def test_two_instances_never_offer_one_agent_two_calls(
        stack: StackUnderTest, agents: Agents) -> None:
    s = stack.stack
    # a second Stasis application, reached on 1099 (the same journey as 1091)
    local = s.inst / "etc" / "extensions_local.conf"
    local.write_text("[from-carrier-local]\n"
                     "exten => 1099,1,Set(__HOTLINE_DIALLED=1091)\n"
                     " same => n,Stasis(hotline2,1091,)\n same => n,Hangup()\n")
    s.asterisk_cli("dialplan reload")
    cfg = yaml.safe_load(s.app_config.read_text(encoding="utf-8"))
    cfg["ari"]["app"] = "hotline2"
    cfg["http"]["port"] = s.ports.app_http + 1000
    cfg["agi"]["port"] = s.ports.agi + 1000
    second_cfg = s.app_config.with_name("hotline2.yaml")
    second_cfg.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    log = open(s.dir / "app2.log", "wb")  # noqa: SIM115 - the child's
    second = subprocess.Popen(
        [".venv/bin/hotline", "--config", str(second_cfg), "run"], stdout=log,
        stderr=subprocess.STDOUT, env=dict(os.environ, HOTLINE_LOG_FORMAT="json"))
    try:
        deadline = time.monotonic() + 20
        while not _ready(cfg["http"]["port"]):
            assert second.poll() is None and time.monotonic() < deadline, "hotline2 not ready"
            time.sleep(0.1)
        team = ["a014", "a100", "a033"]  # English phcc agents at two sites
        for a in team:
            agents.phone(a, "answer_hangup", talk_ms=1000, ring_ms=200)
        agents.login(*team)
        callers = [stack.new_caller() for _ in range(12)]
        with ThreadPoolExecutor(12) as ex:
            futures = []
            for i, caller in enumerate(callers):
                number = "1091" if i % 2 == 0 else "1099"  # half to each instance
                futures.append(ex.submit(stack.call, "wait:400,dtmf:2,expect_bye:90000",
                                         caller, number, 110))
                time.sleep(0.2)
            results = [f.result()[0] for f in futures]
        assert all(r.ok for r in results), [r.stderr for r in results if not r.ok]
    finally:
        second.terminate()
        second.wait(15)
        log.close()
        local.unlink(missing_ok=True)
        s.asterisk_cli("dialplan reload")
    recs = [stack.record_for(c) for c in callers]
    assert {r["app"] for r in recs} == {"hotline", "hotline2"}
    assert all(r["outcome"] == "answered" for r in recs), [r["outcome"] for r in recs]
    # per agent, each offer starts only after the agent's previous call has ended
    by_agent: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in recs:
        for o in r["offers"]:
            end = _ts(r["ended_at"]) if o["result"] == "answered" else \
                _ts(o["at"]) + (o["ring_seconds"] or 0)
            by_agent[o["agent"]].append((_ts(o["at"]), end))
    for agent, spans in by_agent.items():
        spans.sort()
        for (_, prev_end), (start, _) in itertools.pairwise(spans):
            assert start >= prev_end - 0.05, f"{agent} offered a call while on another"
    assert second.returncode == 0
