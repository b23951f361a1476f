#!/usr/bin/env python3
"""Capture ARI transcripts from the real rig for the unit tests' fake ARI.

Starts a test stack (scripts/stack.py, the integration tests' config) with
HOTLINE_ARI_TRANSCRIPT set, places each scenario with the SIPp kit, and writes
the ARI traffic of that scenario, normalised, to tests/unit/transcripts/NAME.json
(see tests/support/transcripts.py for the format). Run as root (the chroot):

    .venv/bin/python scripts/capture_transcripts.py --offset 1000 [NAME ...]

Scenarios run one at a time on an idle stack, so a slice of the recorder's
file between two scenarios holds exactly one scenario's traffic.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ari_app.ari.transcript import ENV  # noqa: E402
from scripts.stack import Stack, ensure_rootfs  # noqa: E402
from tests.support import transcripts as tf  # noqa: E402
from tests.support.stackfix import (  # noqa: E402
    TEST_OVERRIDES,
    Agents,
    StackUnderTest,
    resume,
    write_test_config,
)

OUT = ROOT / "tests/unit/transcripts"
PHCC_EN = "wait:400,dtmf:2"  # on 1091: English, then straight to the phcc queue


@dataclass
class Scenario:
    name: str
    description: str
    steps: str
    number: str = "109"
    states: list[str] = field(default_factory=list)
    # agent id -> (phone mode, phone options); all are logged in before the call
    phones: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    paused: list[str] = field(default_factory=list)
    prelude: str | None = None  # a first call by the same caller, not recorded
    # run beside the call (a thread); given where to mark what it did in the transcript
    during: Callable[[Agents, Path], None] | None = None
    timeout: float = 120.0


def _resume_later(agent: str, after: float) -> Callable[[Agents, Path], None]:
    """The agent resumes `after` seconds into the call. An action line in the app's
    transcript marks the moment among the ARI traffic, so a replay does it there."""
    def act(team: Agents, raw: Path) -> None:
        time.sleep(after)
        resume(team, agent)
        tf.mark_action(raw, "resume", agent=agent)
    return act


SCENARIOS = [
    Scenario("language_digit", "English by digit 2 in the language menu, then 0 (other "
             "departments) in the entity menu; nobody is logged in: the no-agent fallback",
             "wait:400,dtmf:2,wait:700,dtmf:0,expect_bye",
             states=["answer", "route", "language_menu", "entity_menu", "chosen", "queued",
                     "finish"]),
    Scenario("invalid_then_valid", "an invalid key (0) in the language menu, the 'invalid' "
             "prompt, then 2 (English) and 0", "wait:400,dtmf:0,wait:2500,dtmf:2,wait:700,"
             "dtmf:0,expect_bye", states=["language_menu", "entity_menu"]),
    Scenario("silence_defaults", "no key at all: the language menu times out twice to the "
             "default language, the entity menu twice to other departments",
             "expect_bye:180000", states=["language_menu", "entity_menu"], timeout=200),
    Scenario("back_with_star", "English, health (1), then * back to the top menu, then 0",
             "wait:400,dtmf:2,wait:600,dtmf:1,wait:600,dtmf:*,wait:600,dtmf:0,expect_bye",
             states=["entity_menu"]),
    Scenario("returning_caller", "a caller who chose Tamil (8) before: the AGI look-up "
             "hints it, the app says welcome back in Tamil, the caller presses 0",
             "wait:2500,dtmf:0,expect_bye", prelude="wait:400,dtmf:8,wait:700,dtmf:0,"
             "expect_bye", states=["route", "welcome_back", "entity_menu"]),
    # the announcement plays from about 2.8 s to 5.6 s after the key press: the agent
    # resumes well after it (music) in one scenario, in the middle of it in the other
    Scenario("queue_announcement", "1091 (phcc); the only agent is paused, so the caller "
             "waits with music and hears the position announcement; the agent resumes "
             "after it, answers, the caller hangs up", f"{PHCC_EN},wait:10000,hangup",
             number="1091", phones={"a014": ("answer", {})}, paused=["a014"],
             during=_resume_later("a014", 7.0), states=["queued", "ringing", "talking"]),
    Scenario("offer_during_announcement", "1091 (phcc); the only agent is paused; it "
             "resumes while the position announcement plays, which stops at once for the "
             "offer; the agent answers, the caller hangs up", f"{PHCC_EN},wait:8000,hangup",
             number="1091", phones={"a014": ("answer", {})}, paused=["a014"],
             during=_resume_later("a014", 4.0), states=["queued", "ringing", "talking"]),
    Scenario("ring_no_answer", "1091; a100 (longest idle) does not answer within the ring "
             "timeout, then a014 answers; the caller hangs up",
             f"{PHCC_EN},wait:10000,hangup", number="1091",
             phones={"a100": ("no_answer", {}), "a014": ("answer", {})},
             states=["queued", "ringing", "talking"]),
    Scenario("agent_hangs_up", "1091; a014 answers and hangs up after 1.5 s",
             f"{PHCC_EN},expect_bye:30000", number="1091",
             phones={"a014": ("answer_hangup", {"talk_ms": 1500})},
             states=["ringing", "talking"]),
    Scenario("caller_hangs_up", "1091; a014 answers; the caller hangs up after 3 s of talk",
             f"{PHCC_EN},wait:4000,hangup", number="1091",
             phones={"a014": ("answer", {})}, states=["ringing", "talking"]),
    Scenario("blind_transfer", "1091; a100 answers and blind-transfers (REFER to 812: "
             "health > Ministry of Public Health); a039 (moph) answers; the caller hangs up",
             f"{PHCC_EN},wait:9000,hangup", number="1091",
             phones={"a100": ("transfer", {"talk_ms": 1500, "transfer_to": "812"}),
                     "a039": ("answer", {})},
             states=["talking", "queued", "ringing"]),
    # consult transfer from the agent's keypad: *2, the target, # (then *2 completes,
    # *1 returns to the caller); 832 is the Ministry of Finance's queue (a002 serves it)
    Scenario("consult_complete", "1091; a014 answers, consults the Ministry of Finance "
             "(*2 832 #), a002 answers, a014 completes (*2): the caller is bridged with a002, "
             "who hangs up", f"{PHCC_EN},expect_bye:60000", number="1091",
             phones={"a014": ("keys_then_wait_bye", {"keys": "p1500,*,2,8,3,2,#,p3000,*,2"}),
                     "a002": ("answer_hangup", {"talk_ms": 7000})},
             states=["talking", "consulting"]),
    Scenario("consult_return", "1091; a014 answers, consults the Ministry of Finance, "
             "a002 answers, a014 returns to the caller (*1) and hangs up",
             f"{PHCC_EN},expect_bye:60000", number="1091",
             phones={"a014": ("keys_then_hangup", {"keys": "p1500,*,2,8,3,2,#,p2500,*,1",
                                                   "talk_ms": 2500}),
                     "a002": ("answer", {})},
             states=["talking", "consulting"]),
    Scenario("hangup_in_queue", "1091; the only agent is paused; the caller hangs up after "
             "1.2 s in the queue, before the first announcement",
             f"{PHCC_EN},wait:1200,hangup", number="1091",
             phones={"a014": ("answer", {})}, paused=["a014"], states=["queued"]),
]


class Capture:
    def __init__(self, stack: Stack, raw_dir: Path, version: str) -> None:
        self.stack = stack
        self.sut = StackUnderTest(stack)
        self.raw_dir = raw_dir
        self.version = version
        Agents(self.sut).close()  # every agent logged out, whatever an earlier run left

    @property
    def raw(self) -> Path:
        files = sorted(self.raw_dir.glob("ari-*.jsonl"), key=lambda p: p.stat().st_mtime)
        if not files:
            raise RuntimeError(f"the app wrote no transcript in {self.raw_dir}: is {ENV} "
                               "passed to it?")
        return files[-1]

    def _quiet(self, seconds: float = 1.0, timeout: float = 30.0) -> None:
        """Wait until the recorder has written nothing for `seconds`."""
        deadline = time.monotonic() + timeout
        size, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now = self.raw.stat().st_size
            if now != size:
                size, since = now, time.monotonic()
            elif time.monotonic() - since >= seconds:
                return
            time.sleep(0.1)
        raise RuntimeError(f"ARI traffic did not stop within {timeout}s")

    def _idle(self) -> None:
        left = self.sut.wait_no_leftovers(15)
        if left["channels"] or left["bridges"]:
            raise RuntimeError(f"Asterisk still holds channels/bridges: {left}")
        self._quiet()

    def run(self, sc: Scenario) -> Path:
        self._idle()
        team = Agents(self.sut)
        caller = self.sut.new_caller()
        try:
            for agent, (mode, opts) in sc.phones.items():
                team.phone(agent, mode, **opts)
                team.login(agent)
                time.sleep(0.3)  # distinct idle times: the longest idle agent is first
            for agent in sc.paused:
                team.pause(agent)
            if sc.prelude:
                res, _ = self.sut.call(sc.prelude, caller=caller, number=sc.number)
                if not res.ok:
                    raise RuntimeError(f"{sc.name}: the prelude call failed: {res.stderr}")
                self.sut.record_for(caller)
                self._idle()
            start = tf.last_seq(self.raw) + 1
            side = (threading.Thread(target=sc.during, args=(team, self.raw)) if sc.during
                    else None)
            if side is not None:
                side.start()
            res, _ = self.sut.call(sc.steps, caller=caller, number=sc.number,
                                   timeout=sc.timeout)
            if side is not None:
                side.join()
            if not res.ok:
                raise RuntimeError(f"{sc.name}: the SIPp call failed: {res.stderr}")
            records = self._records(caller, 2 if sc.prelude else 1)
            self._idle()
            raw = tf.read_raw(self.raw, start)
        finally:
            team.close()
        return self._write(sc, caller, raw, records[-1])

    def _records(self, caller: str, n: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.sut.records_for(caller)
            if len(found) >= n:
                return found
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(found)} of {n} call records for {caller}")
            time.sleep(0.1)

    def _record_events(self, call_id: str) -> list[dict[str, Any]]:
        """The record events the app published for the call (records as events), in
        order: kind and what changed; none from an app that publishes whole records."""
        import json

        import redis

        r = redis.Redis(port=self.stack.ports.redis)
        try:
            out = []
            for _id, fields in r.xrange("{hotline}:records"):
                if b"event" in fields:
                    ev = json.loads(fields[b"event"])
                    if ev.get("call_id") == call_id:
                        out.append({k: ev.get(k) for k in ("seq", "kind", "data")})
            return sorted(out, key=lambda e: int(e.get("seq") or 0))
        finally:
            r.close()

    def _write(self, sc: Scenario, caller: str, raw: list[dict[str, Any]],
               record: dict[str, Any]) -> Path:
        ph = tf.Placeholders(literal={caller: "97400000001"})
        steps = tf.normalise(raw, ph)
        transcript = {
            "scenario": sc.name,
            "description": sc.description,
            "states": sc.states,
            "captured": {
                "date": time.strftime("%Y-%m-%d", time.gmtime()),
                "asterisk": self.version,
                "how": "scripts/capture_transcripts.py: a SIPp caller into the rig "
                       "(scripts/stack.py) with HOTLINE_ARI_TRANSCRIPT set",
                "number": sc.number,
                "caller": "97400000001",
                "sipp_steps": sc.steps,
                "prelude_steps": sc.prelude,
                "agents": {a: {"mode": m, **o} for a, (m, o) in sc.phones.items()},
                "paused": sc.paused,
                "config_overrides": TEST_OVERRIDES,
            },
            "record": ph.tree(record),
            "events": ph.tree(self._record_events(str(record.get("call_id")))),
            "steps": steps,
        }
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / f"{sc.name}.json"
        change = _change(path, transcript)
        tf.dump(transcript, path)
        ops = sum(1 for s in steps if "op" in s)
        print(f"[capture] {sc.name}: {ops} operations, {len(steps) - ops} events -> "
              f"{path.relative_to(ROOT)}{change}", flush=True)
        return path


def _change(path: Path, new: dict[str, Any]) -> str:
    """What differs from the transcript committed before: the operations the app
    sent, and the record events it published (timings and ids aside)."""
    if not path.exists():
        return " (new)"
    old = tf.load(path)

    def ops(d: dict[str, Any]) -> list[Any]:
        return [(s["op"], s["args"]) for s in d["steps"] if "op" in s]

    def kinds(d: dict[str, Any]) -> list[Any]:
        return [e.get("kind") for e in d.get("events") or []]

    notes = [what for what, same in (("OPERATIONS CHANGED", ops(old) == ops(new)),
                                     ("record events changed", kinds(old) == kinds(new)))
             if not same]
    return f" ({'; '.join(notes)})" if notes else " (same operations and events)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="scenarios to capture (default: all)")
    ap.add_argument("--offset", type=int,
                    default=int(os.environ.get("HOTLINE_PORT_OFFSET", "1000")))
    ap.add_argument("--keep", action="store_true", help="leave the stack running")
    args = ap.parse_args(argv)
    wanted = [s for s in SCENARIOS if not args.names or s.name in args.names]
    unknown = set(args.names) - {s.name for s in SCENARIOS}
    if unknown:
        ap.error(f"unknown scenarios {sorted(unknown)}; known: {[s.name for s in SCENARIOS]}")
    work = Path(tempfile.mkdtemp(prefix="capture-"))
    cfg = write_test_config(work / "hotline.yaml")
    stack = Stack(name=f"capture{args.offset}", offset=args.offset, config=cfg)
    version = ensure_rootfs(stack.rootfs)
    stack.install_sounds()
    raw_dir = stack.dir / "transcripts"
    for old in raw_dir.glob("ari-*.jsonl"):
        old.unlink()
    os.environ[ENV] = str(raw_dir)  # the app inherits it (Stack.start_app)
    stack.up()
    try:
        cap = Capture(stack, raw_dir, version)
        for sc in wanted:
            cap.run(sc)
    finally:
        if not args.keep:
            stack.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
