"""Supervision and quality: call recording, its retention, and the post-call survey.

Sits in HotlineConfig as `supervision: SupervisionSettings`; every field has a
default that records nothing and asks nothing, so an existing hotline.yaml
stays valid. Who may supervise is `queue.supervisors` (agent ids with phones).
Entity ids are checked against the rest of the config in `problems()`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from ari_app.config.base import Ident, Strict

Share = Annotated[float, Field(ge=0, le=100)]
_SUBDIR = re.compile(r"^[A-Za-z0-9_-]{1,40}(/[A-Za-z0-9_-]{1,40}){0,3}$")


class RecordingSettings(Strict):
    """Which answered calls are recorded, where the files land, how long they stay.

    `share` is the percentage of an entity's answered calls recorded (0-100),
    chosen by the call id (the same call always gets the same answer, so 100
    records every call and a test can rely on it); `entities` overrides it per
    entity."""

    share: Share = 0.0
    entities: dict[Ident, Share] = Field(default_factory=dict)
    # Asterisk's recording spool (astspooldir/recording) as this app's host sees
    # it: the retention job deletes files here. On the rig, Asterisk runs in a
    # chroot: /opt/hotline/rootfs/srv/hotline/<stack>/spool/recording.
    directory: Path = Path("/var/spool/asterisk/recording")
    # the part of a recording's name before the call id, below that spool
    subdir: str = "hotline"
    format: Literal["wav", "gsm"] = "wav"
    # the caller hears "this call is recorded" in their language when it starts
    notice: bool = False
    retention_days: float = Field(default=90.0, gt=0, le=3650)
    # how often the retention job looks for files past their time
    retention_check_seconds: float = Field(default=3600.0, ge=1, le=86_400)

    @field_validator("subdir")
    @classmethod
    def _relative(cls, v: str) -> str:
        if not _SUBDIR.match(v):
            raise ValueError("must be a relative path of letters, digits, '_' and '-' "
                             "(no '..', no leading '/')")
        return v

    def share_for(self, entity: str | None) -> float:
        if entity is not None and entity in self.entities:
            return self.entities[entity]
        return self.share


class SurveySettings(Strict):
    """The post-call survey: when the agent hangs up first, the caller rates the
    call by pressing 1-5 in their own language."""

    entities: list[Ident] = Field(default_factory=list, max_length=1000)
    all_entities: bool = False
    questions: Literal[1, 2] = 1
    # seconds the caller has to press a key after each question
    answer_timeout: float = Field(default=6.0, ge=1, le=60)

    def wanted(self, entity: str | None) -> bool:
        return self.all_entities or (entity is not None and entity in self.entities)


class SupervisionSettings(Strict):
    recording: RecordingSettings = RecordingSettings()
    survey: SurveySettings = SurveySettings()
    # seconds a supervisor's phone rings before a listen request gives up
    ring_timeout: float = Field(default=20.0, ge=3, le=120)

    def problems(self, entity_ids: set[str]) -> list[str]:
        out = [f"supervision.recording.entities: unknown entity {e!r}"
               for e in self.recording.entities if e not in entity_ids]
        out += [f"supervision.survey.entities: unknown entity {e!r}"
                for e in self.survey.entities if e not in entity_ids]
        return out
