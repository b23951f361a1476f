"""Supervision, priority 2: a supervisor listens, whispers and barges into a live
call from their phone (SIPp), through the supervisors' HTTP API; the snoop's
directions are read back from Asterisk (ARI GET /channels) and nothing is left
behind when the caller hangs up."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.support.recovery import until
from tests.support.stackfix import Agents, StackUnderTest

PHCC_EN = "wait:400,dtmf:2"


def api(stack: StackUnderTest, method: str, path: str,
        body: dict[str, Any] | None = None) -> tuple[int, Any]:
    s = stack.stack
    token = (s.dir / "secrets" / "api_token").read_text().strip()
    req = urllib.request.Request(
        f"{s.app_url}/api/v1/supervision/{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def snoops(stack: StackUnderTest, call_id: str) -> list[dict[str, Any]]:
    """The snoop channels Asterisk holds for this call, with their Stasis args."""
    _, chans = stack.stack.ari("GET", "channels")
    assert isinstance(chans, list)
    return [c for c in chans if c["id"].startswith(f"{call_id}-n")]


def in_app(chans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Those still in the app (a channel that left Stasis has no app data)."""
    return [c for c in chans if c["dialplan"]["app_data"]]


def bridge_of(stack: StackUnderTest, channel: str) -> list[str]:
    _, bridges = stack.stack.ari("GET", "bridges")
    assert isinstance(bridges, list)
    return next((b["channels"] for b in bridges if channel in b["channels"]), [])


def test_listen_whisper_barge_then_everything_goes_with_the_call(
        stack: StackUnderTest, agents: Agents) -> None:
    agents.phone("a014", "answer")  # the agent: waits for the hotline's BYE
    sup_phone = agents.phone("a021", "answer")  # the supervisor's phone, not logged in
    agents.login("a014")
    with ThreadPoolExecutor(1) as pool:
        caller_done = pool.submit(stack.call, f"{PHCC_EN},wait:16000,hangup", None, "1091")
        live = until("the call on the console", lambda: [
            c for c in api(stack, "GET", "calls")[1]["calls"] if c["agent"] == "a014"])
        call_id = live[0]["call_id"]

        # an agent is no supervisor
        status, body = api(stack, "POST", f"calls/{call_id}/listen", {"supervisor": "a014"})
        assert status == 403 and "not a supervisor" in body["error"], body

        status, body = api(stack, "POST", f"calls/{call_id}/listen", {"supervisor": "a021"})
        assert status == 200 and body["mode"] == "listen", body
        [snoop] = snoops(stack, call_id)
        assert snoop["dialplan"]["app_data"].endswith(
            f"snoop,{call_id},listen,spy=both,whisper=none"), snoop
        sup_leg = next(c for c in bridge_of(stack, snoop["id"]) if c != snoop["id"])
        assert sup_leg.startswith(f"{call_id}-s")

        status, body = api(stack, "POST", f"calls/{call_id}/whisper", {"supervisor": "a021"})
        assert status == 200 and body["mode"] == "whisper", body
        # the listening snoop is replaced by one that whispers to the agent (the old
        # one leaves the app at once; Asterisk drops it with its next audio frame)
        [snoop] = until("one whisper snoop", lambda: [
            s for s in in_app(snoops(stack, call_id))
            if s["dialplan"]["app_data"].endswith(
                f"snoop,{call_id},whisper,spy=both,whisper=out")]
            if len(in_app(snoops(stack, call_id))) == 1 else [])
        assert sorted(bridge_of(stack, snoop["id"])) == sorted([snoop["id"], sup_leg])

        status, body = api(stack, "POST", f"calls/{call_id}/barge", {"supervisor": "a021"})
        assert status == 200 and body["mode"] == "barge", body
        until("no snoop once barged", lambda: not in_app(snoops(stack, call_id)))
        assert len(bridge_of(stack, sup_leg)) == 3  # caller, agent and supervisor

        res, caller = caller_done.result(timeout=60)
    assert res.ok, res.stderr
    rec = stack.record_for(caller)
    actions = [(a["supervisor"], a["action"], a["agent"]) for a in rec["supervision"]]
    assert actions == [("a021", "listen", "a014"), ("a021", "whisper", "a014"),
                       ("a021", "barge", "a014")], rec["supervision"]
    assert all(a["at"] for a in rec["supervision"])
    # the call's end took the supervisor's leg, snoops and bridge with it
    left = stack.wait_no_leftovers()
    assert not left["channels"] and not left["bridges"], left
    until("the supervisor's phone hung up", lambda: "BYE sip:" in sup_phone.messages())
    deadline = time.monotonic() + 5
    while api(stack, "GET", "calls")[1]["calls"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert api(stack, "GET", "calls")[1]["calls"] == []
