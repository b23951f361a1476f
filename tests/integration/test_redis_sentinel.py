"""Issue 16: the app on Redis Sentinel (a primary, a replica, three sentinels). The
primary is SIGKILLed while one caller talks and two wait: the talk goes on, the
waiting callers keep their music and their place and are served after the
failover, every call's events reach the stream and the archive exactly once, and
the agents' states are on the new primary. The figures go to bench/results/ when
HOTLINE_BENCH_OUT names a file (docs/operations.md, "Redis failover")."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.support.exactly_once import count_archive, count_stream
from tests.support.sentinel import SentinelAgents, on_sentinels, primary_client, sentinel_group
from tests.support.stackfix import StackUnderTest

PHCC_EN = "wait:400,dtmf:2"
TALK_MS = 12_000  # long enough to span the failover


def _until(check: Any, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < timeout, what
        time.sleep(0.05)
    return time.monotonic() - t0


def _call(ex: ThreadPoolExecutor, sut: StackUnderTest, steps: str) -> tuple[Future[Any], str]:
    caller = sut.new_caller()
    return ex.submit(sut.call, steps, caller, "1091", 90), caller


def test_primary_killed_talk_goes_on_waiting_callers_served_records_once(
        stack: StackUnderTest) -> None:
    s = stack.stack
    with sentinel_group(stack) as group, on_sentinels(stack, group), \
            ThreadPoolExecutor(3) as ex:
        team = SentinelAgents(stack, group)
        try:
            team.phone("a014", "answer_hangup", talk_ms=TALK_MS)
            team.phone("a049", "answer_hangup", talk_ms=1500)
            team.login("a014", "a049")
            team.pause("a049")
            since = s.app_log.stat().st_size
            old = primary_client(group)
            talking, c_talk = _call(ex, stack, f"{PHCC_EN},expect_bye:60000")
            _until(lambda: str(team.status("a014").state) == "on_call", 20, "a014 not talking")
            talk_call = team.status("a014").call
            w1, c_w1 = _call(ex, stack, f"{PHCC_EN},expect_bye:80000")
            _until(lambda: _waiting(old) == 1, 15, "the first caller is not waiting")
            w2, c_w2 = _call(ex, stack, f"{PHCC_EN},expect_bye:80000")
            _until(lambda: _waiting(old) == 2, 15, "the second caller is not waiting")
            order = _waiting_ids(old)
            # what the docs call the replication window: the replica has every write
            lag = _until(lambda: _replica_caught_up(group), 5, "replica lagging")
            old.close()
            group.kill("primary")
            t_kill, wall_kill = time.monotonic(), time.time()
            promoted = _until(lambda: group.primary() == group.replica_port, 30,
                              "the sentinels promoted no replica")
            new = primary_client(group)
            # agents' states and the queue are on the new primary, as they were
            assert _waiting_ids(new) == order
            st = team.status("a014")
            assert (str(st.state), st.call) == ("on_call", talk_call)
            assert str(team.status("a049").state) == "paused"
            assert not talking.done(), "the talking call ended with the primary"
            assert "at sentinel service hotline via" in _doctor(stack)  # the CLI follows too
            team._run(lambda pool: pool.resume("a049"))
            served = _until(lambda: _answered(stack, since) >= 2, 40,
                            "the waiting callers were not served after the failover")
            kill_to_served = time.monotonic() - t_kill
            results = [f.result()[0] for f in (talking, w1, w2)]
            assert all(r.ok for r in results), [r.stderr[-300:] for r in results]
            callers = [c_talk, c_w1, c_w2]
            recs = {c: _record(new, c) for c in callers}
            assert recs[c_talk]["outcome"] == "answered" and recs[c_talk]["agent"] == "a014"
            assert recs[c_talk]["hangup_by"] == "agent", "the talk did not run to its end"
            assert [recs[c]["outcome"] for c in (c_w1, c_w2)] == ["answered", "answered"]
            assert recs[c_w1]["agent_answered_at"] < recs[c_w2]["agent_answered_at"]
            assert not stack.log_lines(since, event="queue.redis_down")
            assert not stack.log_lines(since, event="call.moh_failed")
            once = _exactly_once(stack, new, recs)
        finally:
            team.close()
    _write_figures(lag=lag, promoted=promoted, app_back=_app_back(stack, since, wall_kill),
                   served=served, kill_to_served=kill_to_served, calls=3,
                   kept=sum(r.ok for r in results), once=once)


def _app_back(stack: StackUnderTest, since: int, wall_kill: float) -> float | None:
    """Seconds from the kill to the last waiting caller's `queue.redis_back` (the app
    writing to the new primary again); None when no waiting caller met the outage."""
    from datetime import datetime

    back = [datetime.fromisoformat(ln["timestamp"]).timestamp()
            for ln in stack.log_lines(since, event="queue.redis_back")]
    return max(back) - wall_kill if back else None


def _doctor(stack: StackUnderTest) -> str:
    import asyncio

    from ari_app.config.loader import load_config
    from ari_app.doctor import check_redis

    return asyncio.run(check_redis(load_config(stack.stack.app_config)))


def _waiting_ids(r: Any) -> list[str]:
    return [m.decode() for k in r.keys("{hotline}:wait:*") for m in r.zrange(k, 0, -1)]


def _waiting(r: Any) -> int:
    return len(_waiting_ids(r))


def _replica_caught_up(group: Any) -> bool:
    """The replica acknowledged every byte the primary has written."""
    p = group.info_replication(group.primary_port)
    replica = dict(kv.split("=", 1) for kv in p.get("slave0", "").split(",") if "=" in kv)
    return replica.get("offset") == p.get("master_repl_offset")


def _answered(stack: StackUnderTest, since: int) -> int:
    """Callers answered since `since`, bar the one talking before the kill (either agent
    may serve the waiting ones: a014 once its talk ends)."""
    return len(stack.log_lines(since, event="queue.answered")) - 1


def _record(r: Any, caller: str, timeout: float = 20) -> dict[str, Any]:
    from ari_app.records.events import records_in_stream

    deadline = time.monotonic() + timeout
    while True:
        found = [x for x in records_in_stream(f for _i, f in r.xrange("{hotline}:records"))
                 if x.get("caller") == caller]
        if found or time.monotonic() > deadline:
            assert len(found) == 1, f"{caller}: {len(found)} records in the stream"
            return found[0]
        time.sleep(0.2)


def _exactly_once(stack: StackUnderTest, r: Any, recs: dict[str, dict[str, Any]]) -> bool:
    streamed = count_stream(r)
    ids = {c: rec["call_id"] for c, rec in recs.items()}
    for c, cid in ids.items():
        seqs = streamed.seqs(cid)
        assert streamed.ended(cid), f"{c}: no `ended` event in the stream"
        assert seqs == list(range(1, len(seqs) + 1)), f"{c}: events lost or repeated: {seqs}"
    assert not [i for i in streamed.repeated if i.split(":")[0] in ids.values()]
    want = {cid: len(streamed.events[cid]) for cid in ids.values()}
    got = count_archive(stack.stack.archive, list(ids), want)
    assert {c: len(v) for c, v in got.calls.items()} == dict.fromkeys(ids, 1), got.calls
    assert got.events == want, (got.events, want)
    return True


def _write_figures(**fig: Any) -> None:
    """Appended to HOTLINE_BENCH_OUT (a bench/results/ file) when set: no timed assertion."""
    out = os.environ.get("HOTLINE_BENCH_OUT")
    if not out:
        return
    rounded = {k: round(v, 2) if isinstance(v, float) else v for k, v in fig.items()}
    with Path(out).open("a", encoding="utf-8") as f:
        f.write(json.dumps(rounded) + "\n")
