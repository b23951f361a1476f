"""Setting and clearing announcements: checks, rendering, storing, auditing.

The CLI and the HTTP API both come through here, so both refuse the same bad
input with the same words.

A language without a text: with `announcements.fallback_language` configured
(and given a text) its callers hear the fallback language's rendering; without,
they hear nothing. Nothing is the default because espeak-ng reading a text in
another language's voice is unintelligible, and a message in a language the
caller did not choose is noise to most of them; a center whose callers all
understand, say, Arabic configures `fallback_language: ar`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from ari_app.announcements.model import (
    Announcement,
    AnnouncementError,
    check_by,
    check_scope,
    check_texts,
    check_window,
    parse_time,
)
from ari_app.announcements.render import Sound, check_tools, convert, speak
from ari_app.announcements.store import AnnouncementStore
from ari_app.config.models import HotlineConfig
from ari_app.logs import get_logger

log = get_logger("announcements")


@dataclass(frozen=True)
class Change:
    """What an operator asked for, before any check."""

    scope: str
    by: str
    source: str  # where the change came from: "cli user@host", "api 127.0.0.1"
    texts: dict[str, str] | None = None
    audio: dict[str, bytes] | None = None
    starts: str | None = None
    ends: str | None = None


class AnnouncementService:
    def __init__(self, cfg: HotlineConfig, store: AnnouncementStore) -> None:
        self.cfg = cfg
        self.settings = cfg.announcements
        self.store = store
        self.languages = [lang.code for lang in cfg.languages]
        self.entities = [e.id for e in cfg.entities]

    def check_scope(self, scope: str) -> str:
        return check_scope(scope, self.entities)

    async def set(self, change: Change) -> tuple[Announcement, int]:
        """Check, render and store; returns the announcement and the new version."""
        scope = self.check_scope(change.scope)
        by = check_by(change.by)
        now = time.time()
        starts = parse_time(change.starts, self.cfg.timezone, "starts")
        ends = parse_time(change.ends, self.cfg.timezone, "ends")
        check_window(starts, ends, now)
        if bool(change.texts) == bool(change.audio):
            raise AnnouncementError("give either texts or recordings (audio), one of the two")
        if change.texts:
            texts = check_texts(change.texts, self.languages, self.settings.max_text_chars)
            made = await self._speak(texts)
            kind = "text"
        else:
            assert change.audio is not None
            texts = {}
            made = await self._convert(change.audio)
            kind = "audio"
        sounds, fallback = self._per_language(made)
        ann = Announcement(scope=scope, kind=kind, texts=texts,
                           sounds={lang: s.sha for lang, s in sounds.items()},
                           seconds={lang: round(s.seconds, 2) for lang, s in sounds.items()},
                           fallback=fallback, starts=starts, ends=ends, by=by, at=now)
        version = await self.store.put(ann, {s.sha: s.data for s in made.values()},
                                       change.source)
        log.info("announcement.set", scope=scope, id=ann.id, by=by, source=change.source,
                 kind=kind, languages=sorted(ann.sounds), fallback=fallback, version=version)
        return ann, version

    async def clear(self, scope: str, by: str, source: str) -> tuple[Announcement | None, int]:
        scope = self.check_scope(scope)
        by = check_by(by)
        old, version = await self.store.clear(scope, by, source)
        log.info("announcement.cleared", scope=scope, by=by, source=source,
                 id=old.id if old else None, version=version)
        return old, version

    async def listing(self) -> dict[str, Any]:
        now = time.time()
        current = await self.store.current()
        return {"version": await self.store.version(), "announcements": [
            dict(a.describe(), active=a.active(now), state=_state(a, now))
            for _, a in sorted(current.items())]}

    def _per_language(self, made: dict[str, Sound]) -> tuple[dict[str, Sound], list[str]]:
        out = dict(made)
        fallback: list[str] = []
        fb = self.settings.fallback_language
        for lang in self.languages:
            if lang not in out and fb is not None and fb in made:
                out[lang] = made[fb]
                fallback.append(lang)
        return out, fallback

    async def _speak(self, texts: dict[str, str]) -> dict[str, Sound]:
        voices = {lang: self.cfg.language(lang).voice for lang in texts}
        await asyncio.to_thread(check_tools, sorted(set(voices.values())))
        # espeak-ng and sox are processes: run them off the event loop, two at a time
        gate = asyncio.Semaphore(2)

        async def one(lang: str) -> tuple[str, Sound]:
            async with gate:
                return lang, await asyncio.to_thread(speak, voices[lang], texts[lang])

        return dict(await asyncio.gather(*(one(lang) for lang in texts)))

    async def _convert(self, audio: dict[str, bytes]) -> dict[str, Sound]:
        out: dict[str, Sound] = {}
        for lang, raw in audio.items():
            if lang not in self.languages:
                raise AnnouncementError(
                    f"unknown language {lang!r} (configured: {', '.join(self.languages)})")
            out[lang] = await asyncio.to_thread(
                convert, lang, raw, self.settings.max_audio_bytes,
                self.settings.max_audio_seconds)
        return out


def _state(ann: Announcement, now: float) -> str:
    """active; scheduled (its start is ahead); ended (its end is past: it stays
    listed, and silent, until cleared or replaced)."""
    if ann.active(now):
        return "active"
    return "ended" if ann.ends is not None and ann.ends <= now else "scheduled"
