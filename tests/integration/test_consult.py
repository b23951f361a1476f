"""Consult (attended) transfer from the agent's keypad, with SIPp agent phones:
complete, return, declined, not answered, named agent, supervisor; and an
agent dialling a transfer code directly gets no citizen journey."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.stackfix import Agents, StackUnderTest

# an English caller for the Primary Health Care Corporation (1091 skips the menus)
PHCC_EN = "wait:400,dtmf:2"
MOF = "832"  # the transfer code of the Ministry of Finance: 8, sector 3, entity 2
START = "p1500,*,2,{target},#"


def _keys(target: str, then: str = "") -> str:
    keys = START.format(target=",".join(target))
    return f"{keys},{then}" if then else keys


def _wait_state(agents: Agents, agent_id: str, want: set[str], timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while True:
        st = agents.status(agent_id)
        if st is not None and str(st.state) in want:
            return str(st.state)
        if time.monotonic() > deadline:
            raise AssertionError(f"{agent_id} not in {want} within {timeout}s: {st}")
        time.sleep(0.1)


def _call(stack: StackUnderTest, steps: str) -> tuple[bool, dict]:  # type: ignore[type-arg]
    res, caller = stack.call(steps, number="1091")
    assert res.ok, res.stderr
    return res.ok, stack.record_for(caller)


def test_consult_an_entity_then_complete_hands_the_caller_over(
        stack: StackUnderTest, agents: Agents) -> None:
    # a014 answers, consults the Ministry of Finance's queue, talks, completes
    agents.phone("a014", "keys_then_wait_bye", keys=_keys(MOF, "p3000,*,2"))
    second = agents.phone("a002", "answer_hangup", talk_ms=7000)  # mof, English
    agents.login("a014", "a002")
    _, rec = _call(stack, f"{PHCC_EN},expect_bye:60000")
    assert rec["outcome"] == "answered", rec
    assert rec["agent"] == "a014"  # the call's answer is the first agent's
    [consult] = rec["consults"]
    assert consult["by"] == "a014" and consult["target_kind"] == "entity"
    assert consult["target"] == "mof" and consult["agent"] == "a002"
    assert consult["result"] == "completed" and consult["answered_at"]
    assert rec["entity"] == "mof" and rec["entity_path"][-1] == "mof"
    assert rec["hangup_by"] == "agent"  # a002 ended the call with the caller
    assert rec["talk_seconds"] > 5  # both agents' talk, the caller's arrival kept
    # the consulted agent's phone showed the caller's language and entity
    invite = second.messages().split("INVITE sip:", 1)[1][:1500]
    assert '"en phcc"' in invite, invite
    _wait_state(agents, "a014", {"wrapup", "available"})
    _wait_state(agents, "a002", {"wrapup", "available"})


def test_consult_then_return_to_the_caller(stack: StackUnderTest, agents: Agents) -> None:
    agents.phone("a014", "keys_then_hangup", keys=_keys(MOF, "p2500,*,1"), talk_ms=2500)
    agents.phone("a002", "answer")  # waits for the hotline's BYE
    agents.login("a014", "a002")
    _, rec = _call(stack, f"{PHCC_EN},expect_bye:60000")
    [consult] = rec["consults"]
    assert consult["result"] == "returned" and consult["agent"] == "a002"
    assert rec["agent"] == "a014" and rec["entity"] == "phcc"
    assert rec["hangup_by"] == "agent"
    # a colleague's consult is no call of theirs: no wrap-up, available at once
    _wait_state(agents, "a002", {"available"})


@pytest.mark.parametrize(("mode", "results"), [
    ("refuse", {"busy", "declined", "rejected"}),
    ("no_answer", {"no_answer"}),
])
def test_a_declined_or_unanswered_consult_returns_the_caller(
        stack: StackUnderTest, agents: Agents, mode: str, results: set[str]) -> None:
    # the agent waits on the consult (ring timeout 5 s in the tests), then talks
    agents.phone("a014", "keys_then_hangup", keys=_keys(MOF), talk_ms=9000)
    agents.phone("a002", mode)
    agents.login("a014", "a002")
    _, rec = _call(stack, f"{PHCC_EN},expect_bye:60000")
    [consult] = rec["consults"]
    assert consult["result"] in results, consult
    assert consult["answered_at"] is None
    assert rec["outcome"] == "answered" and rec["agent"] == "a014"
    assert rec["entity"] == "phcc" and rec["hangup_by"] == "agent"
    if mode == "refuse":
        _wait_state(agents, "a002", {"available"})  # a declined consult is no missed call


def test_consult_a_named_agent_and_a_supervisor(stack: StackUnderTest,
                                                agents: Agents) -> None:
    # a014 consults agent 9002 (a002) and returns; then the caller hangs up
    agents.phone("a014", "keys_then_hangup", keys=_keys("9002", "p2000,*,1"), talk_ms=1500)
    agents.phone("a002", "answer")
    agents.login("a014", "a002")
    _, rec = _call(stack, f"{PHCC_EN},expect_bye:60000")
    [consult] = rec["consults"]
    assert consult["target_kind"] == "agent" and consult["agent"] == "a002"
    assert consult["result"] == "returned"
    agents.close()
    # the supervisor (a021 in the test config) takes the caller over
    agents.phone("a014", "keys_then_wait_bye", keys=_keys("0", "p2500,*,2"))
    agents.phone("a021", "answer_hangup", talk_ms=4000)
    agents.login("a014", "a021")
    _, rec = _call(stack, f"{PHCC_EN},expect_bye:60000")
    [consult] = rec["consults"]
    assert consult["target_kind"] == "supervisor" and consult["agent"] == "a021"
    assert consult["result"] == "completed"
    assert rec["entity"] == "phcc"  # a supervisor takes the call as it is


def test_caller_hangs_up_during_a_consult(stack: StackUnderTest, agents: Agents) -> None:
    agents.phone("a014", "keys_then_wait_bye", keys=_keys(MOF, "p20000,*,1"))
    agents.phone("a002", "answer")
    agents.login("a014", "a002")
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(stack.call, f"{PHCC_EN},wait:6000,hangup", None, "1091")
        res, caller = fut.result()
    assert res.ok, res.stderr
    rec = stack.record_for(caller)
    [consult] = rec["consults"]
    assert consult["result"] == "caller_gone", consult
    assert rec["hangup_by"] == "caller"
    _wait_state(agents, "a014", {"wrapup", "available"})
    _wait_state(agents, "a002", {"available"})


def test_an_agent_dialling_a_transfer_code_gets_no_citizen_journey(
        stack: StackUnderTest) -> None:
    from tests.integration.test_hostile_lockdown import AGENT_INVITE, run_scenario

    pw = (stack.stack.dir / "secrets/agents/a001.secret").read_text().strip()
    before = len(stack.records())
    scen = AGENT_INVITE.replace("@AGENT@", "agent-a001").replace("@CODE@", "200")
    proc = run_scenario(stack.sip_port, scen, service="811", timeout=15,
                        extra=["-au", "agent-a001", "-ap", pw])
    assert proc.returncode == 0, proc.stdout[-800:]
    deadline = time.monotonic() + 10
    while not stack.log_lines(event="feature.refused", code="811"):
        assert time.monotonic() < deadline, "the direct dial of 811 was not refused"
        time.sleep(0.1)
    assert len(stack.records()) == before, "a transfer code dialled directly made a record"
