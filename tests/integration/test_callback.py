"""Queued callback (issue 13 part 1): SIPp callers book callbacks, SIPp agent phones
take them, and a SIPp citizen phone on the carrier side is called back.

The callback is switched on for this module only (the shipped config has it
off), with short timers: the offer after 2 s of waiting, 5 s of ringing, a
retry 4 s after a failed attempt.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.sipp import AGENT_MODES, _modes, dtmf_steps, free_port_pair, stop_process
from tests.support.stackfix import Agents, StackUnderTest, app_config, resume

SIPP_DIR = Path(__file__).resolve().parent.parent / "sipp"
PHCC_EN = "wait:400,dtmf:2"  # 1091: English, then the Primary Health Care queue
CALLBACK = {"enabled": True, "offer_after": 2, "offer_when_expected_over": None,
            "digit_timeout": 4, "ring_timeout": 5, "retry_interval": 8, "max_attempts": 2,
            "hours_start": "00:00", "hours_end": "00:00"}


class CitizenPhone:
    """A phone on the carrier side: the number the hotline calls back rings here."""

    def __init__(self, sut: StackUnderTest, mode: str, talk_ms: int = 14000,
                 calls: int = 1) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="sipp-citizen-"))
        blocks = _modes()
        body = "\n".join(blocks[b] for b in AGENT_MODES[mode])
        body = body.replace("@RING_MS@", "300").replace("@TALK_MS@", str(talk_ms))
        scenario = self.workdir / "citizen.xml"
        scenario.write_text((SIPP_DIR / "citizen.xml").read_text().replace("@MODE@", body))
        self.proc = subprocess.Popen(
            [shutil.which("sipp") or "sipp", "-sf", str(scenario), "-i", "127.0.0.1",
             "-p", str(sut.sip_port + 2000), "-mi", "127.0.0.1", "-mp", str(free_port_pair()),
             "-m", str(calls), "-nostdin", "-deadcall_wait", "0", "-trace_err", "-aa",
             "-trace_msg", "-message_file", str(self.workdir / "messages.log"),
             "-error_file", str(self.workdir / "errors.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.workdir)

    def messages(self) -> str:
        p = self.workdir / "messages.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def wait_done(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the citizen's phone still waits after {timeout}s; it saw:\n"
                                 + self.messages()[-2000:]) from None

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture(scope="module")
def callbacks_on(stack: StackUnderTest) -> Iterator[None]:
    with app_config(stack, callback=CALLBACK):
        yield


def national() -> str:
    return f"5{random.randint(1_000_000, 9_999_999)}"


def attempts_for(sut: StackUnderTest, ticket: str, n: int,
                 timeout: float = 60) -> list[dict[str, Any]]:
    """The records of a ticket's attempts, once there are n with a final result."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in sut.records() if r.get("dialled") == "callback"
                 and (r.get("callback") or {}).get("ticket") == ticket and r.get("ended_at")]
        if len(found) >= n:
            return sorted(found, key=lambda r: r["callback"]["attempt"])
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(found)} of {n} attempt records for {ticket}: {found}")
        time.sleep(0.2)


def book(sut: StackUnderTest, steps: str, caller: str) -> dict[str, Any]:
    res, _ = sut.call(f"{PHCC_EN},{steps}", caller=caller, number="1091", timeout=60)
    assert res.ok, res.stderr
    rec = sut.record_for(caller)
    assert rec["outcome"] == "callback_requested", rec
    assert rec["callback"]["result"] == "requested"
    assert rec["queue"][-1]["result"] == "callback"
    assert "en:hotline/callback-booked" in rec["prompts"]
    return rec


def test_callback_at_own_number_keeps_the_place_and_bridges_agent_and_citizen(
        stack: StackUnderTest, agents: Agents, callbacks_on: None) -> None:
    agents.phone("a014", "answer")
    agents.login("a014")
    agents.pause("a014")  # busy elsewhere: the caller waits, hears the offer, presses 1
    number = national()
    citizen = CitizenPhone(stack, "answer_hangup")
    try:
        rec = book(stack, "wait:4500,dtmf:1,expect_bye:40000", caller=f"974{number}")
        cb = rec["callback"]
        assert cb["number"] == "******" + number[-2:] and cb["waited"] >= 2
        resume(agents, "a014")
        (att,) = attempts_for(stack, cb["ticket"], 1)
        assert citizen.wait_done() == 0
    finally:
        citizen.stop()
    assert att["callback"]["result"] == "answered" and att["callback"]["attempt"] == 1
    assert att["agent"] == "a014" and att["outcome"] == "answered"
    assert att["hangup_by"] == "caller" and att["talk_seconds"] > 1  # bridged, then talked
    assert att["callback"]["seconds_to_callback"] > 0
    assert "en:hotline/callback-greeting" in att["prompts"]
    assert [o["result"] for o in att["offers"]] == ["answered"]
    # the carrier was asked for exactly the caller's national number
    assert f"INVITE sip:{number}@127.0.0.1" in citizen.messages()


def test_another_number_confirmed_then_a_retry_after_no_answer(
        stack: StackUnderTest, agents: Agents, callbacks_on: None) -> None:
    agents.phone("a014", "answer")
    agents.login("a014")
    agents.pause("a014")
    number = national()
    first = CitizenPhone(stack, "no_answer")
    second: CitizenPhone | None = None
    try:
        typed = dtmf_steps(number + "#")
        rec = book(stack, f"wait:4500,dtmf:2,wait:1500,{typed},wait:1500,dtmf:1,"
                          "expect_bye:40000", caller=f"974{national()}")
        assert rec["callback"]["number"].endswith(number[-2:])
        # the number was read back digit by digit before the caller confirmed it
        spoken = [p for p in rec["prompts"] if p.startswith("en:hotline/num/")]
        assert spoken[-8:] == [f"en:hotline/num/{d}" for d in number]
        resume(agents, "a014")
        assert first.wait_done() == 0  # rang, was cancelled: no answer
        second = CitizenPhone(stack, "answer_hangup", talk_ms=14000)
        one, two = attempts_for(stack, rec["callback"]["ticket"], 2)
        assert second.wait_done() == 0
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert one["callback"]["result"] == "retry" and "no_answer" in one["failure"]
    assert two["callback"]["result"] == "answered" and two["callback"]["attempt"] == 2
    assert f"INVITE sip:{number}@127.0.0.1" in first.messages()
    assert f"INVITE sip:{number}@127.0.0.1" in second.messages()


def test_a_bad_number_is_refused_with_a_clear_prompt(
        stack: StackUnderTest, agents: Agents, callbacks_on: None) -> None:
    agents.phone("a014", "answer")
    agents.login("a014")
    agents.pause("a014")
    typed = dtmf_steps("0044207946#")
    caller = f"974{national()}"
    res, _ = stack.call(f"{PHCC_EN},wait:4500,dtmf:2,wait:1500,{typed},wait:12000,hangup",
                        caller=caller, number="1091", timeout=60)
    assert res.ok, res.stderr
    rec = stack.record_for(caller)
    assert "en:hotline/callback-bad-number" in rec["prompts"]
    assert rec["outcome"] == "abandoned_in_queue" and rec.get("callback") is None
    assert stack.log_lines(event="callback.bad_number", call_id=rec["call_id"])


def test_a_callback_survives_an_app_restart_and_a_second_request_is_told_it_is_pending(
        stack: StackUnderTest, agents: Agents, callbacks_on: None) -> None:
    agents.phone("a014", "answer")
    agents.login("a014")
    agents.pause("a014")
    number = national()
    rec = book(stack, "wait:4500,dtmf:1,expect_bye:40000", caller=f"974{number}")
    again = f"974{number}"
    res, _ = stack.call(f"{PHCC_EN},wait:4500,dtmf:1,wait:9000,hangup", caller=again,
                        number="1091", timeout=60)
    assert res.ok, res.stderr
    deadline = time.monotonic() + 15
    while len(stack.records_for(again)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    second = stack.records_for(again)[-1]
    assert second["call_id"] != rec["call_id"]
    assert "en:hotline/callback-pending" in second["prompts"]
    assert second["outcome"] == "abandoned_in_queue"
    stack.stack.start_app()  # a restart between the request and the callback
    citizen = CitizenPhone(stack, "answer_hangup", talk_ms=14000)
    try:
        resume(agents, "a014")
        (att,) = attempts_for(stack, rec["callback"]["ticket"], 1)
        assert citizen.wait_done() == 0
    finally:
        citizen.stop()
    assert att["callback"]["result"] == "answered" and att["agent"] == "a014"


def test_the_callback_context_dials_no_number_the_app_did_not_name(
        stack: StackUnderTest) -> None:
    """Toll fraud: callback-out dials only the number named by the app's
    HOTLINE_CALLBACK_NUMBER on the channel. Without it, or with another number
    in it, nothing reaches the carrier; with it (the control), the call does."""
    wanted, other = national(), national()
    citizen = CitizenPhone(stack, "refuse", calls=3)

    def originate(number: str, variables: dict[str, str]) -> None:
        status, _ = stack.stack.ari(
            "POST", f"channels?endpoint=Local/{number}@callback-out/n"
                    "&context=from-carrier-refuse&extension=1&priority=1&timeout=5",
            {"variables": variables})
        assert status == 200, status

    try:
        originate(wanted, {})
        originate(wanted, {"HOTLINE_CALLBACK_NUMBER": other})
        # a dial would reach the phone well within this window (the callbacks
        # above see their INVITE in under a second)
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            assert "INVITE" not in citizen.messages(), citizen.messages()[:500]
            time.sleep(0.2)
        originate(wanted, {"HOTLINE_CALLBACK_NUMBER": wanted})
        deadline = time.monotonic() + 10
        while f"INVITE sip:{wanted}@" not in citizen.messages():
            assert time.monotonic() < deadline, "the named number was never dialled"
            time.sleep(0.2)
        assert citizen.messages().count("INVITE sip:") == 1
    finally:
        citizen.stop()
