"""Each app instance's copy of the announcements, and their sound files on the
disk its Asterisk reads.

A call asks `playable(scope, language)`: a dictionary look-up, no Redis. The copy
is refreshed when another process publishes a change (pub/sub), and the version
key is read every `poll_seconds` in case a publish was missed (a Redis blip).
Files are named by their content's hash, so a file once written never changes
under a playback; files no announcement uses are removed after a grace period,
since a call may have just been handed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from redis.exceptions import RedisError

from ari_app.announcements.model import Announcement
from ari_app.announcements.store import AnnouncementStore
from ari_app.logs import get_logger

log = get_logger("announcements")
KEEP_UNUSED_SECONDS = 900.0


@dataclass(frozen=True)
class Playable:
    announcement: Announcement
    lang: str
    media: str  # the playback URI: sound:<asterisk_dir>/ann-<sha>
    seconds: float


class AnnouncementCache:
    def __init__(self, store: AnnouncementStore, local_dir: Path, asterisk_dir: Path,
                 *, poll_seconds: float = 5.0) -> None:
        self.store = store
        self.local_dir = local_dir
        self.asterisk_dir = asterisk_dir
        self.poll_seconds = poll_seconds
        self.version = -1
        self._current: dict[str, Announcement] = {}
        self._files: set[str] = set()  # shas whose file is on disk
        self._changed = asyncio.Event()
        self._unused_since: dict[str, float] = {}  # file stem -> when it fell out of use

    @staticmethod
    def file_name(sha: str) -> str:
        return f"ann-{sha[:32]}"

    def playable(self, scope: str, lang: str, now: float | None = None) -> Playable | None:
        ann = self._current.get(scope)
        if ann is None or not ann.active(time.time() if now is None else now):
            return None
        sha = ann.sounds.get(lang)
        if sha is None or sha not in self._files:
            return None
        return Playable(ann, lang, f"sound:{self.asterisk_dir}/{self.file_name(sha)}",
                        ann.seconds.get(lang, 0.0))

    async def refresh(self) -> bool:
        """Load what Redis holds if its version moved; True if the copy changed."""
        version = await self.store.version()
        if version == self.version:
            return False
        current = await self.store.current()
        files = await self._materialise(current)
        self._current, self._files, self.version = current, files, version
        log.info("announcements.loaded", version=version,
                 scopes=sorted(current), files=len(files))
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the copy current until `stop`: pub/sub, with a poll as a safety net."""
        listener = asyncio.create_task(self._listen(stop), name="announcements-listen")
        try:
            while not stop.is_set():
                try:
                    await self.refresh()
                except (RedisError, OSError) as e:
                    log.warning("announcements.refresh_failed", error=str(e)[:200])
                self._changed.clear()
                await asyncio.to_thread(self._sweep)
                waits = {asyncio.ensure_future(self._changed.wait()),
                         asyncio.ensure_future(stop.wait())}
                _, pending = await asyncio.wait(waits, timeout=self.poll_seconds,
                                                return_when=asyncio.FIRST_COMPLETED)
                for p in pending:
                    p.cancel()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _listen(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with self.store.redis.pubsub() as ps:
                    await ps.subscribe(self.store.channel)
                    while not stop.is_set():
                        msg = await ps.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if msg is not None:
                            self._changed.set()
            except (RedisError, OSError) as e:
                log.warning("announcements.pubsub_lost", error=str(e)[:200])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def _materialise(self, current: dict[str, Announcement]) -> set[str]:
        """Write every sound the announcements use that is not on disk yet."""
        have: set[str] = set()
        for ann in current.values():
            for lang, sha in ann.sounds.items():
                if sha in have:
                    continue
                path = self.local_dir / f"{self.file_name(sha)}.wav"
                if not path.exists():
                    data = await self.store.audio(sha)
                    if data is None:
                        log.warning("announcements.sound_missing", scope=ann.scope,
                                    lang=lang, sha=sha)
                        continue
                    await asyncio.to_thread(_write, path, data)
                have.add(sha)
        return have

    def _sweep(self) -> None:
        if not self.local_dir.is_dir():
            return
        keep = {self.file_name(sha) for a in self._current.values() for sha in a.sounds.values()}
        now = time.time()
        for f in self.local_dir.glob("ann-*.wav"):
            if f.stem in keep:
                self._unused_since.pop(f.stem, None)
                continue
            since = self._unused_since.setdefault(f.stem, now)
            if now - since > KEEP_UNUSED_SECONDS:
                with contextlib.suppress(OSError):
                    f.unlink()
                self._unused_since.pop(f.stem, None)


def _write(path: Path, data: bytes) -> None:
    """Atomically, readable by Asterisk (which may run as another user)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
