"""The call record: the one schema shared by the app, the archive, exports and reports.

docs/records.md documents every field; keep the two in step. Times are ISO 8601
UTC strings with milliseconds, so a record reads the same in Redis, SQLite,
JSONL and CSV, and sorts as text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

# 2: records are folded from events (records/events.py); consults and the
# late facts (call reason, note) were added. Every version 1 record is a valid
# version 2 record with those fields empty.
# The queued callback (`callback`) is an additive optional field: no bump.
SCHEMA_VERSION = 2


class Outcome(StrEnum):
    ANSWERED = "answered"
    COMPLETED_IN_MENU = "completed_in_menu"
    ABANDONED_IN_MENU = "abandoned_in_menu"
    ABANDONED_IN_QUEUE = "abandoned_in_queue"
    NO_AGENT_FALLBACK = "no_agent_fallback"
    MAX_WAIT_FALLBACK = "max_wait_fallback"
    TRANSFERRED = "transferred"
    REJECTED = "rejected"
    FAILED = "failed"
    # the caller asked to be called back and hung up: their ticket kept the place
    CALLBACK_REQUESTED = "callback_requested"


class LanguageSource(StrEnum):
    DIGIT = "digit"
    REMEMBERED = "remembered"
    DEFAULT = "default"
    NUMBER = "number"


class HangupBy(StrEnum):
    CALLER = "caller"
    AGENT = "agent"
    APP = "app"
    SYSTEM = "system"


class Offer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent: str
    site: str
    at: str
    result: str = Field(description="answered | no_answer | busy | failed | caller_gone")
    ring_seconds: float | None = None


class QueueStint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entity: str
    joined_at: str
    left_at: str | None = None
    result: str | None = Field(None, description="answered | abandoned | transferred | fallback")


class Consult(BaseModel):
    """The agent put the caller on hold to talk to someone else first."""

    model_config = ConfigDict(extra="forbid")
    at: str
    by: str = Field(description="the agent who consulted")
    target_kind: str = Field(description="entity | agent | supervisor")
    target: str
    agent: str | None = Field(None, description="who answered the consult leg")
    site: str | None = None
    answered_at: str | None = None
    ended_at: str | None = None
    result: str | None = Field(
        None, description="completed | returned | declined | no_answer | failed | caller_gone")


class SupervisorAction(BaseModel):
    """A supervisor listened to, whispered to or barged into the call, or left it."""

    model_config = ConfigDict(extra="forbid")
    at: str
    supervisor: str = Field(description="the supervisor's agent id")
    action: str = Field(description="listen | whisper | barge | leave")
    agent: str | None = Field(None, description="the agent on the call then")
    reason: str | None = Field(None, max_length=80, description="why it ended (leave)")


class Callback(BaseModel):
    """A queued callback: on the call that asked for it (`requested`) and on each
    attempt the app dialled (dialled = "callback"). docs/callback.md."""

    model_config = ConfigDict(extra="forbid")
    ticket: str
    number: str = Field(description="masked: only the last two digits")
    requested_at: str
    of_call: str = Field(description="the call that asked for it")
    waited: float = Field(description="seconds the caller had waited on the line")
    attempt: int | None = Field(None, description="this attempt, 1..max_attempts")
    result: str = Field(
        description="requested | answered | no_answer | busy | failed | retry | expired")
    answered_at: str | None = None
    seconds_to_callback: float | None = Field(
        None, description="from the request to the citizen answering")


class CallRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    schema_version: int = SCHEMA_VERSION
    call_id: str = Field(min_length=1, max_length=64)
    app: str = ""
    channel_uniqueid: str = ""
    linkedid: str = ""
    caller: str = Field("", max_length=64)
    dialled: str = Field("", max_length=32)
    arrived_at: str
    answered_at: str | None = None
    menu_left_at: str | None = None
    queue_joined_at: str | None = None
    agent_answered_at: str | None = None
    ended_at: str | None = None
    language: str | None = None
    language_source: LanguageSource | None = None
    entity: str | None = None
    sector: str | None = None
    entity_path: list[str] = Field(default_factory=list)
    menu_retries: int = 0
    menu_seconds: float | None = None
    digits: str = Field("", max_length=200)
    prompts: list[str] = Field(default_factory=list, max_length=200)
    queue: list[QueueStint] = Field(default_factory=list)
    offers: list[Offer] = Field(default_factory=list)
    agent: str | None = None
    site: str | None = None
    speed_of_answer: float | None = None
    talk_seconds: float | None = None
    # After-call work, when the agent's desktop reports it. Added in the same
    # schema version: optional, so every earlier record still validates.
    wrapup_seconds: float | None = None
    hangup_by: HangupBy | None = None
    outcome: Outcome | None = None
    failure: str | None = Field(None, max_length=500)
    # version 2
    consults: list[Consult] = Field(default_factory=list, max_length=50)
    reason: str | None = Field(None, max_length=40)
    reason_detail: str | None = Field(None, max_length=80)
    note: str | None = Field(None, max_length=500)
    tagged_by: str | None = Field(None, max_length=64)
    # supervision (docs/supervision.md): the recording's name below the
    # configured recordings directory, and when retention deleted it
    recording: str | None = Field(None, max_length=200)
    recording_deleted_at: str | None = None
    supervision: list[SupervisorAction] = Field(default_factory=list, max_length=100)
    # the post-call survey (late facts): 1-5 per question, None when not answered
    survey_q1: int | None = Field(None, ge=1, le=5)
    survey_q2: int | None = Field(None, ge=1, le=5)
    survey_result: str | None = Field(
        None, max_length=20, description="answered | partial | no_answer")


    # the queued callback (archive version 5)
    callback: Callback | None = None


def utcnow() -> str:
    return iso(datetime.now(UTC))


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_iso(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def seconds_between(a: str | None, b: str | None) -> float | None:
    if a is None or b is None:
        return None
    return round((parse_iso(b) - parse_iso(a)).total_seconds(), 3)
