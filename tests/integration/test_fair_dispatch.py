"""Fair dispatch across entities (issue 13, part 2) with SIPp callers and a SIPp agent.

a014 (English) serves both phcc and hmc. A phcc caller waits first, an hmc
caller joins later; when a014 becomes free the phcc caller, who has waited
longer, is served first. The per-entity dispatcher walked entities in sorted
order and gave a014 to the hmc caller ("hmc" < "phcc").
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import redis

from tests.support.stackfix import Agents, StackUnderTest, resume

# 1091 goes straight to phcc; 109 → English (2) → health (1) → hmc (3)
PHCC_EN = ("1091", "wait:400,dtmf:2,expect_bye:60000")
HMC_EN = ("109", "wait:400,dtmf:2,wait:700,dtmf:1,wait:700,dtmf:3,expect_bye:60000")


def _ts(s: str) -> float:
    from ari_app.records.model import parse_iso

    return parse_iso(s).timestamp()


def wait_waiting(stack: StackUnderTest, entity: str, n: int, timeout: float = 20) -> None:
    """Until `n` callers wait in `entity`'s queue (read from the stack's Redis)."""
    r = redis.Redis(port=stack.stack.ports.redis)
    try:
        deadline = time.monotonic() + timeout
        while (got := int(r.zcard("{hotline}:wait:" + entity))) != n:
            assert time.monotonic() < deadline, f"{entity}: {got} waiting, expected {n}"
            time.sleep(0.05)
    finally:
        r.close()


def test_agent_of_two_entities_serves_the_longer_waiting_caller_first(
        stack: StackUnderTest, agents: Agents) -> None:
    agents.phone("a014", "answer_hangup", talk_ms=1500)
    agents.login("a014")
    agents.pause("a014")
    early_phcc, late_hmc = stack.new_caller(), stack.new_caller()
    with ThreadPoolExecutor(2) as ex:
        f_phcc = ex.submit(stack.call, PHCC_EN[1], early_phcc, PHCC_EN[0])
        wait_waiting(stack, "phcc", 1)
        f_hmc = ex.submit(stack.call, HMC_EN[1], late_hmc, HMC_EN[0])
        wait_waiting(stack, "hmc", 1)
        resume(agents, "a014")
        res_phcc, res_hmc = f_phcc.result()[0], f_hmc.result()[0]
        assert res_phcc.ok, res_phcc.stderr
        assert res_hmc.ok, res_hmc.stderr
    r_phcc, r_hmc = stack.record_for(early_phcc), stack.record_for(late_hmc)
    assert r_phcc["outcome"] == r_hmc["outcome"] == "answered"
    assert r_phcc["agent"] == r_hmc["agent"] == "a014"
    assert _ts(r_phcc["queue"][0]["joined_at"]) < _ts(r_hmc["queue"][0]["joined_at"])
    # the caller who waited longer (phcc) was offered first, though "hmc" sorts first
    assert _ts(r_phcc["offers"][0]["at"]) < _ts(r_hmc["offers"][0]["at"])
    assert _ts(r_phcc["agent_answered_at"]) < _ts(r_hmc["agent_answered_at"])
