"""Records as events: what an interaction appends to the stream, and the fold
that turns a call's events back into its CallRecord.

An interaction never writes its record once at the end. Each time something
happens that the record should know (the caller arrived, chose a language,
joined a queue, was offered to an agent...), it appends an event that carries
exactly what changed in the record since its previous event. The archiver
keeps every event and folds a call's events, in order, into its `calls` row; a
fact that arrives after the call ended (a call reason tagged in wrap-up, a
callback's result, a survey score) is just one more event, so it lands in the
archived call exactly once.

The same `fold` runs in the app (to keep the in-memory record) and in the
archiver, so the two can never disagree about what an event means.

Event ids are `{call_id}:{seq}` for the call's own events (seq counts from 1
per interaction) and `{call_id}:{source}:{uuid}` for late facts from elsewhere,
so a redelivered event is recognised and ignored.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ari_app.records.model import CallRecord, parse_iso, utcnow

EVENT_VERSION = 2
LIST_FIELDS = ("entity_path", "prompts", "queue", "offers", "consults", "supervision")
# a late fact may set only what the call path never sets itself
LATE_FIELDS = frozenset({"reason", "reason_detail", "note", "tagged_by",
                         # supervision: the survey's answers, the recording's deletion
                         "survey_q1", "survey_q2", "survey_result", "recording_deleted_at"})
MAX_EVENTS_PER_CALL = 500


class RecordEvent(BaseModel):
    """One fact about a call. `data` is a patch of the call's record:

    - `set`: record fields and their new values;
    - `lists`: for a list field, `{"from": n, "items": [...]}`: keep the first
      n items, then append `items` (so a queue stint that gained its end time
      is sent as from=len-1 with the updated stint).
    """

    model_config = ConfigDict(extra="forbid")

    v: int = EVENT_VERSION
    id: str = Field(min_length=1, max_length=120)
    call_id: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=0)
    at: str
    kind: str = Field(min_length=1, max_length=40)
    source: str = Field("call", max_length=40)
    data: dict[str, Any] = Field(default_factory=dict)


RECORD_FIELDS = frozenset(CallRecord.model_fields)
_PATCH_KEYS = frozenset({"set", "lists"})


def problem(ev: RecordEvent) -> str | None:
    """Why an archive must refuse this event, or None when it may keep it.

    The archive keeps events forever and folds them again whenever the call
    gets a new one, so anything that would make a later fold fail or lie is
    refused at the door: an id that does not match the call and sequence
    (dedup would be wrong), a patch of unknown shape or fields, a late fact
    that touches what only the call sets."""
    if ev.v != EVENT_VERSION:
        return f"event version {ev.v}, this program reads {EVENT_VERSION}"
    if ev.source == "call":
        if ev.id != f"{ev.call_id}:{ev.seq}":
            return f"id {ev.id!r}: a call's own event must be '{{call_id}}:{{seq}}'"
    else:
        if not ev.id.startswith(f"{ev.call_id}:{ev.source}:"):
            return f"id {ev.id!r}: a late fact's id must start '{{call_id}}:{{source}}:'"
        try:  # late facts fold in the order of `at`
            parse_iso(ev.at)
        except ValueError:
            return f"at: not an ISO time: {ev.at!r}"
    extra = set(ev.data) - _PATCH_KEYS
    if extra:
        return f"data: unknown keys {sorted(extra)} (only 'set' and 'lists')"
    sets = ev.data.get("set") or {}
    lists = ev.data.get("lists") or {}
    if not isinstance(sets, dict) or not isinstance(lists, dict):
        return "data: 'set' and 'lists' must be objects"
    unknown = (set(sets) | set(lists)) - RECORD_FIELDS
    if sets.get("call_id", ev.call_id) != ev.call_id:
        return f"data: sets call_id {sets['call_id']!r} on an event of call {ev.call_id!r}"
    if unknown:
        return f"data: not record fields {sorted(unknown)}"
    misplaced = (set(sets) & set(LIST_FIELDS)) | (set(lists) - set(LIST_FIELDS))
    if misplaced:
        return f"data: {sorted(misplaced)} in the wrong part ('lists' is for {list(LIST_FIELDS)})"
    for key, change in lists.items():
        if (not isinstance(change, dict) or set(change) - {"from", "items"}
                or not isinstance(change.get("from", 0), int) or change.get("from", 0) < 0
                or not isinstance(change.get("items", []), list)):
            return f"data.lists.{key}: must be {{\"from\": n >= 0, \"items\": [...]}}"
    if ev.source != "call":
        if lists:
            return f"a late {ev.kind!r} event may not change lists {sorted(lists)}"
        bad = set(sets) - LATE_FIELDS
        if bad:
            return f"a late {ev.kind!r} event may not set {sorted(bad)}"
    return None


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The patch that turns record dump `before` into `after` (both mode='json')."""
    sets: dict[str, Any] = {}
    lists: dict[str, Any] = {}
    for key, new in after.items():
        old = before.get(key)
        if key in LIST_FIELDS:
            old_l = list(old or [])
            new_l = list(new or [])
            if old_l == new_l:
                continue
            keep = 0
            while keep < min(len(old_l), len(new_l)) and old_l[keep] == new_l[keep]:
                keep += 1
            lists[key] = {"from": keep, "items": new_l[keep:]}
        elif new != old:
            sets[key] = new
    out: dict[str, Any] = {}
    if sets:
        out["set"] = sets
    if lists:
        out["lists"] = lists
    return out


def apply(state: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Apply one event's patch to a record dump, in place; returns it."""
    for key, value in (data.get("set") or {}).items():
        state[key] = value
    for key, change in (data.get("lists") or {}).items():
        keep = int(change.get("from", 0))
        state[key] = list(state.get(key) or [])[:keep] + list(change.get("items") or [])
    return state


def order(events: list[RecordEvent]) -> list[RecordEvent]:
    """The call's own events in sequence, then late facts in the order they happened."""
    own = sorted((e for e in events if e.source == "call"), key=lambda e: e.seq)
    late = sorted((e for e in events if e.source != "call"), key=lambda e: (e.at, e.id))
    return own + late


def fold(events: list[RecordEvent]) -> CallRecord | None:
    """The record a call's events describe, or None when they do not yet describe
    one (the event that says when the call arrived has not been seen)."""
    state: dict[str, Any] = {}
    for ev in order(events):
        data = ev.data
        if ev.source != "call":
            data = {"set": {k: v for k, v in (data.get("set") or {}).items()
                            if k in LATE_FIELDS}}
        apply(state, data)
    if "arrived_at" not in state or "call_id" not in state:
        return None
    return CallRecord.model_validate(state)


def record_to_events(rec: CallRecord, dump: dict[str, Any] | None = None) -> list[RecordEvent]:
    """One event that carries a whole record: how a version 1 record (from an old
    archive, an import or a spool line) joins the event history. `dump` is
    rec.model_dump(mode="json") when the caller has it already."""
    d = dump if dump is not None else rec.model_dump(mode="json")
    # built from a valid record, so nothing to validate (bulk imports run this per record)
    return [RecordEvent.model_construct(id=f"{rec.call_id}:0", call_id=rec.call_id, seq=0,
                                        at=rec.ended_at or rec.arrived_at, kind="record",
                                        source="call", data=diff({}, d))]


def late_fact(call_id: str, kind: str, source: str, fields: dict[str, Any]) -> RecordEvent:
    """A fact about a call that comes from outside its interaction (the desktop's
    wrap-up, a callback's result, a survey)."""
    bad = set(fields) - LATE_FIELDS
    if bad:
        raise ValueError(f"a late {kind!r} event may not set {sorted(bad)}")
    return RecordEvent(id=f"{call_id}:{source}:{uuid.uuid4().hex[:16]}", call_id=call_id,
                       seq=0, at=utcnow(), kind=kind, source=source, data={"set": fields})


class Recorder:
    """An interaction's record and the events not yet published.

    `emit(kind)` turns whatever changed in the record since the last event into
    one event; nothing that changed is ever lost, and an emit with no change
    still records that the step happened (its data is empty)."""

    def __init__(self, record: CallRecord, seq: int = 0,
                 published: dict[str, Any] | None = None) -> None:
        self.record = record
        self.seq = seq
        self._last: dict[str, Any] = published if published is not None else {}
        self.pending: list[RecordEvent] = []

    def emit(self, kind: str) -> RecordEvent | None:
        if self.seq >= MAX_EVENTS_PER_CALL and kind != "ended":
            return None  # a runaway call (DTMF storm) must not flood the stream
        now = self.record.model_dump(mode="json")
        self.seq += 1
        ev = RecordEvent(id=f"{self.record.call_id}:{self.seq}", call_id=self.record.call_id,
                         seq=self.seq, at=utcnow(), kind=kind, data=diff(self._last, now))
        self._last = now
        self.pending.append(ev)
        return ev

    def take(self) -> list[RecordEvent]:
        out, self.pending = self.pending, []
        return out

    def snapshot(self) -> dict[str, Any]:
        """What a checkpoint keeps, so a restarted app continues the same sequence."""
        return {"seq": self.seq, "published": self._last,
                "pending": [e.model_dump(mode="json") for e in self.pending]}

    @classmethod
    def restore(cls, record: CallRecord, snap: dict[str, Any]) -> Recorder:
        r = cls(record, int(snap.get("seq", 0)), dict(snap.get("published") or {}))
        r.pending = [RecordEvent.model_validate(e) for e in snap.get("pending") or []]
        return r


def records_in_stream(entries: Iterable[Mapping[bytes, bytes]]) -> list[dict[str, Any]]:
    """The finished records a stream's entries describe, as JSON dicts: a version 1
    record as it is, and each call's events folded once it has ended. A redelivered
    event is the same event (same id); two different `ended` events for one call
    are two records, so a reader counting records sees a call recorded twice."""
    out: list[dict[str, Any]] = []
    by_call: dict[str, dict[str, RecordEvent]] = {}
    for fields in entries:
        if b"record" in fields:
            out.append(json.loads(fields[b"record"]))
        elif b"event" in fields:
            ev = RecordEvent.model_validate_json(fields[b"event"])
            by_call.setdefault(ev.call_id, {})[ev.id] = ev
    for evs in by_call.values():
        ended = [e for e in evs.values() if e.kind == "ended"]
        rec = fold(list(evs.values())) if ended else None
        if rec is not None:
            out.extend(rec.model_dump(mode="json") for _ in ended)
    return out
