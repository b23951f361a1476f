"""Issue 6: the stack's parts fail during calls; the app keeps its promises.

Asterisk restarts, Redis goes away for a while, the AMI connection drops, and
the app itself is told to stop (SIGTERM). Each test restores what it broke,
so the session stack is whole for the next test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.integration.test_hostile_journey import active_calls
from tests.support.exactly_once import count_archive, count_stream
from tests.support.stackfix import Agents, StackUnderTest, app_config, resume

PHCC_EN = "wait:400,dtmf:2"
REDIS_OUTAGE_SECONDS = 10  # the brief's 30 s, shortened: every path is the same after ~3 s



def _log_since(sut: StackUnderTest, since: int, **match: Any) -> list[dict[str, Any]]:
    return sut.log_lines(since, **match)


def _wait_log(sut: StackUnderTest, since: int, timeout: float, **match: Any
              ) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = _log_since(sut, since, **match)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _archived(sut: StackUnderTest, callers: list[str], timeout: float = 30
              ) -> dict[str, list[tuple[str, str]]]:
    """caller -> [(call_id, outcome)] in the SQLite archive, once every caller is there."""
    deadline = time.monotonic() + timeout
    found: dict[str, list[tuple[str, str]]] = {}
    while time.monotonic() < deadline:
        found = {}
        if sut.stack.archive.exists():
            con = sqlite3.connect(f"file:{sut.stack.archive}?mode=ro", uri=True)
            try:
                marks = ",".join("?" * len(callers))
                for caller, cid, outcome in con.execute(
                        f"SELECT caller, call_id, outcome FROM calls WHERE caller IN ({marks})",
                        callers):
                    found.setdefault(caller, []).append((cid, outcome))
            except sqlite3.OperationalError:
                pass
            finally:
                con.close()
        if len(found) == len(callers):
            return found
        time.sleep(0.3)
    return found




def _in_background(sut: StackUnderTest, steps: str, number: str = "109",
                   timeout: float = 90) -> tuple[Future[Any], str, ThreadPoolExecutor]:
    ex = ThreadPoolExecutor(1)
    caller = sut.new_caller()
    return ex.submit(sut.call, steps, caller, number, timeout), caller, ex


# ------------------------------------------------------------ Asterisk restart --

def test_asterisk_restart_during_calls(stack: StackUnderTest, agents: Agents) -> None:
    s = stack.stack
    agents.phone("a014", "answer")
    agents.login("a014")
    since = s.app_log.stat().st_size
    in_menu, c_menu, ex1 = _in_background(stack, "wait:400,dtmf:2,wait:30000,hangup", timeout=45)
    talking, c_talk, ex2 = _in_background(stack, f"{PHCC_EN},wait:30000,hangup", "1091",
                                          timeout=45)
    deadline = time.monotonic() + 15
    while len(active_calls(stack)) < 2 or not _log_since(stack, since, event="queue.answered"):
        assert time.monotonic() < deadline, "calls did not reach the menu and the agent"
        time.sleep(0.2)
    time.sleep(1)
    t_down = time.monotonic()
    s.stop("asterisk")
    time.sleep(5)
    down_for = time.monotonic() - t_down
    s.start_asterisk()
    for fut, ex in ((in_menu, ex1), (talking, ex2)):
        fut.result()  # SIPp ends one way or another (its BYE may go unanswered)
        ex.shutdown()
    # 1. reconnect with backoff: a bounded number of attempts, each logged
    assert _wait_log(stack, since, 20, event="ari.connected"), "no ARI reconnect"
    failed = _log_since(stack, since, event="ari.connect_failed")
    waits = _log_since(stack, since, event="ari.reconnect_wait")
    assert 1 <= len(failed) <= 2 * down_for + 3, f"{len(failed)} attempts in {down_for:.0f}s"
    assert len(waits) >= len(failed)
    assert all(0 < w["seconds"] <= 10 for w in waits)
    # 2. both calls got exactly one record; neither is left in Redis
    rec_menu, rec_talk = stack.record_for(c_menu, 30), stack.record_for(c_talk, 30)
    assert len(stack.records_for(c_menu)) == len(stack.records_for(c_talk)) == 1
    assert rec_menu["outcome"] in ("abandoned_in_menu", "failed")
    assert rec_talk["outcome"] in ("answered", "failed")
    assert rec_talk["agent"] == "a014"
    deadline = time.monotonic() + 10
    while active_calls(stack) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert active_calls(stack) == set()
    # 3. AMI came back and resynced contacts; the agent is reachable and free again
    assert _wait_log(stack, since, 20, event="ami.contacts_synced")
    agents.wait_reachable("a014", True, timeout=15)
    deadline = time.monotonic() + 10
    while str(agents.status("a014").state) != "available" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert str(agents.status("a014").state) == "available"
    # 4. new calls work, and reach the agent
    res, caller = stack.call(f"{PHCC_EN},wait:3000,hangup", number="1091")
    assert res.ok, res.stderr
    rec = stack.record_for(caller)
    assert rec["outcome"] == "answered" and rec["agent"] == "a014"


def test_calls_dropped_by_asterisk_are_marked_as_system_failures(stack: StackUnderTest) -> None:
    s = stack.stack
    fut, caller, ex = _in_background(stack, "wait:400,dtmf:2,wait:20000,hangup", timeout=30)
    deadline = time.monotonic() + 10
    while not active_calls(stack):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1)
    s.stop("asterisk")
    time.sleep(2)
    s.start_asterisk()
    fut.result()
    ex.shutdown()
    rec = stack.record_for(caller, 30)
    assert rec["hangup_by"] == "system" and rec["failure"], rec


# ---------------------------------------------------------------- Redis outage --

def test_redis_outage_calls_continue_records_spooled_then_delivered_once(
        stack: StackUnderTest) -> None:
    # The rig's default spool (../var beside .stack/<name>/hotline.yaml) is shared by every
    # stack on the host; this test gives its app a spool of its own (see the report).
    spool = stack.stack.dir / "spool" / "records.spool.jsonl"
    with app_config(stack, records_spool=str(spool)):
        _redis_outage(stack, spool)


def _redis_outage(stack: StackUnderTest, spool: Path) -> None:
    s = stack.stack
    since = s.app_log.stat().st_size
    # a caller already in the menus when Redis goes
    during, c_during, ex = _in_background(stack, "wait:400,dtmf:2,wait:6000,dtmf:1,wait:2000,"
                                          "hangup", timeout=40)
    time.sleep(1.5)
    s.stop("redis")
    t0 = time.monotonic()
    try:
        # a new caller while Redis is away: the full journey (menus need no Redis)
        res_menu, c_menu = stack.call("wait:400,dtmf:2,wait:1500,hangup")
        assert res_menu.ok, res_menu.stderr
        assert during.result()[0].ok
        ex.shutdown()
        assert s.app_ready(), "the app reports not ready while only Redis is away"
        deadline = time.monotonic() + 10  # a publish waits out its 2 s XADD timeout first
        while len(_log_since(stack, since, event="events.spooled")) < 2:
            assert time.monotonic() < deadline, _log_since(stack, since, event="events.spooled")
            time.sleep(0.2)
        time.sleep(max(0.0, REDIS_OUTAGE_SECONDS - (time.monotonic() - t0)))
    finally:
        s.start_redis()
    # the spool drains (the app retries every 5 s) and the archiver catches up
    assert _wait_log(stack, since, 20, event="spool.drained"), "spool not drained"
    callers = [c_during, c_menu]
    recs = {c: stack.records_for(c) for c in callers}
    assert all(len(v) >= 1 for v in recs.values()), recs
    arch = _archived(stack, callers)
    assert set(arch) == set(callers), arch
    for c, rows in arch.items():
        assert len(rows) == 1, f"{c} archived {len(rows)} times"
    assert arch[c_menu][0][1] == "abandoned_in_menu"
    assert arch[c_during][0][1] == "abandoned_in_menu"
    assert spool.parent.exists(), "nothing was spooled where the config says"
    assert [p for p in spool.parent.iterdir() if p.stat().st_size] == []
    # Redis back: a new call is normal again
    res, caller = stack.call("wait:400,dtmf:2,wait:800,hangup")
    assert res.ok and stack.record_for(caller)["outcome"] == "abandoned_in_menu"


def test_queue_caller_hears_the_fallback_once_the_outage_outlasts_max_outage(
        stack: StackUnderTest) -> None:
    s = stack.stack
    with app_config(stack, redis={"max_outage": 3}):
        since = s.app_log.stat().st_size
        s.stop("redis")
        try:
            res, caller = stack.call(f"{PHCC_EN},wait:1500,expect_bye:30000", number="1091",
                                     timeout=40)
        finally:
            s.start_redis()
        rec = stack.record_for(caller, 30)
        assert not _log_since(stack, since, event="call.crashed")
        assert res.ok, "hung up without a word while the caller was still listening"
        assert _log_since(stack, since, event="queue.redis_outage_waiting"), "no ride-out"
        assert rec["outcome"] == "no_agent_fallback" and "en:hotline/no-agents" in rec["prompts"]


REDIS_KILLED_SECONDS = 30  # the outage: three announcement intervals of the test config


def test_redis_killed_waiting_callers_keep_their_place_and_are_served_after(
        stack: StackUnderTest, agents: Agents) -> None:
    """SIGKILL Redis (no replica) for 30 s while two callers wait for a paused agent and a
    third goes through the menus: the menus go on; the waiting callers keep waiting (no
    fallback) and are served in their order once Redis is back; each call's events are in
    the stream once and in the archive once."""
    s = stack.stack
    agents.phone("a014", "answer_hangup", talk_ms=1500)
    agents.login("a014")
    agents.pause("a014")
    since = s.app_log.stat().st_size
    first, c1, ex1 = _in_background(stack, f"{PHCC_EN},expect_bye:120000", "1091", timeout=130)
    _until(lambda: len(_waiting(stack)) == 1, 15, "the first caller did not reach the queue")
    second, c2, ex2 = _in_background(stack, f"{PHCC_EN},expect_bye:120000", "1091", timeout=130)
    _until(lambda: len(_waiting(stack)) == 2, 15, "the second caller did not reach the queue")
    time.sleep(1.5)  # past Redis's once-a-second AOF fsync: the queue is on disk
    s.stop("redis", signal.SIGKILL)
    t0 = time.monotonic()
    try:
        res_menu, c_menu = stack.call("wait:400,dtmf:2,wait:1500,hangup")
        assert res_menu.ok, res_menu.stderr
        deadline = time.monotonic() + REDIS_KILLED_SECONDS
        while len({ln.get("call_id") for ln in _log_since(
                stack, since, event="queue.redis_outage_waiting")}) < 2:
            assert time.monotonic() < deadline, "the waiting callers never met the outage"
            time.sleep(0.2)
        time.sleep(max(0.0, REDIS_KILLED_SECONDS - (time.monotonic() - t0)))
        assert not first.done() and not second.done(), "a waiting caller was hung up"
    finally:
        s.start_redis()
    resume(agents, "a014")
    for fut, ex in ((first, ex1), (second, ex2)):
        assert fut.result()[0].ok
        ex.shutdown()
    assert not _log_since(stack, since, event="queue.redis_down")
    recs = {c: stack.record_for(c, 30) for c in (c1, c2, c_menu)}
    assert [recs[c]["outcome"] for c in (c1, c2)] == ["answered", "answered"], recs
    assert recs[c1]["agent_answered_at"] < recs[c2]["agent_answered_at"], "served out of order"
    assert recs[c_menu]["outcome"] == "abandoned_in_menu"
    _assert_exactly_once(stack, [c1, c2, c_menu], since)


def _until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _waiting(stack: StackUnderTest) -> list[str]:
    """Every caller in the shared queues, in serving order within each entity."""
    import redis

    r = redis.Redis(port=stack.stack.ports.redis)
    try:
        return [m.decode() for k in r.keys("{hotline}:wait:*") for m in r.zrange(k, 0, -1)]
    finally:
        r.close()


def _assert_exactly_once(stack: StackUnderTest, callers: list[str], since: int) -> None:
    import redis

    assert _wait_log(stack, since, 20, event="spool.drained"), "the spool was not drained"
    ids = {c: stack.record_for(c)["call_id"] for c in callers}
    r = redis.Redis(port=stack.stack.ports.redis)
    try:
        streamed = count_stream(r)
    finally:
        r.close()
    for c, cid in ids.items():
        assert streamed.ended(cid), f"{c}: no `ended` event in the stream"
        seqs = streamed.seqs(cid)  # a call's events count from 1 (0 is a v1 record)
        assert seqs == list(range(1, len(seqs) + 1)), f"{c}: events lost or repeated: {seqs}"
    assert not [i for i in streamed.repeated if i.split(":")[0] in ids.values()], \
        streamed.repeated
    want = {cid: len(streamed.events[cid]) for cid in ids.values()}
    got = count_archive(stack.stack.archive, callers, want)
    assert {c: len(v) for c, v in got.calls.items()} == dict.fromkeys(callers, 1), got.calls
    assert got.events == want, (got.events, want)


# -------------------------------------------------------------------- AMI drop --

def _drop_app_ami(sut: StackUnderTest) -> None:
    """Kill every TCP connection to Asterisk's AMI port (the app's is the only one)."""
    port = sut.stack.ports.ami
    killed = subprocess.run(["ss", "-K", "dst", "127.0.0.1", "dport", "=", f":{port}"],
                            capture_output=True, text=True)
    assert f":{port}" in killed.stdout, killed.stdout + killed.stderr


class AmiListener:
    """A second AMI session (the app's credentials) that keeps every event it reads."""

    def __init__(self, sut: StackUnderTest) -> None:
        s = sut.stack
        self.sock = socket.create_connection(("127.0.0.1", s.ports.ami), timeout=5)
        secret = (s.dir / "secrets/ami_secret").read_text().strip()
        self.events: list[dict[str, str]] = []
        self._buf = b""
        self.sock.sendall(f"Action: Login\r\nUsername: hotline\r\nSecret: {secret}\r\n"
                          "Events: on\r\n\r\n".encode())
        self.wait_for(lambda m: m.get("Response") in ("Success", "Error"), 5)
        assert any(m.get("Response") == "Success" for m in self.events), self.events

    def _read(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        with contextlib.suppress(TimeoutError):
            chunk = self.sock.recv(65536)
            assert chunk, "AMI closed the listener's session"
            self._buf += chunk
        while b"\r\n\r\n" in self._buf:
            block, self._buf = self._buf.split(b"\r\n\r\n", 1)
            msg = {}
            for line in block.decode(errors="replace").split("\r\n"):
                k, sep, v = line.partition(":")
                if sep:
                    msg[k.strip()] = v.strip()
            self.events.append(msg)

    def wait_for(self, match: Any, timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.events if match(m)]
            if found:
                return found[0]
            left = deadline - time.monotonic()
            assert left > 0, f"no matching AMI message in {timeout}s: {self.events[-5:]}"
            self._read(min(left, 0.5))

    def close(self) -> None:
        self.sock.close()


def test_ami_connection_drop_reconnects_and_resyncs(stack: StackUnderTest,
                                                    agents: Agents) -> None:
    """AMI drops while an agent talks: the call goes on, the agent stays on it, and the
    resync after the reconnect neither frees nor loses the agent."""
    s = stack.stack
    agents.phone("a014", "answer")
    agents.login("a014")
    fut, caller, ex = _in_background(stack, f"{PHCC_EN},wait:9000,hangup", "1091", timeout=40)
    try:
        deadline = time.monotonic() + 15
        while (st := agents.status("a014")).state != "on_call":
            assert not fut.done() and time.monotonic() < deadline, (st, fut.done())
            time.sleep(0.1)
        call_id = st.call
        since = s.app_log.stat().st_size
        connects = len(stack.log_lines(event="ami.connected"))
        _drop_app_ami(stack)
        assert _wait_log(stack, since, 10, event="ami.disconnected")
        assert _wait_log(stack, since, 20, event="ami.contacts_synced"), "no resync after the drop"
        # the drop and the resync happened during the call, and did not disturb it
        assert not fut.done(), "the call ended before AMI was back: nothing was in progress"
        during = agents.status("a014")
        assert (during.state, during.call, during.reachable) == ("on_call", call_id, True)
        res, _ = fut.result()
    finally:
        ex.shutdown()
    assert res.ok, res.stderr
    rec = stack.record_for(caller)
    assert (rec["outcome"], rec["agent"], rec["hangup_by"]) == ("answered", "a014", "caller")
    assert rec["call_id"] == call_id
    first_sync = _log_since(stack, since, event="ami.contacts_synced")[0]
    assert first_sync["reachable"] >= 1
    assert len(stack.log_lines(event="ami.connected")) == connects + 1
    order = [ln["event"] for ln in _log_since(stack, since) if ln["event"].startswith("ami.")]
    assert order.index("ami.disconnected") < order.index("ami.connected") \
        < order.index("ami.contacts_synced")
    agents.wait_reachable("a014", True)
    res, caller = stack.call(f"{PHCC_EN},wait:3000,hangup", number="1091")
    assert res.ok and stack.record_for(caller)["agent"] == "a014"


def test_agent_unregistering_while_ami_is_down_is_seen_after_resync(
        stack: StackUnderTest, agents: Agents) -> None:
    """An event missed while AMI was away is recovered by the full resync.

    Proof that it was missed, not merely late: a second AMI session sees Asterisk send
    the ContactStatus while the app is disconnected, the app still holds the agent
    reachable after it, and the app never logs that contact event; only the resync
    after the reconnect makes the agent unreachable.
    """
    s = stack.stack
    phone = agents.phone("a014", "answer")
    agents.login("a014")
    since = s.app_log.stat().st_size
    _drop_app_ami(stack)
    assert _wait_log(stack, since, 10, event="ami.disconnected")
    listener = AmiListener(stack)
    try:
        phone.stop()
        phone.register(expires=0)  # the ContactStatus "removed" fires while the app is away
        ev = listener.wait_for(lambda m: m.get("Event") == "ContactStatus"
                               and m.get("AOR") == "agent-a014"
                               and m.get("ContactStatus", "").lower() == "removed", 5)
    finally:
        listener.close()
    assert not _log_since(stack, since, event="ami.connected"), \
        "the app was back on AMI before the unregister: the event was not missed"
    assert agents.status("a014").reachable is True, "the app learnt of a contact it missed"
    assert not _log_since(stack, since, event="ami.connected"), "reconnected while checking"
    assert _wait_log(stack, since, 20, event="ami.contacts_synced")
    agents.wait_reachable("a014", False, timeout=10)
    assert not _log_since(stack, since, event="ami.contact", agent="a014"), \
        f"the app received the contact event it should have missed ({ev})"


# ----------------------------------------------------------- graceful shutdown --

def _app_proc(sut: StackUnderTest) -> Any:
    proc = sut.stack.procs.get("app")
    assert proc is not None and proc.poll() is None, "the app is not a child of this session"
    return proc


def test_sigterm_drains_calls_refuses_new_ones_and_exits_zero(stack: StackUnderTest) -> None:
    s = stack.stack
    proc = _app_proc(stack)
    since = s.app_log.stat().st_size
    fut, c_old, ex = _in_background(stack, "wait:400,dtmf:2,wait:5000,hangup", timeout=30)
    deadline = time.monotonic() + 10
    while not active_calls(stack):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.5)
    try:
        os.kill(proc.pid, signal.SIGTERM)
        assert _wait_log(stack, since, 5, event="app.draining")
        # a new caller while draining: the dialplan's `unavailable` prompt, then a hang-up
        res_new, c_new = stack.call("expect_bye:15000", timeout=25)
        assert res_new.ok, res_new.stderr
        assert _log_since(stack, since, event="call.refused_draining")
        assert fut.result()[0].ok
        ex.shutdown()
        assert proc.wait(timeout=40) == 0
        assert _log_since(stack, since, event="app.stopped")
        assert not _log_since(stack, since, event="app.drain_timeout")
        assert stack.record_for(c_old)["outcome"] == "abandoned_in_menu"
        # refused before the journey: its record says so (written by the FastAGI
        # service, which serves until the drain ends)
        [refused] = stack.records_for(c_new)
        assert refused["outcome"] == "rejected" and "draining" in refused["failure"]
        # with the app gone, Stasis fails and the dialplan plays `unavailable`; no
        # process of ours is there to write a record (Asterisk's CDR still has it)
        res_down, c_down = stack.call("expect_bye:15000", timeout=25)
        assert res_down.ok, res_down.stderr
        assert stack.records_for(c_down) == []
    finally:
        s.start_app()
    res, caller = stack.call("wait:400,dtmf:2,wait:800,hangup")
    assert res.ok and stack.record_for(caller)["outcome"] == "abandoned_in_menu"


def _sigterm_during_a_long_call(stack: StackUnderTest) -> tuple[dict[str, Any], float,
                                                                  bool, int]:
    """With drain_timeout 2 s: SIGTERM while a caller sits in the menus."""
    s = stack.stack
    with app_config(stack, shutdown={"drain_timeout": 2}):
        proc = _app_proc(stack)
        since = s.app_log.stat().st_size
        fut, caller, ex = _in_background(stack, "wait:400,dtmf:2,expect_bye:30000", timeout=40)
        deadline = time.monotonic() + 10
        while not active_calls(stack):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.5)
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=20)
        took = time.monotonic() - t0
        assert _log_since(stack, since, event="app.drain_timeout")
        assert _log_since(stack, since, event="app.stopped")
        bye = fut.result()[0].ok
        ex.shutdown()
        return stack.record_for(caller), took, bye, code


def test_drain_timeout_cuts_long_calls_and_still_exits_zero(stack: StackUnderTest) -> None:
    rec, took, bye, code = _sigterm_during_a_long_call(stack)
    assert code == 0
    assert took < 10, f"exit took {took:.1f}s with drain_timeout 2"
    assert bye, "the cut call was not hung up (caller got no BYE)"
    assert rec["ended_at"] and len(stack.records_for(rec["caller"])) == 1


def test_call_cut_by_the_drain_timeout_says_so_in_its_record(stack: StackUnderTest) -> None:
    rec, _, _, _ = _sigterm_during_a_long_call(stack)
    assert rec["outcome"] == "failed" and rec["hangup_by"] == "system" and rec["failure"], rec


def test_redis_down_at_app_start_is_survivable(stack: StackUnderTest) -> None:
    s = stack.stack
    spool = s.dir / "spool" / "records.spool.jsonl"
    s.stop("redis")
    try:
        with app_config(stack, records_spool=str(spool)):  # health = ARI only: it comes up
            res, caller = stack.call("wait:400,dtmf:2,wait:800,hangup")
            assert res.ok, res.stderr
            s.start_redis()
            assert stack.record_for(caller, 30)["outcome"] == "abandoned_in_menu"
    finally:
        if s._pid("redis") is None:
            s.start_redis()


