"""`hotline desktop passwd USER [--role supervisor]`: set a desktop password.

The password is read from standard input when it is not a terminal (one line),
or asked twice at a prompt; it never goes on the command line, where `ps` and
shell history would keep it. The hash goes into `desktop.credentials_file`
(mode 0600); the running app picks the change up at the next sign-in.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from ari_app.desktop.accounts import ROLES, AccountError, set_password


def cmd_passwd(args: argparse.Namespace) -> int:
    from ari_app.config.loader import ConfigError, load_config

    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    if cfg.desktop.credentials_file is None:
        print("config error: desktop.credentials_file is not set: name the file that "
              "holds the desktop's accounts (outside the repository)", file=sys.stderr)
        return 2
    path = cfg.resolve(cfg.desktop.credentials_file)
    if sys.stdin.isatty():
        password = getpass.getpass(f"new desktop password for {args.user}: ")
        if getpass.getpass("again: ") != password:
            print("the two passwords differ; nothing changed", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        account = set_password(path, args.user, password, args.role,
                               [a.id for a in cfg.agents])
    except AccountError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{account.user} ({account.role}): password set in {path}")
    return 0


def register(sub: Any) -> None:
    desk = sub.add_parser("desktop", help="the agents' desktop: accounts")
    dsub = desk.add_subparsers(dest="desktop_command", required=True)
    p = dsub.add_parser("passwd", help="set a user's desktop password (read from stdin "
                                       "or a prompt)")
    p.add_argument("user", help="an agent id, or a supervisor's user id with --role")
    p.add_argument("--role", choices=ROLES, default="agent")
    p.set_defaults(func=cmd_passwd)
