"""An announcement, its validation, and how it travels through Redis (JSON)."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

GLOBAL = "global"
KINDS = ("text", "audio")


class AnnouncementError(ValueError):
    """Bad input from an operator; the message names the problem."""


class UnknownScope(AnnouncementError):
    """The scope is neither `global` nor a configured entity."""


@dataclass(frozen=True)
class Announcement:
    scope: str  # "global" (before the menu) or an entity id (before its queue)
    kind: str  # "text" (rendered by TTS) or "audio" (uploaded recordings)
    # language -> sha256 of the sound every caller in that language hears
    sounds: dict[str, str]
    seconds: dict[str, float]  # language -> the sound's length
    texts: dict[str, str] = field(default_factory=dict)  # what the operator wrote
    fallback: list[str] = field(default_factory=list)  # languages given the fallback's sound
    starts: float | None = None  # epoch seconds; None: from now
    ends: float | None = None  # epoch seconds; None: until cleared
    by: str = ""
    at: float = 0.0
    id: str = field(default_factory=lambda: secrets.token_hex(6))

    def active(self, now: float) -> bool:
        return (self.starts is None or self.starts <= now) and \
            (self.ends is None or now < self.ends)

    def dumps(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def loads(cls, raw: str | bytes) -> Announcement:
        data: dict[str, Any] = json.loads(raw)
        return cls(**data)

    def describe(self) -> dict[str, Any]:
        """What an operator reads (CLI --json, the API, audit events)."""
        return {
            "id": self.id, "scope": self.scope, "kind": self.kind,
            "languages": sorted(self.sounds), "fallback": self.fallback,
            "texts": self.texts, "seconds": self.seconds,
            "starts": iso(self.starts), "ends": iso(self.ends),
            "by": self.by, "at": iso(self.at),
        }


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def parse_time(raw: str | None, tz: str, what: str) -> float | None:
    """ISO 8601; a time without an offset is in the center's time zone."""
    if raw is None or raw == "":
        return None
    try:
        t = datetime.fromisoformat(raw)
    except ValueError:
        raise AnnouncementError(
            f"{what}: {raw!r} is not an ISO 8601 time (e.g. 2026-12-18T06:00 or "
            "2026-12-18T06:00+03:00)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=ZoneInfo(tz))
    return t.timestamp()


def check_window(starts: float | None, ends: float | None, now: float) -> None:
    if starts is not None and ends is not None and ends <= starts:
        raise AnnouncementError(f"ends ({iso(ends)}) must be after starts ({iso(starts)})")
    if ends is not None and ends <= now:
        raise AnnouncementError(f"ends ({iso(ends)}) is already past")


def check_texts(texts: dict[str, str], languages: list[str], max_chars: int) -> dict[str, str]:
    """Texts by language, stripped; refuses unknown languages, empty and long texts."""
    if not texts:
        raise AnnouncementError("no text given: at least one language needs a text")
    out: dict[str, str] = {}
    for lang, text in texts.items():
        if lang not in languages:
            raise AnnouncementError(
                f"unknown language {lang!r} (configured: {', '.join(languages)})")
        if not isinstance(text, str) or not any(ch.isalnum() for ch in text):
            raise AnnouncementError(f"the text for {lang!r} is empty")
        text = text.strip()
        if len(text) > max_chars:
            raise AnnouncementError(
                f"the text for {lang!r} is {len(text)} characters; at most {max_chars}")
        if any(not ch.isprintable() and ch not in "\n\t" for ch in text):
            raise AnnouncementError(f"the text for {lang!r} holds control characters")
        out[lang] = text
    return out


def check_scope(scope: str, entities: list[str]) -> str:
    if scope == GLOBAL or scope in entities:
        return scope
    raise UnknownScope(f"unknown entity {scope!r}: give {GLOBAL!r} or an entity id "
                       f"(e.g. {', '.join(entities[:4])})")


def check_by(by: str) -> str:
    by = (by or "").strip()
    if not by or len(by) > 64 or not by.isprintable():
        raise AnnouncementError("'by' (who makes the change) must be 1-64 printable characters")
    return by
