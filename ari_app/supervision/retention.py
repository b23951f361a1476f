"""Recordings are kept `retention_days`, then deleted by this job; each deletion
is a late fact on its call (`recording_deleted`, with the time), so the archive
shows that the call was recorded and that the file is gone by policy.

The job runs in every app instance, on the recordings of the Asterisk server
that instance drives (its `recording.directory`). A file's age is its
modification time: Asterisk stops writing when the call ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from ari_app.config.supervision import RecordingSettings
from ari_app.logs import get_logger
from ari_app.records.events import RecordEvent, late_fact
from ari_app.records.model import utcnow

log = get_logger("supervision.retention")
CALL_ID = re.compile(r"^[0-9a-f]{8,64}$")
EXTENSIONS = (".wav", ".gsm")
Publish = Callable[[list[RecordEvent]], Awaitable[object]]


def expired(directory: Path, days: float, now: float | None = None) -> list[Path]:
    """Recordings under `directory` last written more than `days` ago, oldest first."""
    limit = (time.time() if now is None else now) - days * 86_400
    out: list[tuple[float, Path]] = []
    if not directory.is_dir():
        return []
    for path in directory.iterdir():
        if path.suffix not in EXTENSIONS or not path.is_file():
            continue
        with contextlib.suppress(FileNotFoundError):
            mtime = path.stat().st_mtime
            if mtime < limit:
                out.append((mtime, path))
    return [p for _, p in sorted(out)]


def purge(settings: RecordingSettings, now: float | None = None) -> list[tuple[str, str]]:
    """Delete the expired recordings; returns (call id, deleted at) of each deleted
    file whose name is a call id (a stray file is deleted and logged, no event)."""
    deleted: list[tuple[str, str]] = []
    for path in expired(settings.directory / settings.subdir, settings.retention_days, now):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as e:
            log.warning("retention.delete_failed", file=str(path), error=str(e))
            continue
        log.info("retention.deleted", file=str(path))
        if CALL_ID.match(path.stem):
            deleted.append((path.stem, utcnow()))
    return deleted


class RetentionJob:
    def __init__(self, settings: RecordingSettings, publish: Publish) -> None:
        self.settings = settings
        self.publish = publish
        self.deleted = 0

    async def once(self, now: float | None = None) -> int:
        done = await asyncio.to_thread(purge, self.settings, now)
        if done:
            await self.publish([
                late_fact(call_id, "recording_deleted", "retention",
                          {"recording_deleted_at": at}) for call_id, at in done])
        self.deleted += len(done)
        return len(done)

    async def run(self, stop: asyncio.Event) -> None:
        """Purge now and every `retention_check_seconds` until `stop`."""
        while not stop.is_set():
            try:
                await self.once()
            except Exception as e:  # noqa: BLE001 - the next round tries again
                log.warning("retention.failed", error=repr(e)[:300])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.retention_check_seconds)
