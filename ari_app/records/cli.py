"""`hotline records export|import` and `hotline archiver`.

Handlers return an exit code and print one readable line on failure rather
than a traceback: 0 ok, 1 refused/failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from datetime import date
from pathlib import Path
from typing import TextIO

from ari_app.records.archive import Archive, ArchiveError
from ari_app.records.backend import PASSWORD_FILE_ENV, exists, parse_target

DEFAULT_DB = "var/archive.sqlite3"
DB_HELP = ("archive: a path, sqlite:///path or postgresql://user@host:port/db "
           "(env HOTLINE_ARCHIVE, else the config's archive.url)")


def default_db() -> str | None:
    return os.environ.get("HOTLINE_ARCHIVE")


def add_db_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=default_db(), help=DB_HELP)
    p.add_argument("--db-password-file", metavar="FILE",
                   help=f"PostgreSQL password, one line (env {PASSWORD_FILE_ENV}, else the "
                        "config's archive.password_file, else libpq's PGPASSFILE)")


def resolve_db(args: argparse.Namespace) -> tuple[str, str | None]:
    """(archive path or URL, password file or None): the flags, the environment,
    then the config (when one loads), then var/archive.sqlite3."""
    spec, pw = getattr(args, "db", None), getattr(args, "db_password_file", None)
    pw = pw or os.environ.get(PASSWORD_FILE_ENV)
    if spec and pw:
        return spec, pw
    try:
        from ari_app.config import load_config

        cfg = load_config(getattr(args, "config", None))
    except Exception:  # noqa: BLE001 - no readable config: the defaults
        return spec or DEFAULT_DB, pw
    if not pw and cfg.archive.password_file is not None:
        pw = str(cfg.resolve(cfg.archive.password_file))
    return spec or cfg.archive.url, pw


def open_archive(args: argparse.Namespace, *, must_exist: bool) -> Archive | None:
    """The archive the arguments name; None (after saying why) if there is none."""
    spec, pw = resolve_db(args)
    try:
        target = parse_target(spec)
        if must_exist and not exists(target):
            _err(f"{target.shown}: no archive there")
            return None
        return Archive(spec, password_file=pw)
    except ArchiveError as e:
        _err(str(e))
        return None


def default_tz() -> str | None:
    """Month and day boundaries are local; the archive itself is all UTC.

    None means: the config's `timezone` (Asia/Qatar unless set), resolved when
    the command runs, so reports cut days where the ministry does."""
    return os.environ.get("HOTLINE_TZ")


def resolve_tz(args: argparse.Namespace) -> str:
    if getattr(args, "tz", None):
        return str(args.tz)
    try:
        from ari_app.config import load_config

        return load_config(getattr(args, "config", None)).timezone
    except Exception:  # noqa: BLE001 - no readable config: fall back to UTC
        return "UTC"


def _date(s: str) -> date:
    try:
        return date.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {s!r}") from None


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    rec = sub.add_parser("records", help="export or import archived call records")
    rsub = rec.add_subparsers(dest="records_cmd", required=True)

    ex = rsub.add_parser("export", help="write archived records for a date range")
    ex.add_argument("--from", dest="date_from", type=_date, required=True, help="first day")
    ex.add_argument("--to", dest="date_to", type=_date, required=True, help="last day (inclusive)")
    ex.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    ex.add_argument("--events", action="store_true",
                    help="write the calls' events (JSONL) instead of their folded records")
    ex.add_argument("--out", help="file to write (default: standard output)")
    ex.add_argument("--tz", default=default_tz(), help="time zone of the dates (env HOTLINE_TZ)")
    add_db_arguments(ex)
    ex.set_defaults(func=cmd_export)

    im = rsub.add_parser("import", help="import a JSONL file of records or events, all or nothing")
    im.add_argument("file", help="records (schema 1 or 2) and/or events, one JSON object a line")
    add_db_arguments(im)
    im.set_defaults(func=cmd_import)

    ar = sub.add_parser("archiver", help="move call records from Redis into the archive")
    add_db_arguments(ar)
    ar.set_defaults(func=cmd_archiver)


def _err(msg: str) -> None:
    print(f"hotline: {msg}", file=sys.stderr)


def cmd_export(args: argparse.Namespace) -> int:
    from ari_app.records.io import export, export_events
    from ari_app.records.period import Period

    if args.date_to < args.date_from:
        _err("--to is before --from")
        return 2
    if args.events and args.format != "jsonl":
        _err("--events writes JSONL only (one event a line); drop --format csv")
        return 2
    args.tz = resolve_tz(args)
    try:
        start, end = Period(args.date_from, args.date_to, args.tz).utc_bounds()
    except (KeyError, ValueError) as e:
        _err(f"unknown time zone {args.tz!r}: {e}")
        return 2
    def write(archive: Archive, out: TextIO) -> int:
        if args.events:
            return export_events(archive, start, end, out)
        return export(archive, start, end, args.format, out)

    opened = open_archive(args, must_exist=True)
    if opened is None:
        return 1
    failures: tuple[type[Exception], ...] = (ArchiveError, OSError, *opened.db_errors)
    try:
        with opened as archive:
            if args.out:
                with open(args.out, "w", encoding="utf-8", newline="") as f:
                    n = write(archive, f)
            else:
                n = write(archive, sys.stdout)
    except failures as e:
        _err(str(e))
        return 1
    print(f"exported {n} {'events' if args.events else 'records'}", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from ari_app.records.io import import_jsonl

    if not Path(args.file).is_file():
        _err(f"{args.file}: no such file")
        return 1
    opened = open_archive(args, must_exist=False)
    if opened is None:
        return 1
    failures: tuple[type[Exception], ...] = (ArchiveError, OSError, *opened.db_errors)
    try:
        with opened as archive:
            res = import_jsonl(archive, args.file)
    except failures as e:
        _err(str(e))
        return 1
    if res.refused:
        _err(f"{args.file}: refused, nothing imported: {len(res.bad)} bad line(s) of {res.lines}")
        for b in res.bad:
            print(f"  line {b.line}: {b.reason}", file=sys.stderr)
        return 1
    print(f"imported {res.imported}, duplicates {res.duplicates}, lines {res.lines}")
    return 0


def cmd_archiver(args: argparse.Namespace) -> int:
    from ari_app.config import ConfigError, load_config
    from ari_app.config.redis_client import redis_client
    from ari_app.records.archiver import run

    try:
        cfg = load_config(getattr(args, "config", None))
        # built here so that a bad secret file is a clear error before anything starts
        client = redis_client(cfg.redis, cfg.source, socket_connect_timeout=5,
                              socket_timeout=30)
    except (ConfigError, ValueError) as e:
        _err(str(e))
        return 1
    spec, pw = resolve_db(args)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await run(cfg.redis.url, cfg.redis.key_prefix, spec, stop, password_file=pw,
                  client=client)

    try:
        asyncio.run(main())
    except ArchiveError as e:
        _err(str(e))
        return 1
    return 0
