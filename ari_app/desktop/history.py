"""A caller's earlier calls, for the screen-pop: looked up in the archive by the
salted caller hash, never by the number.

The desk's server gets only the hash (from the pop) and asks the archive for
the calls of the last `history_days` whose caller hashes the same: on SQLite
through a hash function this connection registers, on PostgreSQL with its own
sha256(). The number never leaves the database, and no log line holds it.

The archive has no index on the hash, so the look-up reads the window's calls
(the `calls_arrived` index bounds it): about 330,000 rows for 30 days at
4 million calls a year. It runs in a worker thread, at most two at a time, with
results kept a minute per caller, and the pop is shown without waiting for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ari_app.config.models import HotlineConfig
from ari_app.desktop.screenpop import names_of
from ari_app.logs import get_logger
from ari_app.records.backend import POSTGRESQL, PgConnection, exists, parse_target
from ari_app.records.backend import password_file as backend_password_file
from ari_app.records.model import iso

log = get_logger("desktop.history")

CACHE_SECONDS = 60.0
CACHE_SIZE = 2000
COLUMNS = "call_id, arrived_at, entity, language, outcome, reason, reason_detail, note, agent"
SQLITE_QUERY = (
    f"SELECT {COLUMNS} FROM calls WHERE arrived_at >= ? AND arrived_at < ? "  # noqa: S608
    "AND caller != '' AND hotline_caller_hash(caller) = ? AND call_id != ? "
    "ORDER BY arrived_at DESC LIMIT ?"
)
PG_QUERY = (
    f"SELECT {COLUMNS} FROM calls WHERE arrived_at >= ? AND arrived_at < ? "  # noqa: S608
    "AND caller != '' AND substr(encode(sha256(convert_to(? || caller, 'UTF8')), 'hex'), "
    "1, 32) = ? AND call_id != ? ORDER BY arrived_at DESC LIMIT ?"
)


class HistoryUnavailable(Exception):
    """The archive cannot be read; the message says why (no number in it)."""


@dataclass(frozen=True)
class PastCall:
    call_id: str
    arrived_at: str
    entity: str | None
    language: str | None
    outcome: str | None
    reason: str | None
    reason_detail: str | None
    note: str | None
    agent: str | None


class CallerHistory:
    def __init__(self, cfg: HotlineConfig, salt: str) -> None:
        self.target = parse_target(cfg.archive.url)
        self.password_file = cfg.archive.password_file
        self.days = cfg.desktop.history_days
        self.limit = cfg.desktop.history_max_calls
        self._salt = salt
        self.names = names_of(cfg)
        self._cache: OrderedDict[tuple[str, str], tuple[float, list[PastCall]]] = OrderedDict()
        self._running = asyncio.Semaphore(2)

    async def lookup(self, hashed: str, exclude_call: str) -> list[PastCall]:
        """The caller's calls of the window, newest first (this call excluded)."""
        key = (hashed, exclude_call)
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        async with self._running:
            calls = await asyncio.to_thread(self.query, hashed, exclude_call)
        self._cache[key] = (time.monotonic(), calls)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return calls

    def query(self, hashed: str, exclude_call: str, now: datetime | None = None
              ) -> list[PastCall]:
        end = now or datetime.now(UTC)
        start = iso(end - timedelta(days=self.days))
        bounds = (start, iso(end + timedelta(minutes=1)))
        if not exists(self.target):
            raise HistoryUnavailable(f"no archive at {self.target.shown}")
        try:
            if self.target.dialect == POSTGRESQL:
                rows = self._pg(bounds, hashed, exclude_call)
            else:
                assert self.target.path is not None
                rows = self._sqlite(self.target.path, bounds, hashed, exclude_call)
        except HistoryUnavailable:
            raise
        except Exception as e:  # noqa: BLE001 - any database failure reads alike on the desk
            raise HistoryUnavailable(f"archive {self.target.shown}: {type(e).__name__}: "
                                     f"{str(e)[:160]}") from None
        return [PastCall(*row) for row in rows]

    def _sqlite(self, path: Path, bounds: tuple[str, str], hashed: str,
                exclude: str) -> list[Any]:
        salt = self._salt.encode()

        def caller_hash(caller: str | None) -> str:
            return hashlib.sha256(salt + (caller or "").encode()).hexdigest()[:32]

        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        try:
            db.execute("PRAGMA busy_timeout=5000")
            db.create_function("hotline_caller_hash", 1, caller_hash, deterministic=True)
            return db.execute(SQLITE_QUERY, (*bounds, hashed, exclude, self.limit)).fetchall()
        finally:
            db.close()

    def _pg(self, bounds: tuple[str, str], hashed: str, exclude: str) -> list[Any]:
        db = PgConnection(self.target.url, backend_password_file(self.password_file))
        try:
            cur = db.execute(PG_QUERY, (*bounds, self._salt, hashed, exclude, self.limit))
            return list(cur.fetchall())
        finally:
            db.close()


def as_json(calls: list[PastCall], names: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    return [{**c.__dict__, "entity_name": names.get(c.entity or "")} for c in calls]
