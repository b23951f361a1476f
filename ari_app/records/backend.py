"""Where the archive lives: an SQLite file (the embedded default) or a PostgreSQL
database, chosen by URL.

* `sqlite:///var/archive.sqlite3`, `sqlite:////abs/path.sqlite3`, or a plain path
  (what `--db` always took): one SQLite file.
* `postgresql://user@host:port/dbname[?options]` (or `postgres://`): psycopg 3.

The archive's SQL is written once, in SQLite's parameter style (`?` and
`:name`); `PgConnection` rewrites the placeholders for psycopg, so the same
statements (and the tests' own queries) run on both. What genuinely differs
(types, INSERT OR IGNORE, SQLite's INDEXED BY, report aggregates) is chosen per
dialect in schema.py and reports/compute.py.

A password never travels in the URL (it would show in `ps`, shell history and
logs): it comes from a secret file (`HOTLINE_ARCHIVE_PASSWORD_FILE`, or the
config's `archive.password_file`) or from libpq's own PGPASSFILE / ~/.pgpass.
A URL carrying one is refused. Messages name the URL without user info.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
PASSWORD_FILE_ENV = "HOTLINE_ARCHIVE_PASSWORD_FILE"  # noqa: S105 - a variable name


class ArchiveError(Exception):
    pass


@dataclass(frozen=True)
class Target:
    dialect: str  # SQLITE or POSTGRESQL
    path: Path | None = None  # SQLite's file
    url: str = ""  # PostgreSQL's conninfo URL, as given

    @property
    def shown(self) -> str:
        """For messages and logs: never user info."""
        return str(self.path) if self.path is not None else redact(self.url)


def parse_target(spec: str | os.PathLike[str]) -> Target:
    s = os.fspath(spec)
    if s.startswith(("postgresql://", "postgres://")):
        return Target(POSTGRESQL, url=s)
    if s.startswith("sqlite:"):
        rest = s[len("sqlite:"):]
        if not rest.startswith("///"):
            raise ArchiveError(f"{s}: an SQLite URL is sqlite:///relative/path or "
                               "sqlite:////absolute/path")
        return Target(SQLITE, path=Path(unquote(rest[3:])))
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", s):
        raise ArchiveError(f"{redact(s)}: unknown archive URL scheme "
                           "(sqlite:///path, postgresql://user@host:port/db, or a path)")
    return Target(SQLITE, path=Path(s))


def redact(url: str) -> str:
    """The URL without its user info (user name and any password)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable archive URL)"
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=host, query="", fragment="").geturl()


def exists(target: Target) -> bool:
    """Whether there is an archive to read. A server is asked when opened."""
    return target.path is None or target.path.exists() or str(target.path) == ":memory:"


# ---------------------------------------------------------------- SQLite --

def connect_sqlite(path: Path) -> sqlite3.Connection:
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    # The archiver runs SQLite in worker threads one call at a time, so the
    # connection is shared but never used concurrently.
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=10000")
    db.execute("PRAGMA temp_store=MEMORY")
    db.execute("PRAGMA cache_size=-65536")  # 64 MiB: enough for a year's GROUP BY
    return db


# ------------------------------------------------------------ PostgreSQL --

_TOKEN = re.compile(r"""'(?:[^']|'')*'|"[^"]*"|::|\?|:[A-Za-z_]\w*|%""")


@lru_cache(maxsize=1024)
def to_pg(sql: str) -> str:
    """`?` -> `%s`, `:name` -> `%(name)s`, `%` -> `%%`; literals and `::` casts kept."""

    def sub(m: re.Match[str]) -> str:
        t = m.group(0)
        if t[0] == "'":
            return t.replace("%", "%%")
        if t[0] == '"' or t == "::":
            return t
        if t == "?":
            return "%s"
        if t == "%":
            return "%%"
        return f"%({t[1:]})s"

    return _TOKEN.sub(sub, sql)


class PgConnection:
    """A psycopg connection that takes the archive's SQLite-style SQL.

    Autocommit, so `BEGIN`/`COMMIT` are explicit as on SQLite (archive._Tx).
    A connection lost between transactions is reopened at the next BEGIN."""

    dialect = POSTGRESQL

    def __init__(self, url: str, password_file: Path | None = None) -> None:
        self.url = url
        self.password_file = password_file
        self.conn = self._connect()

    def _connect(self) -> Any:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(self.url)
        except psycopg.ProgrammingError as e:
            raise ArchiveError(f"{redact(self.url)}: not a PostgreSQL URL: {e}") from None
        if params.get("password"):
            raise ArchiveError(
                f"{redact(self.url)}: the URL carries a password; put it in a secret file "
                f"({PASSWORD_FILE_ENV} or the config's archive.password_file) or in PGPASSFILE")
        extra: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in params:
            extra["connect_timeout"] = 10
        if self.password_file is not None:
            try:
                extra["password"] = self.password_file.read_text(encoding="utf-8").strip()
            except OSError as e:
                raise ArchiveError(f"archive password file {self.password_file}: "
                                   f"{e.strerror}") from None
        try:
            return psycopg.connect(self.url, **extra)
        except psycopg.Error as e:
            # libpq's messages name host, user and database, never the password.
            raise ArchiveError(f"{redact(self.url)}: cannot connect: "
                               f"{str(e).strip()}") from None

    def ensure_open(self) -> None:
        if self.conn.closed or self.conn.broken:
            self.conn = self._connect()

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        cur = self.conn.cursor()
        cur.execute(to_pg(sql), params)
        return cur

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(to_pg(sql), rows)

    def close(self) -> None:
        self.conn.close()


def password_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The archive's password file: given, else $HOTLINE_ARCHIVE_PASSWORD_FILE, else none
    (libpq then looks in PGPASSFILE or ~/.pgpass)."""
    p = explicit or os.environ.get(PASSWORD_FILE_ENV)
    return Path(p) if p else None


Connection = sqlite3.Connection | PgConnection


def dialect_of(db: Connection) -> str:
    return POSTGRESQL if isinstance(db, PgConnection) else SQLITE


def errors(dialect: str) -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    """(transient, any database error) for the dialect: a transient error is about the
    database (down, locked, full), not an entry, so the entry must not be dead-lettered."""
    if dialect == POSTGRESQL:
        import psycopg

        return (psycopg.OperationalError, psycopg.InterfaceError), (psycopg.Error,)
    return (sqlite3.OperationalError,), (sqlite3.Error,)
