"""Runtime announcements (docs/announcements.md): where their sound files go and
the limits on what an operator may set.

Meant to sit in HotlineConfig as `announcements: AnnouncementSettings`; every
field has a default, so an existing hotline.yaml stays valid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

LangCode = Annotated[str, Field(pattern=r"^[a-z]{2,3}$")]


class AnnouncementSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # where this app instance writes the announcements' sound files (relative:
    # beside the config file). Every instance writes its own copy from Redis, so
    # each site's Asterisk finds them on its own disk.
    dir: Path = Path("../var/announcements")
    # the same directory as Asterisk sees it: it differs when Asterisk runs in a
    # chroot or a container (the rig: /srv/hotline/<stack>/announcements). Unset:
    # the same path as `dir`, resolved.
    asterisk_dir: Path | None = None
    # a language the operator gave no text for hears this language's rendering
    # instead; unset: it hears nothing (see docs/announcements.md for why)
    fallback_language: LangCode | None = None
    max_text_chars: int = Field(600, ge=20, le=5000)
    # an uploaded recording: the file as sent, and its length once converted
    max_audio_bytes: int = Field(8_000_000, ge=10_000, le=50_000_000)
    max_audio_seconds: float = Field(120.0, gt=0, le=600)
    # a missed pub/sub message is caught up by reading one version key this often
    poll_seconds: float = Field(5.0, ge=0.5, le=300)
    # audit events kept in Redis (the oldest are trimmed)
    audit_keep: int = Field(10_000, ge=100, le=1_000_000)
