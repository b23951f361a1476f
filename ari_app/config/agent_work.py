"""What agents say about their work: pause reasons, call reasons, wrap-up limits.

Sits in HotlineConfig as `agent_work: AgentWork`; every field has a default so
an existing hotline.yaml stays valid. Cross-checks against the entities are in
`problems()`, because this model alone does not know them.

Pause reasons carry a digit so an agent without a screen can pause with one
from the phone (*23 followed by the digit). "missed_call" is the system's
reason (an offer the agent did not answer) and may not be configured.
Call reason kinds are the ministry's four; sub-reasons are per entity.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

Ident = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Label = Annotated[str, Field(min_length=1, max_length=60)]

MISSED_CALL = "missed_call"  # set by the system when an offer is missed
DEFAULT_PAUSE = "break"  # *23 without a digit, and a pause asked with no reason
REASON_KINDS = ("inquiry", "complaint", "e_service_support", "other")
REASON_LABELS: dict[str, dict[str, str]] = {
    "inquiry": {"en": "Inquiry", "ar": "استفسار"},
    "complaint": {"en": "Complaint", "ar": "شكوى"},
    "e_service_support": {"en": "E-service support", "ar": "دعم الخدمات الإلكترونية"},
    "other": {"en": "Other", "ar": "أخرى"},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _labels_ok(labels: dict[str, str], where: str) -> None:
    missing = [lang for lang in ("en", "ar") if not labels.get(lang, "").strip()]
    if missing:
        raise ValueError(f"{where}: no label in {', '.join(missing)}")


class PauseReason(_Strict):
    id: Ident
    digit: int = Field(ge=1, le=9)
    labels: dict[str, Label]

    @model_validator(mode="after")
    def _check(self) -> PauseReason:
        if self.id == MISSED_CALL:
            raise ValueError(f"pause reason {MISSED_CALL!r} is reserved for the system")
        _labels_ok(self.labels, f"pause reason {self.id}")
        return self


class SubReason(_Strict):
    """A finer call reason of one entity, under one of the four kinds."""

    id: Ident
    kind: str
    labels: dict[str, Label]

    @model_validator(mode="after")
    def _check(self) -> SubReason:
        if self.kind not in REASON_KINDS:
            raise ValueError(f"sub-reason {self.id}: kind {self.kind!r} is not one of "
                             f"{', '.join(REASON_KINDS)}")
        _labels_ok(self.labels, f"sub-reason {self.id}")
        return self


def _default_pauses() -> tuple[PauseReason, ...]:
    return (
        PauseReason(id=DEFAULT_PAUSE, digit=1, labels={"en": "Break", "ar": "استراحة"}),
        PauseReason(id="prayer", digit=2, labels={"en": "Prayer", "ar": "صلاة"}),
        PauseReason(id="meal", digit=3, labels={"en": "Meal", "ar": "وجبة"}),
        PauseReason(id="training", digit=4, labels={"en": "Training", "ar": "تدريب"}),
        PauseReason(id="meeting", digit=5, labels={"en": "Meeting", "ar": "اجتماع"}),
        PauseReason(id="technical", digit=6, labels={"en": "Technical", "ar": "مشكلة تقنية"}),
    )


class AgentWork(_Strict):
    pause_reasons: tuple[PauseReason, ...] = Field(default_factory=_default_pauses,
                                                   min_length=1, max_length=9)
    # entity id -> its sub-reasons (optional; an entity without any has the kinds only)
    sub_reasons: dict[Ident, tuple[SubReason, ...]] = Field(default_factory=dict)
    # how long an agent may stretch one wrap-up beyond the configured wrap-up time
    wrapup_max_extension: float = Field(default=120.0, ge=0, le=3600)
    note_max_chars: int = Field(default=500, ge=0, le=500)

    @model_validator(mode="after")
    def _unique(self) -> AgentWork:
        for what, values in (("id", [p.id for p in self.pause_reasons]),
                             ("digit", [p.digit for p in self.pause_reasons])):
            dup = sorted({str(v) for v in values if values.count(v) > 1})  # type: ignore[arg-type]
            if dup:
                raise ValueError(f"pause_reasons: {what} repeated: {', '.join(dup)}")
        if DEFAULT_PAUSE not in {p.id for p in self.pause_reasons}:
            raise ValueError(f"pause_reasons: {DEFAULT_PAUSE!r} is needed (a pause with no "
                             "reason digit)")
        for entity, subs in self.sub_reasons.items():
            ids = [s.id for s in subs]
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise ValueError(f"sub_reasons.{entity}: id repeated: {', '.join(dup)}")
        return self

    def pause_by_digit(self, digit: str) -> PauseReason | None:
        return next((p for p in self.pause_reasons if str(p.digit) == digit), None)

    def pause_ids(self) -> set[str]:
        return {p.id for p in self.pause_reasons}

    def problems(self, entity_ids: set[str]) -> list[str]:
        return [f"agent_work.sub_reasons: unknown entity {e!r}" for e in self.sub_reasons
                if e not in entity_ids]
