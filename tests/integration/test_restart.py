"""Issue 6, part 1: the app is SIGKILLed mid-call and started again."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from tests.support.recovery import checkpoints, restart, until
from tests.support.recovery import waiting as waiting_count
from tests.support.stackfix import Agents, StackUnderTest, resume

PHCC_EN = "wait:400,dtmf:2"


def test_calls_in_menu_queue_and_bridge_survive_an_app_kill(
        stack: StackUnderTest, agents: Agents) -> None:
    agents.phone("a014", "answer")
    agents.phone("a100", "answer")
    agents.login("a014")
    agents.login("a100")
    agents.pause("a100")
    talking, waiting, in_menu = (stack.new_caller() for _ in range(3))
    with ThreadPoolExecutor(3) as ex:
        # long enough calls that a slow restart (a loaded machine) still finds them
        f_talk = ex.submit(stack.call, f"{PHCC_EN},wait:30000,hangup", talking, "1091")
        until("a014 on the first call", lambda: str(agents.status("a014").state) == "on_call")
        f_wait = ex.submit(stack.call, f"{PHCC_EN},wait:30000,hangup", waiting, "1091")
        until("the second caller waiting", lambda: waiting_count(stack) == 1)
        joined = time.monotonic()
        f_menu = ex.submit(stack.call, "wait:400,dtmf:2,wait:20000,hangup", in_menu, "109")
        until("the third caller in the entity menu", lambda: any(
            cp.get("state") == "entity_menu" and in_menu in cp.get("record", "")
            for cp in checkpoints(stack).values()))
        killed_at = time.monotonic()
        restart(stack)
        print(f"app back {time.monotonic() - killed_at:.2f}s after the kill")
        resume(agents, "a100")  # now someone can answer the waiting caller
        waited = time.monotonic() - joined
        results = [f.result()[0] for f in (f_talk, f_wait, f_menu)]
    assert all(r.ok for r in results), [r.stderr for r in results]

    talk = stack.record_for(talking)
    assert talk["outcome"] == "answered" and talk["agent"] == "a014"
    assert talk["talk_seconds"] > 10  # the bridge carried on through the restart
    assert talk["hangup_by"] == "caller" and talk["ended_at"]

    wait = stack.record_for(waiting)
    assert wait["outcome"] == "answered" and wait["agent"] == "a100"
    # speed of answer still counts from the original join, before the kill: at
    # least as long as the caller had waited when an agent became free
    assert wait["speed_of_answer"] >= waited - 0.5, (wait["speed_of_answer"], waited)

    menu = stack.record_for(in_menu)
    assert menu["outcome"] == "abandoned_in_menu"
    # resumed in the entity menu, which was played again after the restart (the
    # checkpoint is taken before a menu plays, so the record lists it once)
    assert stack.log_lines(event="call.resume", call_id=menu["call_id"], state="entity_menu")
    assert menu["prompts"][0] == "ar:hotline/welcome"  # the history from before the kill
    assert "en:hotline/menu-intro" in menu["prompts"] and menu["digits"] == "2"

    for agent in ("a014", "a100"):
        assert str(agents.status(agent).state) in ("wrapup", "available"), agent
    assert stack.log_lines(event="recovery.done")
    # each call has exactly one record: nothing counted twice
    for caller in (talking, waiting, in_menu):
        assert len(stack.records_for(caller)) == 1
