"""`hotline config render` and `hotline config verify-asterisk`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ari_app.config.loader import ConfigError

DEFAULT_SECRETS = Path("var/secrets")  # per site below it; gitignored in the repo


def _err(msg: str) -> None:
    print(f"hotline: {msg}", file=sys.stderr)


def _secrets_root(args: argparse.Namespace) -> Path:
    env = os.environ.get("HOTLINE_SECRETS_DIR")
    return Path(args.secrets or env or DEFAULT_SECRETS)


def cmd_render(args: argparse.Namespace) -> int:
    from ari_app.deploy.render import DeployError, load, render_site

    try:
        cfg, deploy = load(args.config)
    except (ConfigError, DeployError) as e:
        _err(f"config error: {e}")
        return 2
    sites = [s.id for s in cfg.sites] if args.site == "all" else [args.site]
    out = Path(args.out)
    root = _secrets_root(args)
    for site in sites:
        # one site: --secrets is that site's directory; all sites: one below it each
        explicit = args.secrets or os.environ.get("HOTLINE_SECRETS_DIR")
        secrets_dir = root if (explicit and args.site != "all") else root / site
        dest = out / site if args.site == "all" else out
        try:
            res = render_site(cfg, deploy, site, dest, secrets_dir)
        except DeployError as e:
            _err(str(e))
            return 2
        p = res.plan
        print(f"{site}: rendered {len(res.files)} files into {dest} "
              f"(secrets in {secrets_dir}, mode 0600)")
        print(f"  SIP {p.server.bind}:{p.server.sip_port}  ARI :{p.server.http_port}  "
              f"AMI :{p.server.ami_port}  AGI :{p.server.agi_port}  "
              f"RTP {p.server.rtp_start}-{p.server.rtp_end}")
        print(f"  endpoints {len(p.endpoints)}: carrier, {len(p.agents)} agents, "
              f"{len(p.peers)} inter-site trunks ({', '.join(x.site for x in p.peers) or '-'})")
        print(f"  numbers: {', '.join(p.numbers)}; carrier match {', '.join(p.carrier.match)}")
        for note in p.notes:
            print(f"  note: {note}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from ari_app.deploy.render import MANIFEST, DeployError, load, plan_site
    from ari_app.deploy.verify import Expected, VerifyError, verify

    rendered = Path(args.dir)
    site = args.site
    manifest = rendered / MANIFEST
    if site is None and manifest.exists():
        site = json.loads(manifest.read_text(encoding="utf-8")).get("site")
    try:
        cfg, deploy = load(args.config)
        plan = plan_site(cfg, deploy, site)
    except (ConfigError, DeployError) as e:
        _err(f"config error: {e}")
        return 2
    try:
        res = verify(rendered, Expected.from_plan(plan), rootfs=Path(args.rootfs),
                     timeout=args.timeout, keep=args.keep)
    except VerifyError as e:
        print(f"FAIL {rendered}: {e}")
        return 1
    found = ", ".join(f"{k} {v}" for k, v in res.found.items())
    label = site or "all sites (rig)"
    if res.ok:
        print(f"OK {rendered} ({label}): booted in {res.boot_seconds:.2f}s, no ERROR or "
              f"WARNING; {found}")
        return 0
    print(f"FAIL {rendered} ({label}): {len(res.problems)} problem(s); found {found}")
    for problem in res.problems:
        print(f"  {problem}")
    if args.keep:
        print(f"  instance kept at {res.instance}")
    return 1


def _config_subparsers(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    cfg: argparse.ArgumentParser | None = sub.choices.get("config")
    if cfg is None:
        cfg = sub.add_parser("config", help="check, dump or render the configuration")
    for action in cfg._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    made: argparse._SubParsersAction = cfg.add_subparsers(  # type: ignore[type-arg]
        dest="config_command", required=True)
    return made


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    csub = _config_subparsers(sub)
    p = csub.add_parser("render", help="write one site's complete Asterisk config")
    p.add_argument("--site", required=True, help="a site id from `sites:`, or 'all'")
    p.add_argument("--out", required=True,
                   help="directory to write (with --site all: one directory per site below)")
    p.add_argument("--secrets",
                   help="the site's secrets directory, created 0700 with 0600 files if "
                        "missing (default: $HOTLINE_SECRETS_DIR or var/secrets/<site>)")
    p.set_defaults(func=cmd_render)

    v = csub.add_parser("verify-asterisk",
                        help="boot a throwaway Asterisk on a rendered site and check it")
    v.add_argument("dir", help="a directory written by `hotline config render`")
    v.add_argument("--site", help="the site it was rendered for (default: from its manifest)")
    v.add_argument("--rootfs", default=os.environ.get("HOTLINE_ROOTFS", "/opt/hotline/rootfs"),
                   help="the Asterisk chroot (env HOTLINE_ROOTFS)")
    v.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for boot")
    v.add_argument("--keep", action="store_true", help="keep the instance dir (to debug)")
    v.set_defaults(func=cmd_verify)
