"""Issue 11, part 4: fault isolation under chaos.

200 SIPp calls at a steady rate go through the menus into the `other` queue
(one in ten hangs up in the main menu instead) and are answered by SIPp agent
phones, while a proxy between the app and Asterisk fails a seeded random 5% of
the app's ARI requests (half HTTP 500, half held until the app's request
timeout: of those, half never reach Asterisk and half are carried out with the
answer lost) and drops the events websocket once. No fault may reach beyond the
call it hit: the app keeps running, every call placed ends with exactly one
archived call, no agent is left offered or on a call, and Asterisk holds
nothing of ours afterwards.

    HOTLINE_PORT_OFFSET=600 .venv/bin/pytest -m integration tests/integration/test_chaos.py

HOTLINE_CHAOS_SEED and HOTLINE_CHAOS_FAULT_RATE override the seed (109) and the
rate (0.05); the proxy's counts and a summary go to .stack/<name>/chaos.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import tempfile
import time
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.support.ari_chaos import ChaosCounts, ChaosThread
from tests.support.sipp import (
    SippResult,
    agent_scenario,
    free_port_pair,
    free_udp_port,
    register_agent,
    run_caller,
    stop_process,
)
from tests.support.stackfix import Agents, StackUnderTest, app_config

SEED = int(os.environ.get("HOTLINE_CHAOS_SEED", "109"))
FAULT_RATE = float(os.environ.get("HOTLINE_CHAOS_FAULT_RATE", "0.05"))
CALLS = 200
RATE = 2.5                 # calls placed per second
MENU_HANGUPS = 20          # of the 200, these hang up in the main menu
REQUEST_TIMEOUT = 2.0      # the app's ari.request_timeout: an injected hold costs 2 s
ENTITY = "other"
TO_QUEUE = "wait:500,dtmf:2,wait:600,dtmf:0,expect_bye:30000"
IN_MENU = "wait:500,dtmf:2,wait:900,hangup"
MIN_EACH_FAULT = 5
# a call task that crashed the calls TaskGroup (and so every other call) leaves this
CANCELLED_FAILURE = "app shut down (drain timeout)"


# ----------------------------------------------------------------- the rig --

def app_through(sut: StackUnderTest, proxy_url: str) -> contextlib.AbstractContextManager[None]:
    """Restart the stack's app with its ARI URL on the proxy; restore it afterwards."""
    return app_config(sut, ari={"url": proxy_url, "request_timeout": REQUEST_TIMEOUT})


class PhoneGroup:
    """Many agents' phones on one SIPp UAS: each agent registers the same contact port."""

    def __init__(self, sut: StackUnderTest, agents: list[Any]) -> None:
        self.sut = sut
        self.agents = agents
        self.workdir = Path(tempfile.mkdtemp(prefix="sipp-chaos-agents-"))
        self.port = free_udp_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def _secret(self, agent_id: str) -> str:
        return (self.sut.stack.dir / "secrets/agents" / f"{agent_id}.secret").read_text().strip()

    def start(self) -> None:
        # registered from the UAS's own port first: Asterisk rewrites the contact to
        # the REGISTER's source address, so that is where the INVITEs go
        for a in self.agents:
            res = register_agent(self.sut.sip_port, a.endpoint, self._secret(a.id), self.port,
                                 workdir=self.workdir)
            assert res.ok, f"{a.endpoint} could not register: {res.stderr}"
        scen = agent_scenario("answer_hangup", self.workdir, ring_ms=300, talk_ms=2000)
        self.proc = subprocess.Popen(
            [shutil.which("sipp") or "sipp", "-sf", str(scen), "-i", "127.0.0.1",
             "-p", str(self.port), "-mi", "127.0.0.1", "-mp", str(free_port_pair()),
             "-m", "100000", "-l", "1000", "-nostdin", "-deadcall_wait", "0", "-aa",
             "-trace_err", "-error_file", str(self.workdir / "errors.log"),
             "-trace_stat", "-stf", str(self.workdir / "stats.csv"), "-fd", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.workdir)

    def stop(self) -> None:
        stop_process(self.proc)
        for a in self.agents:
            with contextlib.suppress(Exception):
                register_agent(self.sut.sip_port, a.endpoint, self._secret(a.id), self.port,
                               expires=0, workdir=self.workdir)


# ------------------------------------------------------------------ probes --

def health(sut: StackUnderTest) -> dict[str, Any] | None:
    try:
        url = f"http://127.0.0.1:{sut.stack.ports.app_http}/health"
        with urllib.request.urlopen(url, timeout=2) as r:
            return dict(json.loads(r.read()))
    except (OSError, ValueError):
        return None


def _ari_up(sut: StackUnderTest) -> dict[str, Any] | None:
    h = health(sut)
    return h if h is not None and h.get("ari") else None


def wait_for(what: str, probe: Any, timeout: float, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within {timeout}s")
        time.sleep(interval)


def archived(archive: Path, callers: list[str]) -> dict[str, list[dict[str, Any]]]:
    """caller -> their archived calls (call_id, outcome, failure, hangup_by)."""
    out: dict[str, list[dict[str, Any]]] = {}
    if not archive.exists():
        return out
    con = sqlite3.connect(f"file:{archive}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        marks = ",".join("?" * len(callers))
        for row in con.execute("SELECT caller, call_id, outcome, failure, hangup_by FROM calls "
                               f"WHERE caller IN ({marks})", callers):
            out.setdefault(row["caller"], []).append(dict(row))
    except sqlite3.OperationalError:
        return {}
    finally:
        con.close()
    return out


def archived_events(archive: Path, call_ids: list[str]) -> dict[str, list[str]] | None:
    """call_id -> its event kinds, or None while the archive has no `events` table
    (schema 1; the lead's events model adds it)."""
    con = sqlite3.connect(f"file:{archive}?mode=ro", uri=True)
    try:
        if con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='events'"
                       ).fetchone() is None:
            return None
        cols = [r[1] for r in con.execute("PRAGMA table_info(events)")]
        kind = next((c for c in ("type", "kind", "event", "name") if c in cols), None)
        out: dict[str, list[str]] = {c: [] for c in call_ids}
        marks = ",".join("?" * len(call_ids))
        sel = f"call_id, {kind}" if kind else "call_id, ''"
        for cid, k in con.execute(f"SELECT {sel} FROM events WHERE call_id IN ({marks})",
                                  call_ids):
            out[cid].append(str(k))
        return out
    finally:
        con.close()


def busy_agents(team: Agents, ids: list[str]) -> dict[str, str]:
    out = {}
    for a in ids:
        st = team.status(a)
        if st is not None and str(st.state) in ("offered", "on_call"):
            out[a] = str(st.state)
    return out


def fatal_log_lines(sut: StackUnderTest, since: int) -> list[str]:
    """What a crash that reached beyond one call leaves in the app log."""
    raw = sut.stack.app_log.read_bytes()[since:].decode("utf-8", "replace")
    bad = []
    for line in raw.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            # asyncio's own reports and a traceback that ended the process are not JSON
            if line.strip():
                bad.append(line)
            continue
        ev = str(obj.get("event", ""))
        if ev in ("app.stopped", "app.starting", "app.draining", "recovery.failed") \
                or "never retrieved" in ev or "Unhandled" in ev or "Exception in" in ev:
            bad.append(line)
    return bad


# -------------------------------------------------------------------- test --

def test_chaos_faults_stay_inside_the_call_they_hit(stack: StackUnderTest, agents: Agents
                                                    ) -> None:
    s = stack.stack
    rng = random.Random(SEED)
    team = [a for a in agents.cfg.agents if ENTITY in a.skills and "en" in a.languages]
    assert len(team) >= 12, f"the config has only {len(team)} English agents for {ENTITY}"
    run_tag = f"{int(time.time()) % 100_000:05d}"  # numbers no earlier run used
    callers = [f"974{run_tag}{i:03d}" for i in range(CALLS)]
    in_menu = set(rng.sample(range(CALLS), MENU_HANGUPS))
    chaos = ChaosThread(f"http://127.0.0.1:{s.ports.http}", seed=SEED, hold_max=30.0)
    proxy_url = chaos.start()
    phones = PhoneGroup(stack, team)
    results: dict[int, Future[SippResult]] = {}
    summary: dict[str, Any] = {"seed": SEED, "fault_rate": FAULT_RATE, "calls": CALLS,
                               "rate": RATE, "request_timeout": REQUEST_TIMEOUT}
    try:
        with app_through(stack, proxy_url):
            app_pid = s._pid("app")
            log_from = s.app_log.stat().st_size
            phones.start()
            agents.login(*[a.id for a in team])
            for a in team:
                agents.wait_reachable(a.id, True)
            chaos.set_fault_rate(FAULT_RATE)
            t0 = time.monotonic()
            with ThreadPoolExecutor(64) as ex:
                for i, caller in enumerate(callers):
                    time.sleep(max(0.0, t0 + i / RATE - time.monotonic()))
                    steps = IN_MENU if i in in_menu else TO_QUEUE
                    results[i] = ex.submit(run_caller, s.ports.sip, steps, caller, "109", 40)
                    if i == CALLS // 2:
                        assert chaos.drop_websocket() == 1, "no events websocket to drop"
                sipp = {i: f.result(timeout=90) for i, f in results.items()}
            placed_for = time.monotonic() - t0
            chaos.set_fault_rate(0.0)
            counts = chaos.counts()
            summary.update(_summary(counts, sipp, placed_for))

            # the app is still the same running process, and its ARI came back
            bad_lines = fatal_log_lines(stack, log_from)
            summary["fatal_log_lines"] = bad_lines[:20]
            if s._pid("app") != app_pid or health(stack) is None:
                summary["app_died"] = True
                _write_summary(s.dir, summary)
                raise AssertionError("the app process died during the chaos:\n"
                                     + "\n".join(bad_lines[-30:]))
            h = wait_for("app /health with ARI connected", lambda: _ari_up(stack), 30)
            summary["health"] = h

            # every call placed: exactly one archived call, and (schema 2) its events
            got = _wait_archived(s.archive, callers, timeout=20)
            missing = [c for c in callers if c not in got]
            doubled = {c: v for c, v in got.items() if len(v) > 1}
            rows = [r for v in got.values() for r in v]
            outcomes: dict[str, int] = {}
            for r in rows:
                outcomes[str(r["outcome"])] = outcomes.get(str(r["outcome"]), 0) + 1
            failures: dict[str, int] = {}
            for r in rows:
                if r["failure"]:
                    failures[str(r["failure"])] = failures.get(str(r["failure"]), 0) + 1
            summary.update(archived=len(rows), missing=len(missing), doubled=len(doubled),
                           missing_call_numbers=[callers.index(c) for c in missing],
                           drop_at_call_number=CALLS // 2, outcomes=outcomes,
                           failures=dict(sorted(failures.items(), key=lambda kv: -kv[1])),
                           recovery=[{k: v for k, v in x.items() if k not in ("level",)}
                                     for x in stack.log_lines(log_from, event="recovery.done")],
                           reconnect_failures=len(stack.log_lines(
                               log_from, event="ari.connect_failed")))
            events = archived_events(s.archive, [r["call_id"] for r in rows])
            summary["events_table"] = events is not None
            cancelled = [r for r in rows if r["failure"] == CANCELLED_FAILURE]
            left_busy = _wait_agents_settled(agents, [a.id for a in team])
            summary["agents_left_busy"] = left_busy
            left = stack.wait_no_leftovers(timeout=15)
            summary["left_in_asterisk"] = {k: len(v) for k, v in left.items()}
            _write_summary(s.dir, summary)

            # every broken promise at once, so one run shows all that chaos found
            problems = []
            # first, that the faults really happened (else nothing below means anything)
            if min(counts.failed_500, counts.held, counts.held_abandoned) < MIN_EACH_FAULT:
                problems.append(f"too few faults injected: {counts.failed_500} HTTP 500, "
                                f"{counts.held} held, {counts.held_abandoned} timed out by "
                                f"the app (want {MIN_EACH_FAULT} of each)")
            if counts.ws_dropped != 1 or counts.ws_opened < 2:
                problems.append(f"websocket dropped {counts.ws_dropped} times, opened "
                                f"{counts.ws_opened} times (want one drop and a reconnect)")
            if bad_lines:
                problems.append("crash lines in the app log:\n" + "\n".join(bad_lines[:20]))
            if cancelled:
                problems.append(f"{len(cancelled)} calls were cancelled by another's crash")
            if missing:
                problems.append(f"{len(missing)} calls never archived: {missing[:10]}")
            if doubled:
                problems.append(f"calls archived more than once: {list(doubled.items())[:5]}")
            if events is not None:
                no_events = [cid for cid, kinds in events.items() if not kinds]
                if no_events:
                    problems.append(f"{len(no_events)} archived calls have no events")
            # the calls really flowed: the menus, the queue and the agents worked
            answered = outcomes.get("answered", 0)
            if answered < (CALLS - MENU_HANGUPS) // 4:
                problems.append(f"only {answered} calls answered: {outcomes}")
            if outcomes.get("abandoned_in_menu", 0) < MENU_HANGUPS // 2:
                problems.append(f"too few menu hang-ups archived as such: {outcomes}")
            if left_busy:
                problems.append(f"agents left offered or on a call: {left_busy}")
            if left["channels"] or left["bridges"]:
                problems.append("left in Asterisk: "
                                f"{[c['id'] for c in left['channels']][:10]} channels, "
                                f"{[b['id'] for b in left['bridges']][:10]} bridges "
                                f"({len(left['channels'])}, {len(left['bridges'])})")
            assert not problems, "\n".join(problems)
    finally:
        phones.stop()
        chaos.stop()
        _hang_up_leftovers(stack)  # whatever this test failed on, the next test starts clean


def _summary(counts: ChaosCounts, sipp: dict[int, SippResult], placed_for: float
             ) -> dict[str, Any]:
    return {
        "placed_seconds": round(placed_for, 1),
        "sipp_ok": sum(1 for r in sipp.values() if r.ok),
        "proxy": {"forwarded": counts.forwarded, "failed_500": counts.failed_500,
                  "held": counts.held, "held_after": counts.held_after,
                  "held_abandoned": counts.held_abandoned,
                  "upstream_errors": counts.upstream_errors, "ws_opened": counts.ws_opened,
                  "ws_dropped": counts.ws_dropped,
                  "faulted_ops": dict(counts.faulted_ops.most_common()),
                  "connect_trace": counts.trace},
    }


def _wait_archived(archive: Path, callers: list[str], timeout: float
                   ) -> dict[str, list[dict[str, Any]]]:
    deadline = time.monotonic() + timeout
    while True:
        got = archived(archive, callers)
        if len(got) == len(callers) or time.monotonic() > deadline:
            time.sleep(1.0)  # a second record for a call would land right after the first
            return archived(archive, callers)
        time.sleep(0.5)


def _wait_agents_settled(team: Agents, ids: list[str], timeout: float = 15) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        left = busy_agents(team, ids)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.3)


def _write_summary(stack_dir: Path, summary: dict[str, Any]) -> None:
    (stack_dir / "chaos.json").write_text(json.dumps(summary, indent=2, default=str))
    print("\n[chaos] " + json.dumps(summary, default=str))


def _hang_up_leftovers(sut: StackUnderTest) -> None:
    left = sut.stack.leftovers()
    for ch in left["channels"]:
        sut.stack.ari("DELETE", f"channels/{ch['id']}")
    for br in left["bridges"]:
        sut.stack.ari("DELETE", f"bridges/{br['id']}")
