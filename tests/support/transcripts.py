"""The transcript fixture format: raw recorder lines in, normalised steps out.

A raw transcript (ari_app/ari/transcript.py) holds ids that change on every
run. `normalise` turns a slice of it into stable steps:

    {"event": {...}, "t": 1.234}
    {"op": "play", "args": {...}, "result": null, "t": 1.240}
    {"op": "hangup", "args": {...}, "error": {"status": 404, "message": "..."}}
    {"op": "...", ..., "group": 3}   # sent while an earlier op of group 3 was pending
    {"action": "resume", "agent": "a014", "t": 7.0}   # what the capture did, and when

Placeholders (numbered in order of first appearance):
    <call:N>       a call id the app made (uuid hex); its agent legs and bridges
                   keep their suffix: <call:1>-a1, <call:1>-br1
    <pb:N>         a playback id the app made (<call id>-pb<counter>)
    <chan:N>       an id Asterisk made (uniqueid, linkedid)
    <seq:N>        the counter in a channel name (PJSIP/sipp-<seq:1>)
    <asterisk>     the Asterisk system id; <protocol:N> a SIP Call-ID (a channel's
                   protocol_id, and BRIDGEPVTCALLID naming its bridged peer's)
    <rtp-stats>    the RTPAUDIOQOS* channel variables' values
    TIMESTAMP      every ISO timestamp
and the callers' numbers are replaced by the fixed numbers the capture gives.
`t` is seconds since the slice's first line, as recorded (for reading only).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TIMESTAMP = "2000-01-01T00:00:00.000+0000"
_PB = re.compile(r"\b[0-9a-f]{20}-pb\d+\b")
_CALL = re.compile(r"\b[0-9a-f]{20}\b")
_UNIQUEID = re.compile(r"\b\d{9,11}\.\d+\b")
_ISO = re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
_CHAN_SEQ = re.compile(r"\b((?:PJSIP|Local|SIP|IAX2)/[^\s,;]+?)-([0-9a-f]{8})\b")
_BY_KEY = {"asterisk_id": "<asterisk>"}
_NUMBERED_KEYS = {"protocol_id": "protocol"}


@dataclass
class Placeholders:
    """Maps each varying value to its stable name, the same one every time it appears."""

    literal: dict[str, str] = field(default_factory=dict)
    seen: dict[tuple[str, str], str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def name(self, kind: str, value: str) -> str:
        key = (kind, value)
        if key not in self.seen:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.seen[key] = f"<{kind}:{self.counts[kind]}>"
        return self.seen[key]

    def text(self, s: str) -> str:
        for actual, stable in self.literal.items():
            s = s.replace(actual, stable)
        s = _PB.sub(lambda m: self.name("pb", m.group(0)), s)
        s = _CALL.sub(lambda m: self.name("call", m.group(0)), s)
        s = _UNIQUEID.sub(lambda m: self.name("chan", m.group(0)), s)
        s = _ISO.sub(TIMESTAMP, s)
        return _CHAN_SEQ.sub(lambda m: f"{m.group(1)}-{self.name('seq', m.group(2))}", s)

    def tree(self, obj: Any, key: str | None = None) -> Any:
        if isinstance(obj, dict):
            out = {self.text(str(k)): self.tree(v, str(k)) for k, v in obj.items()}
            variable = str(obj.get("variable", ""))
            if variable.startswith("RTPAUDIOQOS"):
                out["value"] = "<rtp-stats>"  # jitter, loss, SSRCs: different every call
            elif variable == "BRIDGEPVTCALLID" and obj.get("value"):
                out["value"] = self.name("protocol", str(obj["value"]))  # the peer's Call-ID
            return out
        if isinstance(obj, list):
            return [self.tree(v) for v in obj]
        if isinstance(obj, str):
            if key in _BY_KEY and obj:
                return _BY_KEY[key]
            if key in _NUMBERED_KEYS and obj:
                return self.name(_NUMBERED_KEYS[key], obj)
            return self.text(obj)
        return obj


def read_raw(path: Path, start: int = 0, end: int | None = None) -> list[dict[str, Any]]:
    """Raw recorder lines with start <= seq < end (end None: to the end of the file),
    with the action lines (no seq) that fall among them."""
    out: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        seq = obj.get("seq")
        if seq is None:
            if out:
                out.append(obj)
            continue
        if end is not None and seq >= end:
            break
        if seq >= start:
            out.append(obj)
    return out


def mark_action(path: Path, action: str, **details: Any) -> None:
    """Append what a test did (an agent resumed) to a live transcript, where it
    happened among the app's lines. One short write with O_APPEND, so it never
    lands inside a line the app is writing."""
    line = json.dumps({"seq": None, "kind": "action", "action": action, **details}) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)


def last_seq(path: Path) -> int:
    seqs = [json.loads(ln).get("seq") for ln in path.read_text(encoding="utf-8").splitlines()
            if ln.strip()]
    return max((s for s in seqs if s is not None), default=0)


def normalise(raw: Iterable[dict[str, Any]], ph: Placeholders) -> list[dict[str, Any]]:
    """Steps in the order the app saw them: each op with its outcome attached."""
    lines = list(raw)
    t0 = lines[0]["t"] if lines else 0.0
    steps: list[dict[str, Any]] = []
    ops: dict[int, dict[str, Any]] = {}
    pending: dict[int, int] = {}  # seq of an unanswered op -> its group
    groups = 0
    t = 0.0
    for line in lines:
        kind = line["kind"]
        t = round(line["t"] - t0, 3) if "t" in line else t
        if kind == "action":
            steps.append({"action": line["action"], "t": t,
                          **{k: v for k, v in line.items()
                             if k not in ("seq", "kind", "action", "t")}})
        elif kind == "event":
            steps.append({"event": ph.tree(line["event"]), "t": t})
        elif kind == "op":
            step: dict[str, Any] = {"op": line["op"], "args": ph.tree(line["args"]), "t": t}
            if pending:
                # sent while another was unanswered: the two may come in either order
                group = next(iter(pending.values()))
                if group == 0:
                    groups += 1
                    group = groups
                    for s in pending:
                        pending[s] = group
                        ops[s]["group"] = group
                step["group"] = group
                pending[line["seq"]] = group
            else:
                pending[line["seq"]] = 0
            ops[line["seq"]] = step
            steps.append(step)
        elif kind in ("result", "error"):
            op = ops.get(line["of"])
            pending.pop(line["of"], None)
            if op is None:
                continue  # the op was sent before the slice began
            if kind == "result":
                op["result"] = ph.tree(line["result"])
            else:
                op["error"] = {"status": line["status"], "message": ph.text(line["message"])}
        # connected/disconnected/start lines carry nothing to replay
    for op in ops.values():
        if "result" not in op and "error" not in op:
            op["error"] = {"status": None, "message": "no answer recorded"}
    return steps


def dump(transcript: dict[str, Any], path: Path) -> None:
    """The header indented for reading; one step a line, so a diff shows what changed."""
    header = {k: v for k, v in transcript.items() if k != "steps"}
    text = json.dumps(header, indent=2, ensure_ascii=False)
    steps = ",\n".join("    " + json.dumps(s, ensure_ascii=False, sort_keys=False)
                       for s in transcript["steps"])
    path.write_text(text[:-2] + ',\n  "steps": [\n' + steps + "\n  ]\n}\n", encoding="utf-8")


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise ValueError(f"{path}: not a transcript (no 'steps' list)")
    return data
