"""`hotline announce set|clear|list`: runtime announcements from the command line.

    hotline announce set global --text en="The service is closed for the holiday." \\
        --text ar="..." [--starts 2026-12-18T00:00] [--ends 2026-12-19T00:00] [--by NAME]
    hotline announce set phcc --audio ar=msg-ar.wav --audio en=msg-en.wav
    hotline announce clear global [--by NAME]
    hotline announce list [--audit] [--limit N] [--json]

It talks to the config's Redis directly (as the app does); every running app
instance plays the change within seconds. Exit codes: 0 ok, 1 refused or
failed (the reason is printed), 2 bad arguments or config.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import socket
import sys
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from ari_app.announcements.model import AnnouncementError
from ari_app.announcements.service import AnnouncementService, Change
from ari_app.announcements.store import AnnouncementStore
from ari_app.config.loader import ConfigError, load_config
from ari_app.config.models import HotlineConfig
from ari_app.logs import setup_logging
from ari_app.prompts.render import RenderError


def register(sub: Any) -> None:
    p = sub.add_parser("announce", help="set, clear or list runtime announcements")
    asub = p.add_subparsers(dest="announce_command", required=True)
    s = asub.add_parser("set", help="set the announcement of 'global' or an entity")
    s.add_argument("scope", help="'global' (before the menu) or an entity id (before its queue)")
    s.add_argument("--text", action="append", default=[], metavar="LANG=TEXT",
                   help="the text in one language (repeatable); spoken by the prompts' TTS")
    s.add_argument("--audio", action="append", default=[], metavar="LANG=FILE",
                   help="a WAV recording for one language (repeatable), instead of texts")
    s.add_argument("--starts", help="ISO 8601 time it starts (default: now; no offset: "
                                    "the center's time zone)")
    s.add_argument("--ends", help="ISO 8601 time it ends (default: when cleared)")
    s.add_argument("--by", default=_user(), help="who makes the change (default: your login)")
    s.set_defaults(func=cmd_set)
    c = asub.add_parser("clear", help="remove the announcement of 'global' or an entity")
    c.add_argument("scope")
    c.add_argument("--by", default=_user())
    c.set_defaults(func=cmd_clear)
    ls = asub.add_parser("list", help="what is set (or, with --audit, every change)")
    ls.add_argument("--audit", action="store_true", help="the latest changes: who, when, what")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _source() -> str:
    return f"cli {_user()}@{socket.gethostname()}"


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        lang, sep, value = item.partition("=")
        if not sep or not lang.strip():
            raise AnnouncementError(f"--{what} {item!r}: expected LANG={what.upper()}")
        if lang.strip() in out:
            raise AnnouncementError(f"--{what}: language {lang.strip()!r} given twice")
        out[lang.strip()] = value
    return out


def _run(args: argparse.Namespace, job: Any) -> int:
    try:
        cfg: HotlineConfig = load_config(args.config)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    setup_logging(args.log_level)  # log lines to stderr: stdout is the command's answer

    async def go() -> int:
        import redis.asyncio as aioredis

        from ari_app.config.secure import redis_kwargs

        r = aioredis.Redis.from_url(cfg.redis.url, **redis_kwargs(cfg.redis, cfg.source),
                                    socket_timeout=10.0, socket_connect_timeout=5.0)
        try:
            store = AnnouncementStore(r, key_prefix=cfg.redis.key_prefix,
                                      audit_keep=cfg.announcements.audit_keep)
            out: int = await job(AnnouncementService(cfg, store))
            return out
        finally:
            await r.aclose()

    try:
        return asyncio.run(go())
    except AnnouncementError as e:
        print(f"announce: {e}", file=sys.stderr)
        return 1
    except RenderError as e:
        print(f"announce: {e}", file=sys.stderr)
        return 1
    except (RedisError, OSError) as e:
        print(f"announce: Redis at {cfg.redis.url} unreachable: {e}", file=sys.stderr)
        return 1


def _read_audio(items: list[str]) -> dict[str, bytes]:
    audio: dict[str, bytes] = {}
    for lang, name in _pairs(items, "audio").items():
        try:
            audio[lang] = Path(name).read_bytes()
        except OSError as e:
            raise AnnouncementError(f"--audio {lang}={name}: {e.strerror}") from None
    return audio


def cmd_set(args: argparse.Namespace) -> int:
    try:
        texts = _pairs(args.text, "text")
        audio = _read_audio(args.audio)
    except AnnouncementError as e:
        print(f"announce: {e}", file=sys.stderr)
        return 1

    async def job(svc: AnnouncementService) -> int:
        ann, version = await svc.set(Change(
            scope=args.scope, by=args.by, source=_source(), texts=texts or None,
            audio=audio or None, starts=args.starts, ends=args.ends))
        silent = [c for c in svc.languages if c not in ann.sounds]
        print(f"set {ann.scope} ({ann.kind}, id {ann.id}, version {version}): "
              f"{', '.join(sorted(ann.sounds))}")
        if ann.fallback:
            print(f"  {', '.join(ann.fallback)}: hear the "
                  f"{svc.settings.fallback_language} text (fallback_language)")
        if silent:
            print(f"  {', '.join(silent)}: no text, so callers in these languages hear nothing")
        return 0

    return _run(args, job)


def cmd_clear(args: argparse.Namespace) -> int:
    async def job(svc: AnnouncementService) -> int:
        old, version = await svc.clear(args.scope, args.by, _source())
        if old is None:
            print(f"announce: no announcement is set for {args.scope!r} (audited anyway)",
                  file=sys.stderr)
            return 1
        print(f"cleared {old.scope} (id {old.id}, version {version})")
        return 0

    return _run(args, job)


def cmd_list(args: argparse.Namespace) -> int:
    async def job(svc: AnnouncementService) -> int:
        if args.audit:
            rows = await svc.store.audit(max(1, min(args.limit, 10_000)))
            if args.json:
                print(json.dumps(rows, ensure_ascii=False, indent=1))
            for row in [] if args.json else rows:
                print(f"{row['at']}  {row['action']:<5} {row['scope']:<12} by {row['by']} "
                      f"({row['source']})  {json.dumps(row['what'], ensure_ascii=False)}")
            return 0
        listing = await svc.listing()
        if args.json:
            print(json.dumps(listing, ensure_ascii=False, indent=1))
            return 0
        if not listing["announcements"]:
            print(f"no announcements (version {listing['version']})")
        for a in listing["announcements"]:
            when = f"{a['starts'] or 'now'} .. {a['ends'] or 'until cleared'}"
            print(f"{a['scope']:<12} {a['kind']:<5} {a['state']:<9}"
                  f"  {when}  by {a['by']} at {a['at']}  languages {','.join(a['languages'])}")
            for lang, text in sorted(a["texts"].items()):
                print(f"    {lang}: {text}")
        return 0

    return _run(args, job)
