"""Runtime announcements on the real stack: set with the CLI or the API, heard by
the next SIPp caller (the app's playback log with the media URI, the playback's
length against the sound's, the record's menu time), gone once cleared; an
entity's announcement plays only to that entity's callers."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from typing import Any

import pytest

from scripts.stack import ROOT
from tests.support.stackfix import StackUnderTest

TEXT = ("Attention please. Because of a system upgrade, some online services are "
        "unavailable until tomorrow morning.")


@pytest.fixture(scope="module")
def announcing(stack: StackUnderTest) -> StackUnderTest:
    """The rig's app config already writes the sound files inside the chroot, where
    its Asterisk reads them (scripts/stack.py): no restart is needed."""
    s = stack.stack
    assert f"{s.inst_rel}/announcements" in s.app_config.read_text()
    return stack


def hotline(sut: StackUnderTest, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / ".venv/bin/hotline"), "--config",
                           str(sut.stack.app_config), "announce", *args],
                          capture_output=True, text=True, timeout=60)


def api(sut: StackUnderTest, method: str, path: str, body: dict[str, Any] | None = None
        ) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        f"{sut.stack.app_url}/api/v1/announcements{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {sut.stack.secret('api_token')}",
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_loaded(sut: StackUnderTest, version: int, timeout: float = 10.0) -> None:
    """The app instance has loaded this version (and written its files)."""
    deadline = time.monotonic() + timeout
    while not sut.log_lines(event="announcements.loaded", version=version):
        assert time.monotonic() < deadline, f"the app never loaded version {version}"
        time.sleep(0.05)


def played(sut: StackUnderTest, call_id: str) -> list[dict[str, Any]]:
    return sut.log_lines(event="announcement.played", call_id=call_id)


def test_global_announcement_heard_by_the_next_caller_then_gone(
        announcing: StackUnderTest) -> None:
    sut = announcing
    out = hotline(sut, "set", "global", "--text", f"en={TEXT}", "--by", "duty-manager")
    assert out.returncode == 0, out.stderr
    version = int(out.stdout.split("version ")[1].split(")")[0])
    assert "callers in these languages hear nothing" in out.stdout  # only English given
    wait_loaded(sut, version)
    try:
        # 1092 is the English number: the language is known at once, so the
        # announcement plays before the menu; the 0 typed meanwhile waits for it
        res, caller = sut.call("wait:500,dtmf:0,expect_bye", number="1092")
        assert res.ok, res.stderr
        rec = sut.record_for(caller)
        heard = played(sut, rec["call_id"])
        assert len(heard) == 1 and heard[0]["scope"] == "global", heard
        media = heard[0]["media"]
        assert media.startswith(f"sound:{sut.stack.inst_rel}/announcements/ann-")
        # Asterisk played the whole file: a missing or unreadable one ends at once
        assert heard[0]["seconds"] > 3 and heard[0]["played_seconds"] >= heard[0]["seconds"] * 0.9
        assert f"en:{media.removeprefix('sound:')}" in rec["prompts"]
        assert rec["menu_seconds"] >= heard[0]["seconds"]
        assert rec["entity"] == "other"  # the key typed during it still chose
    finally:
        out = hotline(sut, "clear", "global", "--by", "duty-manager")
        assert out.returncode == 0, out.stderr
    wait_loaded(sut, version + 1)
    res, caller = sut.call("wait:500,dtmf:0,expect_bye", number="1092")
    assert res.ok, res.stderr
    rec = sut.record_for(caller)
    assert played(sut, rec["call_id"]) == []
    assert not any("/announcements/" in p for p in rec["prompts"])
    assert rec["menu_seconds"] < heard[0]["seconds"]
    audit = hotline(sut, "list", "--audit", "--json")
    rows = json.loads(audit.stdout)
    assert [(r["action"], r["scope"], r["by"]) for r in rows[:2]] == [
        ("clear", "global", "duty-manager"), ("set", "global", "duty-manager")]


def test_entity_announcement_plays_only_for_that_entity(announcing: StackUnderTest) -> None:
    sut = announcing
    status, body = api(sut, "PUT", "/phcc", {"by": "phcc-supervisor", "texts": {"en": TEXT}})
    assert status == 200, body
    wait_loaded(sut, body["version"])
    try:
        # 1091 is PHCC's number: English from the language menu, then PHCC's queue
        # (nobody logged in: the announcement, then the fallback message)
        res, phcc_caller = sut.call("wait:500,dtmf:2,expect_bye", number="1091")
        assert res.ok, res.stderr
        # the general number, other departments: not PHCC's caller
        res, other_caller = sut.call("wait:500,dtmf:2,wait:600,dtmf:0,expect_bye")
        assert res.ok, res.stderr
        phcc = sut.record_for(phcc_caller)
        heard = played(sut, phcc["call_id"])
        assert phcc["entity"] == "phcc" and [h["scope"] for h in heard] == ["phcc"], heard
        assert heard[0]["played_seconds"] >= heard[0]["seconds"] * 0.9
        assert any("/announcements/ann-" in p for p in phcc["prompts"])
        other = sut.record_for(other_caller)
        assert other["entity"] == "other" and played(sut, other["call_id"]) == []
        assert not any("/announcements/" in p for p in other["prompts"])
    finally:
        status, body = api(sut, "DELETE", "/phcc?by=phcc-supervisor")
        assert status == 200, body
    status, body = api(sut, "PUT", "/nosuch", {"by": "x", "texts": {"en": TEXT}})
    assert status == 404 and "unknown entity 'nosuch'" in body["error"]
