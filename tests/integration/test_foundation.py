"""Issue 2: a SIPp call through the real Asterisk into the app, reconnects, doctor."""

from __future__ import annotations

import subprocess
import time

from tests.support.stackfix import StackUnderTest

HOTLINE = ".venv/bin/hotline"


def test_call_is_answered_digit_recognised_and_outcome_written(stack: StackUnderTest) -> None:
    res, caller = stack.call("wait:500,dtmf:2,wait:600,dtmf:0,expect_bye")
    assert res.ok, res.stderr
    rec = stack.record_for(caller)
    assert rec["answered_at"] is not None
    assert rec["digits"].startswith("2")
    assert rec["language"] == "en" and rec["language_source"] == "digit"
    assert rec["ended_at"] >= rec["arrived_at"]
    # one structured outcome line, carrying the call id, for this call
    lines = stack.log_lines(event="call.outcome", call_id=rec["call_id"])
    assert len(lines) == 1 and lines[0]["outcome"] == rec["outcome"]
    # every line of that call carries its id
    assert stack.log_lines(event="call.start", call_id=rec["call_id"])


def test_app_reconnects_after_asterisk_restart(stack: StackUnderTest) -> None:
    s = stack.stack
    connects_before = len(stack.log_lines(event="ari.connected"))
    failed_before = len(stack.log_lines(event="ari.connect_failed"))
    s.stop("asterisk")
    # the app notices and backs off (no tight loop while Asterisk is down)
    deadline = time.monotonic() + 10
    while len(stack.log_lines(event="ari.connect_failed")) == failed_before and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2)
    failures = len(stack.log_lines(event="ari.connect_failed")) - failed_before
    assert 1 <= failures < 10, f"{failures} reconnect attempts in ~2 s: not backing off"
    s.start_asterisk()
    ready_at = time.monotonic()
    while len(stack.log_lines(event="ari.connected")) <= connects_before:
        assert time.monotonic() - ready_at < 15, "app did not reconnect within 15 s"
        time.sleep(0.1)
    reconnect_seconds = time.monotonic() - ready_at
    print(f"reconnected {reconnect_seconds:.2f}s after Asterisk was ready")
    res, caller = stack.call("wait:500,dtmf:2,wait:600,dtmf:0,expect_bye")
    assert res.ok, res.stderr
    assert stack.record_for(caller)["language"] == "en"


def test_doctor_reports_each_part_and_fails_when_one_is_down(stack: StackUnderTest) -> None:
    cfg = str(stack.stack.app_config)
    ok = subprocess.run([HOTLINE, "--config", cfg, "doctor"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for part in ("ARI reachable", "Asterisk 22", "registered", "AMI login", "redis"):
        assert part in ok.stdout, ok.stdout
    stack.stack.stop("redis")
    try:
        bad = subprocess.run([HOTLINE, "--config", cfg, "doctor"], capture_output=True, text=True)
    finally:
        stack.stack.start_redis()
    assert bad.returncode == 1
    assert any(line.startswith("FAIL Redis") for line in bad.stdout.splitlines()), bad.stdout
