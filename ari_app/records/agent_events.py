"""Agent state changes as archived events (the `agent_events` table).

The pool's Lua scripts log every change of an agent's state in the same
script that makes it (agents/scripts.py `log_state`): one entry on the records
stream with field `agent` holding a JSON object. The archiver stores it here,
keyed by its stream entry id, so a redelivered entry is stored once, like a
call's events. An entry that names a call in `noreason` (a wrap-up that ended
with no reason tagged) also yields the call's late fact "no_reason_given",
whose id is derived from the entry's, so it too lands once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ari_app.records.events import RecordEvent
from ari_app.records.model import iso

AGENT_FIELD = "agent"
NO_REASON = "no_reason_given"  # the reason of a call whose wrap-up ended untagged
WRAPUP_SOURCE = "wrapup"
STATES = ("logged_out", "available", "offered", "on_call", "wrapup", "paused")
AGENT_EVENT_COLUMNS = ("event_id", "agent", "site", "kind", "state", "reason", "call_id",
                       "reachable", "at", "at_ms", "data", "archived_at")


class AgentEvent(BaseModel):
    """One change of one agent's state, as archived."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=3, max_length=40, pattern=r"^[0-9]+-[0-9]+$")
    agent: str = Field(min_length=1, max_length=64)
    kind: str = Field(min_length=1, max_length=40)
    state: str
    at_ms: int = Field(ge=0)
    site: str = Field("", max_length=64)
    reachable: bool = True
    reason: str | None = Field(None, max_length=40)
    call: str | None = Field(None, max_length=64)
    noreason: str | None = Field(None, min_length=1, max_length=64)
    until_ms: int | None = None

    @property
    def at(self) -> str:
        return iso(datetime.fromtimestamp(self.at_ms / 1000, UTC))


def parse(entry_id: str, raw: bytes) -> AgentEvent:
    """The event an entry's `agent` field holds. ValueError says what is wrong."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"agent event: not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ValueError("agent event: not a JSON object")
    try:
        ev = AgentEvent(
            id=entry_id, agent=obj.get("agent"), kind=obj.get("kind"), state=obj.get("state"),
            at_ms=int(obj.get("at", -1)), site=obj.get("site") or "",
            reachable=obj.get("reach") != "0", reason=obj.get("reason"), call=obj.get("call"),
            noreason=obj.get("noreason"),
            until_ms=int(obj["until"]) if obj.get("until") else None)
    except ValidationError as e:
        first = e.errors(include_url=False)[:3]
        raise ValueError("agent event: " + "; ".join(
            f"{'.'.join(str(p) for p in x['loc'])}: {x['msg']}" for x in first)) from None
    except (TypeError, ValueError) as e:
        raise ValueError(f"agent event: {e}") from None
    if ev.state not in STATES:
        raise ValueError(f"agent event: unknown state {ev.state!r}")
    return ev


def no_reason_fact(ev: AgentEvent) -> RecordEvent | None:
    """The late fact "no reason given" for the call whose wrap-up `ev` ended untagged."""
    if ev.noreason is None:
        return None
    return RecordEvent(
        id=f"{ev.noreason}:{WRAPUP_SOURCE}:{ev.id}", call_id=ev.noreason, seq=0, at=ev.at,
        kind="untagged", source=WRAPUP_SOURCE,
        data={"set": {"reason": NO_REASON, "reason_detail": None, "note": None,
                      "tagged_by": ev.agent}})


def to_row(ev: AgentEvent, archived_at: str) -> tuple[Any, ...]:
    data = ev.model_dump(mode="json", exclude={"id", "agent", "kind", "state", "at_ms", "site",
                                                "reachable", "reason", "call"},
                         exclude_none=True)
    return (ev.id, ev.agent, ev.site, ev.kind, ev.state, ev.reason, ev.call,
            int(ev.reachable), ev.at, ev.at_ms,
            json.dumps(data, separators=(",", ":")), archived_at)
