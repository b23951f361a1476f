"""Wrap-up: the agent says what the call was about, ends wrap-up early or extends it.

The call has ended by the time the agent tags it, so the reason is a late fact
(records/events.py `late_fact`, source "wrapup") folded into the archived call
by the archiver: it reaches the call exactly once however often the stream
delivers it. Which call an agent may tag is kept with the agent's state in
Redis (agents/wrapup_scripts.py): the call they are on, or the call of their
last wrap-up until they are offered another. A wrap-up that ends with no
reason (timeout, early end, pause, log-out) is logged by the pool's scripts
and the archiver records "no_reason_given" for the call
(records/agent_events.py); a tag made later still wins, being the later fact.

The desktop and the feature codes both call this; docs/agent-desktop.md and
docs/records.md describe the figures.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ari_app.agents import wrapup_scripts
from ari_app.agents.pool import AgentPool, _s
from ari_app.config.agent_work import REASON_KINDS, REASON_LABELS, AgentWork
from ari_app.logs import get_logger
from ari_app.records.agent_events import NO_REASON
from ari_app.records.events import RecordEvent, late_fact

log = get_logger("wrapup")
SOURCE = "wrapup"
# what the record keeps (records/model.py): reason 40, reason_detail 80, note 500
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}
_KEEP = {"\n", "\u200c", "\u200d"}  # a line break; ZWNJ/ZWJ shape Arabic and Persian


class WrapUpError(Exception):
    """A tag, end or extension the agent's state or the configuration does not allow."""


class EventSink(Protocol):
    async def publish_events(self, events: list[RecordEvent]) -> Any: ...


def clean_note(note: str, limit: int) -> str:
    """The note as text: control and bidi-override characters dropped, tabs and
    carriage returns as spaces, trimmed. WrapUpError if longer than `limit`."""
    out = []
    for ch in note.replace("\r\n", "\n"):
        if ch in _KEEP:
            out.append(ch)
        elif ch in "\t\r":
            out.append(" ")
        elif ch in _BIDI or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            continue
        else:
            out.append(ch)
    text = "".join(out).strip()
    if len(text) > limit:
        raise WrapUpError(f"note too long: {len(text)} characters, at most {limit}")
    return text


class WrapUps:
    def __init__(self, pool: AgentPool, records: EventSink, work: AgentWork,
                 on_available: Callable[[], Awaitable[None]] | None = None) -> None:
        self.pool = pool
        self.records = records
        self.work = work
        # an agent free before their wrap-up's end: waiting callers must hear of it
        self.on_available = on_available
        reg = pool.redis.register_script
        self._tag = reg(wrapup_scripts.TAG)
        self._done = reg(wrapup_scripts.DONE)
        self._extend = reg(wrapup_scripts.EXTEND)

    def reasons(self, entity: str | None) -> list[dict[str, Any]]:
        """The four kinds, each with its labels and this entity's sub-reasons:
        [{"kind", "labels", "sub_reasons": [{"id", "labels"}]}]."""
        subs = self.work.sub_reasons.get(entity or "", ())
        return [{"kind": k, "labels": dict(REASON_LABELS[k]),
                 "sub_reasons": [{"id": s.id, "labels": dict(s.labels)}
                                 for s in subs if s.kind == k]}
                for k in REASON_KINDS]

    async def _run(self, script: Any, *args: str | int) -> str:
        res = _s(await script(keys=[self.pool.base + "agents"], args=[self.pool.base, *args]))
        return res or ""

    def _known(self, agent_id: str) -> None:
        if agent_id not in self.pool.agents:
            raise WrapUpError(f"agent {agent_id!r} is not in the roster")

    async def tag(self, agent_id: str, call_id: str, kind: str, sub_reason: str | None,
                  note: str | None) -> None:
        """Record the call's reason (kind, optional sub-reason of the call's entity,
        optional note) from `agent_id`, who must be on it or wrapping it up."""
        self._known(agent_id)
        if kind not in REASON_KINDS:
            raise WrapUpError(f"unknown call reason {kind!r}: one of {', '.join(REASON_KINDS)}")
        text = clean_note(note, self.work.note_max_chars) if note else ""
        if not call_id or len(call_id) > 64:
            raise WrapUpError("no such call id")
        check = await self._run(self._tag, agent_id, call_id, "0")
        if check.startswith("err:"):
            raise WrapUpError(f"agent {agent_id!r}: {check[4:]}")
        entity = check[3:]
        if sub_reason:
            ok = {s.id for s in self.work.sub_reasons.get(entity, ()) if s.kind == kind}
            if sub_reason not in ok:
                raise WrapUpError(f"unknown sub-reason {sub_reason!r} for {kind} calls of "
                                  f"entity {entity or '(none)'!r}")
        marked = await self._run(self._tag, agent_id, call_id, "1")
        if marked.startswith("err:"):  # the agent was offered another call meanwhile
            raise WrapUpError(f"agent {agent_id!r}: {marked[4:]}")
        fact = late_fact(call_id, "tagged", SOURCE, {
            "reason": kind, "reason_detail": sub_reason or None, "note": text or None,
            "tagged_by": agent_id})
        await self.records.publish_events([fact])
        log.info("wrapup.tagged", agent=agent_id, call_id=call_id, kind=kind,
                 sub_reason=sub_reason, note_chars=len(text))

    async def done(self, agent_id: str) -> None:
        """End the agent's wrap-up now (untagged, the call gets "no_reason_given")."""
        self._known(agent_id)
        res = await self._run(self._done, agent_id)
        if res.startswith("err:"):
            raise WrapUpError(f"agent {agent_id!r}: {res[4:]}")
        log.info("wrapup.done", agent=agent_id)
        if self.on_available is not None:
            await self.on_available()

    async def extend(self, agent_id: str, seconds: float) -> float:
        """Add `seconds` to the wrap-up, up to `wrapup_max_extension` per wrap-up in
        all; returns the new end (Unix time, the Redis server's clock)."""
        self._known(agent_id)
        if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds > 0):
            raise WrapUpError(f"extension must be a positive number of seconds, not {seconds!r}")
        most = round(self.work.wrapup_max_extension * 1000)
        res = await self._run(self._extend, agent_id, min(round(seconds * 1000), most), most)
        if res.startswith("err:"):
            raise WrapUpError(f"agent {agent_id!r}: {res[4:]}")
        log.info("wrapup.extended", agent=agent_id, seconds=seconds)
        return int(res) / 1000.0


__all__ = ["NO_REASON", "SOURCE", "WrapUpError", "WrapUps", "clean_note"]
