"""The agent desktop's settings (docs/agent-desktop.md).

The desktop is off until `credentials_file` names the file of sign-in accounts
(`hotline desktop passwd` writes it). Passwords never sit in the YAML: only
their argon2 hashes, in that file, outside the repository. The pause reasons an
agent picks from are the center's list in `agent_work.pause_reasons`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from ari_app.config.base import Strict


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

    @model_validator(mode="after")
    def _check(self) -> DesktopSettings:
        if self.session_absolute_seconds < self.session_idle_seconds:
            raise ValueError("session_absolute_seconds must be at least session_idle_seconds")
        return self
