"""A local append-only file that holds records while Redis cannot take them.

Each record or event is one JSON line (records/stream.py says which is which),
written with a single write() on an O_APPEND descriptor and fsync'd before
`append` returns, so a record the app was told is "spooled" survives a power
cut. A crash in the middle of a write can leave a torn last line; draining
passes every line on verbatim and the archiver sends anything undecodable to
the dead-letter stream, so even that is kept.

Draining first renames the spool aside (atomically), so records appended
while a drain is running land in a fresh file and are never truncated away.
A drain that fails part-way leaves its file in place and the next drain sends
it again from the top: the archive keeps each event (and v1 record) once.

Several processes may share one spool (app instances whose configs sit in one
folder): appends and the rename aside also hold an flock on `<spool>.lock`,
so a rename never lands between another process's open and write (which
would put its record in a file already read, then deleted).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

DRAINING_SUFFIX = ".draining"


class Spool:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        # One process may append from several threads (asyncio.to_thread).
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """This thread alone in this process, and this process alone on this spool."""
        with self._lock:
            lock_fd = os.open(self.path.with_name(self.path.name + ".lock"),
                              os.O_WRONLY | os.O_CREAT, 0o640)
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(lock_fd)  # closing releases the flock

    def append(self, line: bytes) -> None:
        """Append one record line and make it durable. Raises OSError if it cannot."""
        if b"\n" in line:
            raise ValueError("a spool line must not contain a newline")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._exclusive():
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)

    def append_many(self, lines: list[bytes]) -> None:
        """Append several lines with one write and one fsync (a call's events)."""
        if any(b"\n" in line for line in lines):
            raise ValueError("a spool line must not contain a newline")
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = b"".join(line + b"\n" for line in lines)
        with self._exclusive():
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                view = memoryview(data)
                while view:  # a regular file takes it in one go; never leave half
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)

    def pending_files(self) -> list[Path]:
        """Files left by earlier drains first (oldest first), then a fresh batch.

        Renaming the live spool aside happens here, under the lock, so it never
        races an append.
        """
        if not self.path.parent.exists():
            return []
        with self._exclusive():
            if self.path.exists() and self.path.stat().st_size > 0:
                aside = self.path.with_name(f"{self.path.name}.{time.time_ns()}{DRAINING_SUFFIX}")
                os.replace(self.path, aside)
                _fsync_dir(self.path.parent)
        if not self.path.parent.exists():
            return []
        return sorted(self.path.parent.glob(f"{self.path.name}.*{DRAINING_SUFFIX}"))

    def has_pending(self) -> bool:
        if self.path.exists() and self.path.stat().st_size > 0:
            return True
        if not self.path.parent.exists():
            return False
        return any(self.path.parent.glob(f"{self.path.name}.*{DRAINING_SUFFIX}"))

    @staticmethod
    def lines(path: Path) -> Iterator[bytes]:
        with path.open("rb") as f:
            for raw in f:
                line = raw.rstrip(b"\r\n")
                if line.strip():
                    yield line

    @staticmethod
    def done(path: Path) -> None:
        path.unlink(missing_ok=True)
        _fsync_dir(path.parent)


def _fsync_dir(d: Path) -> None:
    # Makes the rename/unlink itself durable, not only the file contents.
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
