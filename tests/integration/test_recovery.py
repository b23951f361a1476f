"""Recovery after the app is killed: checkpoints this program cannot read, an agent
ringing at the kill, a caller who leaves while the app is down, and the order of
several waiting callers. SIPp callers and agent phones, the real Asterisk and Redis."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.support.recovery import call_of as _call_of
from tests.support.recovery import checkpoints as _checkpoints
from tests.support.recovery import redis_of as _redis
from tests.support.recovery import restart as _restart
from tests.support.recovery import until as _until
from tests.support.recovery import waiting as _waiting
from tests.support.stackfix import Agents, StackUnderTest, resume

PHCC_EN = "wait:400,dtmf:2"


def test_unreadable_checkpoints_end_their_calls_and_recovery_goes_on(
        stack: StackUnderTest, agents: Agents) -> None:
    agents.phone("a014", "answer_hangup", talk_ms=1500)
    agents.login("a014")
    agents.pause("a014")
    older, broken, fine = (stack.new_caller() for _ in range(3))
    with ThreadPoolExecutor(3) as ex:
        futs = {c: ex.submit(stack.call, f"{PHCC_EN},expect_bye:60000", c, "1091")
                for c in (older, broken, fine)}
        _until("three callers waiting", lambda: _waiting(stack) == 3)

        def corrupt() -> None:
            r = _redis(stack)
            try:
                # one from an older program, one whose state this program does not know
                r.hset("{hotline}:call:" + _call_of(stack, older), "v", "1")
                r.hset("{hotline}:call:" + _call_of(stack, broken), "state", "no_such_state")
            finally:
                r.close()

        _restart(stack, corrupt)
        resume(agents, "a014")
        results = {c: f.result()[0] for c, f in futs.items()}
    assert all(r.ok for r in results.values()), {c: r.stderr for c, r in results.items()}
    for caller, why in ((older, "checkpoint version '1'"), (broken, "unknown state")):
        rec = stack.record_for(caller)
        assert rec["outcome"] == "failed" and rec["hangup_by"] == "app", rec
        assert "checkpoint unreadable" in rec["failure"] and why in rec["failure"], rec
        assert rec["entity"] == "phcc"  # what could be read of the record is kept
        assert len(stack.records_for(caller)) == 1
    ok = stack.record_for(fine)
    assert ok["outcome"] == "answered" and ok["agent"] == "a014"
    done = _until("recovery.done", lambda: stack.log_lines(event="recovery.done"))
    assert done[-1]["unreadable"] == 2 and done[-1]["resumed"] == 1, done[-1]


def test_an_agent_ringing_at_the_kill_is_freed_and_the_caller_keeps_the_head(
        stack: StackUnderTest, agents: Agents) -> None:
    agents.phone("a014", "no_answer")  # rings until the hotline gives up
    agents.phone("a100", "answer_hangup", talk_ms=1000)
    agents.login("a014", "a100")
    agents.pause("a100")
    caller = stack.new_caller()
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(stack.call, f"{PHCC_EN},expect_bye:60000", caller, "1091")
        _until("a014 ringing", lambda: str(agents.status("a014").state) == "offered")
        _restart(stack)
        # the ringing leg is gone and the agent is free again (not paused: the
        # offer ended through no fault of theirs)
        _until("a014 freed", lambda: str(agents.status("a014").state) != "offered"
               or not stack.stack.ari("GET", "channels")[1])
        agents.pause("a014")
        resume(agents, "a100")
        res = fut.result()[0]
    assert res.ok, res.stderr
    rec = stack.record_for(caller)
    assert rec["outcome"] == "answered" and rec["agent"] == "a100", rec
    assert rec["offers"][0]["agent"] == "a014" and rec["offers"][0]["result"] == "failed"
    assert len(stack.records_for(caller)) == 1
    assert stack.log_lines(event="recovery.resume", was="ringing", now="queued")


def test_a_caller_who_hangs_up_while_the_app_is_down_is_closed_out(
        stack: StackUnderTest, agents: Agents) -> None:
    agents.phone("a014", "answer")
    agents.login("a014")
    agents.pause("a014")
    caller = stack.new_caller()
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(stack.call, f"{PHCC_EN},wait:4000,hangup", caller, "1091")
        _until("caller waiting", lambda: _waiting(stack) == 1)
        # down until the caller has hung up
        _restart(stack, lambda: fut.result())
    rec = stack.record_for(caller)
    assert rec["outcome"] == "abandoned_in_queue", rec
    assert rec["failure"].startswith("ended while the app was restarting")
    assert rec["queue"][0]["entity"] == "phcc"
    assert len(stack.records_for(caller)) == 1
    assert _waiting(stack) == 0  # the caller's place is given up
    assert not _checkpoints(stack)
    resume(agents, "a014")


def test_five_waiting_callers_keep_their_order_across_a_kill(
        stack: StackUnderTest, agents: Agents) -> None:
    agents.phone("a014", "answer_hangup", talk_ms=600)
    agents.login("a014")
    agents.pause("a014")
    callers = [stack.new_caller() for _ in range(5)]
    with ThreadPoolExecutor(5) as ex:
        futs = []
        for i, c in enumerate(callers):
            futs.append(ex.submit(stack.call, f"{PHCC_EN},expect_bye:90000", c, "1091"))
            _until(f"caller {i + 1} waiting", lambda n=i + 1: _waiting(stack) == n)
        _restart(stack)
        resume(agents, "a014")
        results = [f.result()[0] for f in futs]
    assert all(r.ok for r in results), [r.stderr for r in results]
    recs = [stack.record_for(c) for c in callers]
    assert all(r["outcome"] == "answered" for r in recs), recs
    answered = [r["agent_answered_at"] for r in recs]
    assert answered == sorted(answered), "callers were not served in their arrival order"
    joined = [r["queue_joined_at"] for r in recs]
    assert joined == sorted(joined)
