"""The agent desktop's settings (docs/agent-desktop.md).

The desktop is off until `credentials_file` names the file of sign-in accounts
(`hotline desktop passwd` writes it). Passwords never sit in the YAML: only
their argon2 hashes, in that file, outside the repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from ari_app.config.base import Ident, Strict

Label = Annotated[str, Field(min_length=1, max_length=40)]


class PauseReason(Strict):
    """A reason an agent may pick when pausing, with its label in both desk languages."""

    id: Ident
    en: Label
    ar: Label


DEFAULT_PAUSE_REASONS = (
    PauseReason(id="prayer", en="Prayer", ar="صلاة"),
    PauseReason(id="meal", en="Meal", ar="وجبة"),
    PauseReason(id="training", en="Training", ar="تدريب"),
    PauseReason(id="meeting", en="Meeting", ar="اجتماع"),
    PauseReason(id="technical", en="Technical problem", ar="مشكلة تقنية"),
)


class DesktopSettings(Strict):
    # user id -> argon2 hash + role; None: the desktop is off (its pages answer 503)
    credentials_file: Path | None = None
    # a session ends after this long without a request, and in any case after `absolute`
    session_idle_seconds: int = Field(1800, ge=60, le=86_400)
    session_absolute_seconds: int = Field(43_200, ge=300, le=7 * 86_400)
    # failed sign-ins allowed per user and per client address within `window`
    signin_fail_per_user: int = Field(5, ge=1, le=100)
    signin_fail_per_address: int = Field(20, ge=1, le=10_000)
    signin_fail_window_seconds: int = Field(300, ge=10, le=86_400)
    # the screen-pop shows only the last N digits of the caller's number (0: none)
    caller_visible_digits: int = Field(2, ge=0, le=6)
    history_days: int = Field(30, ge=1, le=366)
    history_max_calls: int = Field(20, ge=1, le=200)
    # until the wrap-up package supplies the center's list (agents/wrapup.py)
    pause_reasons: list[PauseReason] = Field(default_factory=lambda: list(DEFAULT_PAUSE_REASONS),
                                             min_length=1, max_length=20)

    @model_validator(mode="after")
    def _check(self) -> DesktopSettings:
        if self.session_absolute_seconds < self.session_idle_seconds:
            raise ValueError("session_absolute_seconds must be at least session_idle_seconds")
        ids = [r.id for r in self.pause_reasons]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"pause_reasons: duplicate id(s) {', '.join(dup)}")
        return self
