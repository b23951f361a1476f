"""`hotline`: run the app, check the config and the parts it needs, and the records tools."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from ari_app.config.loader import ConfigError, config_path, dump, load_config, summary


def _load(args: argparse.Namespace) -> Any:
    try:
        return load_config(args.config)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_run(args: argparse.Namespace) -> int:
    from ari_app.app import Hotline
    from ari_app.logs import setup_logging

    cfg = _load(args)
    setup_logging(args.log_level)
    try:
        app = Hotline(cfg)
    except (ValueError, ConfigError) as e:
        print(f"cannot start: {e}", file=sys.stderr)
        return 2
    return asyncio.run(app.serve())


def cmd_config_check(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.file or args.config)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    s = summary(cfg)
    print(f"{config_path(args.file or args.config)}: OK")
    print(f"  languages: {s['languages']}  entities: {s['entities']}  menus: {s['menus']}  "
          f"sites: {s['sites']}  agents: {s['agents']}")
    if s["agents"]:
        per_site = s["agents_per_site"].items()
        print("  agents per site: " + ", ".join(f"{k} {v}" for k, v in per_site))
        print("  agents per language: " +
              ", ".join(f"{k} {v}" for k, v in s["agents_per_language"].items()))
        for warning in s.get("warnings", []):
            print(f"  warning: {warning}")
    return 0


def cmd_config_dump(args: argparse.Namespace) -> int:
    cfg = _load(args)
    data = dump(cfg)
    if args.json:
        json.dump(data, sys.stdout, ensure_ascii=False, indent=1)
        print()
    else:
        import yaml

        print(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from ari_app.doctor import run_doctor

    cfg = _load(args)
    return asyncio.run(run_doctor(cfg, [Path(d) for d in args.asterisk_config]))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="hotline", description=__doc__)
    ap.add_argument("--config",
                    help="config file (default: $HOTLINE_CONFIG or config/hotline.yaml)")
    ap.add_argument("--log-level", default="INFO")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the ARI application")
    p.set_defaults(func=cmd_run)

    cfg = sub.add_parser("config", help="check, dump or render the configuration")
    csub = cfg.add_subparsers(dest="config_command", required=True)
    p = csub.add_parser("check", help="validate and summarise")
    p.add_argument("file", nargs="?")
    p.set_defaults(func=cmd_config_check)
    p = csub.add_parser("dump", help="the validated config, normalised")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_config_dump)

    p = sub.add_parser("doctor", help="check every part the app needs")
    p.add_argument("--asterisk-config", action="append", default=[], metavar="DIR",
                   help="a rendered Asterisk config directory to scan for plain-text secrets "
                        "(repeatable; warns with file and line)")
    p.set_defaults(func=cmd_doctor)

    for mod in ("ari_app.records.cli", "ari_app.reports.cli", "ari_app.agents.cli",
                "ari_app.deploy.cli", "ari_app.simulate.cli", "ari_app.desktop.cli"):
        try:
            module = __import__(mod, fromlist=["register"])
        except ImportError:
            continue
        module.register(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
