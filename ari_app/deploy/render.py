"""Render one site's complete Asterisk configuration from the one config.

The templates in `asterisk-config/` carry `@TOKEN@` placeholders; this module
fills them for one site's server (or, with `site=None`, for the single-server
dev/test rig, which holds every agent). The same code serves
`hotline config render` and `scripts/stack.py`, so what the rig boots is what a
site deploys.

Per-site values live in an optional `deploy:` section of the config, modelled
by `DeploySettings` below. Secrets (ARI password, AMI secret, agents' SIP
passwords) live in a secrets directory, one 0600 file each, created on first
render and kept afterwards; they are written into the rendered files (Asterisk
needs them there) and never printed.
"""


from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ari_app.agents.render import ensure_agent_secrets, ensure_secret_file, render_pjsip
from ari_app.config.models import Agent, HotlineConfig
from ari_app.deploy.callback import callback_extens
from ari_app.deploy.plan import Peer, SitePlan, plan_site
from ari_app.deploy.settings import (
    CarrierSpec,
    DeployError,
    DeploySettings,
    ServerSpec,
    TlsSpec,
    check_deploy,
    deploy_settings,
    load,
    read_raw,
)

__all__ = [  # the renderer's public names, including those it re-exports
    "CarrierSpec", "DeployError", "DeploySettings", "Peer", "RenderResult", "Secrets",
    "ServerSpec", "SitePlan", "TlsSpec", "check_deploy", "deploy_settings", "ensure_secret", "fill",
    "leftover_tokens", "load", "load_secrets", "plan_site", "read_raw", "render_plan",
    "render_site", "rig_agents", "rig_plan", "rig_tokens", "site_tokens",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = REPO_ROOT / "asterisk-config"
MANIFEST = "hotline-manifest.json"
AGENTS_FILE = "pjsip_agents.conf"
SITE_CONTEXT = "from-sites"
CARRIER_CONTEXT = "from-carrier"
RIG_CALLBACK_PORT_OFFSET = 2000
_TOKEN = re.compile(r"@[A-Z][A-Z0-9_]*@")
_SECRET_OK = re.compile(r"^[A-Za-z0-9_-]{20,200}$")


# ------------------------------------------------------------ secrets ------

def ensure_secret(directory: Path, name: str) -> str:
    """A generated secret kept in `directory/name` (0600, created once, O_EXCL)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    p = directory / name
    value = ensure_secret_file(p)
    if not _SECRET_OK.match(value):
        raise DeployError(f"{p}: not a usable secret (20+ URL-safe characters)")
    os.chmod(p, 0o600)
    return value


@dataclass(frozen=True)
class Secrets:
    ari_password: str
    ami_secret: str
    agents: dict[str, str]

    def __repr__(self) -> str:  # never show the values
        return f"Secrets(<{2 + len(self.agents)} values hidden>)"


def load_secrets(directory: Path, agents: Iterable[Agent]) -> Secrets:
    """Layout: ari_password, ami_secret, agents/<agent id>.secret (the rig's layout)."""
    return Secrets(
        ari_password=ensure_secret(directory, "ari_password"),
        ami_secret=ensure_secret(directory, "ami_secret"),
        agents=ensure_agent_secrets(directory / "agents", agents),
    )


# ------------------------------------------------------------- render ------

def _trunks(plan: SitePlan) -> str:
    if not plan.peers:
        return "; (no inter-site trunks on this server)"
    out: list[str] = []
    for p in plan.peers:
        tls = p.tls_port is not None
        media = f"\n{SRTP_LINES}" if tls else ""
        out.append(f"""\
; to/from the {p.site} site's server{' (SIP over TLS, SRTP required)' if tls else ''}
[{p.endpoint}]
type = endpoint
transport = {TLS_TRANSPORT if tls else 'transport-udp'}
context = {SITE_CONTEXT}{media}
disallow = all
allow = ulaw,alaw
direct_media = no
dtmf_mode = rfc4733
allow_transfer = no
aors = {p.endpoint}

[{p.endpoint}]
type = aor
contact = {p.contact}
qualify_frequency = 60

[{p.endpoint}]
type = identify
endpoint = {p.endpoint}
match = {p.match}
""")
    return "\n".join(out).rstrip("\n")


TLS_TRANSPORT = "transport-tls"
SRTP_LINES = "media_encryption = sdes\nmedia_encryption_optimistic = no"
SRTP_MODULES = ("res_srtp.so",)


def _tls_transport(plan: SitePlan) -> str:
    tls = plan.tls
    if tls is None:
        return "; (no TLS transport: deploy.tls is not set)"
    srv = plan.server
    # verify_server: a site's outbound trunk connection checks the peer's
    # certificate against the CA. Phones carry no client certificate, so
    # clients are not required to present one.
    return f"""\
[{TLS_TRANSPORT}]
type = transport
protocol = tls
bind = {srv.bind}:{srv.tls_port}
cert_file = {tls.cert_file}
priv_key_file = {tls.priv_key_file}
ca_list_file = {tls.ca_list_file}
method = {tls.method}
verify_server = yes
verify_client = no
require_client_cert = no"""


def _tls_modules(plan: SitePlan) -> str:
    if plan.tls is None:
        return "; (no SRTP: deploy.tls is not set)"
    return "\n".join(f"load = {m}" for m in SRTP_MODULES)


def _agents_conf(plan: SitePlan, passwords: dict[str, str]) -> str:
    tls = plan.agents_srtp
    return render_pjsip(plan.agents, passwords,
                        transport=TLS_TRANSPORT if tls else "transport-udp", srtp=tls)


def _site_routes(plan: SitePlan) -> str:
    lines = [f"exten => {ep},1,Dial(PJSIP/{ep},30)\n same => n,Hangup()"
             for ep in plan.site_routes]
    return "\n".join(lines) if lines else "; (no agents on this server)"


def _numbers(plan: SitePlan) -> str:
    return "\n".join(
        f"exten => {n},1,Set(__HOTLINE_DIALLED=${{EXTEN}})\n same => n,Goto(hotline-entry,s,1)"
        for n in plan.numbers)


def site_tokens(plan: SitePlan, sec: Secrets) -> dict[str, str]:
    srv = plan.server
    return {
        "BIND": srv.control_bind,
        "SIP_BIND": srv.bind,
        "SIP_PORT": str(srv.sip_port),
        "HTTP_PORT": str(srv.http_port),
        "AMI_PORT": str(srv.ami_port),
        "AGI_PORT": str(srv.agi_port),
        "RTP_START": str(srv.rtp_start),
        "RTP_END": str(srv.rtp_end),
        "ARI_PASSWORD": sec.ari_password,
        "AMI_SECRET": sec.ami_secret,
        "APP_NAME": plan.app_name,
        "INSTANCE_DIR": plan.instance_dir,
        "MODULE_DIR": plan.module_dir,
        "CARRIER_MATCH": ",".join(plan.carrier.match),
        "DEFAULT_LANGUAGE": plan.default_language,
        "HOTLINE_NUMBERS": _numbers(plan),
        "SITE_TRUNKS": _trunks(plan),
        "SITE_ROUTES": _site_routes(plan),
        "SITE": plan.site or "all",
        "TLS_TRANSPORT": _tls_transport(plan),
        "SRTP_MODULES": _tls_modules(plan),
        "CALLBACK_OUT": plan.callback_extens,
    }


def fill(text: str, tokens: Mapping[str, str]) -> str:
    for key, val in tokens.items():
        text = text.replace(f"@{key}@", val)
    return text


def leftover_tokens(text: str) -> list[str]:
    """@TOKEN@ placeholders still in a rendered file (comments included)."""
    return sorted(set(_TOKEN.findall(text)))


@dataclass(frozen=True)
class RenderResult:
    plan: SitePlan
    out: Path
    files: list[str]


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def render_plan(plan: SitePlan, out: Path, secrets_dir: Path,
                templates: Path = TEMPLATES_DIR) -> RenderResult:
    """Write every template, filled, plus pjsip_agents.conf and the manifest.

    Files are 0600 in a 0700 directory: they hold the secrets."""
    sec = load_secrets(secrets_dir, plan.agents)
    tokens = site_tokens(plan, sec)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(out, 0o700)
    written: list[str] = []
    problems: list[str] = []
    for tpl in sorted(templates.glob("*.conf")):
        text = fill(tpl.read_text(encoding="utf-8"), tokens)
        left = leftover_tokens(text)
        if left:
            problems.append(f"{tpl.name}: {', '.join(left)}")
        _write(out / tpl.name, text)
        written.append(tpl.name)
    if problems:
        raise DeployError("templates hold tokens the renderer does not fill: "
                          + "; ".join(problems))
    _write(out / AGENTS_FILE, _agents_conf(plan, sec.agents))
    written.append(AGENTS_FILE)
    _write(out / MANIFEST, json.dumps(plan.manifest(), indent=1) + "\n")
    written.append(MANIFEST)
    return RenderResult(plan, out, sorted(written))


def render_site(cfg: HotlineConfig, deploy: DeploySettings, site: str | None, out: Path,
                secrets_dir: Path, **overrides: Any) -> RenderResult:
    return render_plan(plan_site(cfg, deploy, site, **overrides), out, secrets_dir)


def rig_plan(config: str | os.PathLike[str], *, sip_port: int, http_port: int, ami_port: int,
             agi_port: int, rtp: tuple[int, int], instance_dir: str,
             module_dir: str, tls_port: int = 5061, tls: TlsSpec | None = None) -> SitePlan:
    """The dev/test rig (scripts/stack.py): one loopback server holding every
    agent, on the stack's own ports and instance dir, the carrier on 127.0.0.1."""
    cfg, deploy = load(config)
    server = ServerSpec(address="127.0.0.1", sip_port=sip_port, http_port=http_port,
                        ami_port=ami_port, agi_port=agi_port, rtp_start=rtp[0], rtp_end=rtp[1],
                        tls_port=tls_port)
    plan = plan_site(cfg, deploy, None, server=server, instance_dir=instance_dir,
                     module_dir=module_dir, carrier=CarrierSpec(match=["127.0.0.1"]), tls=tls)
    # the rig's carrier takes callbacks on loopback at its SIP port + 2000 (the SIPp
    # citizen phones of tests/integration/test_callback*.py), whatever callback.enabled
    # says: the tests switch callbacks on in the app without re-rendering Asterisk
    return replace(plan, callback_extens=callback_extens(
        cfg.callback, f"127.0.0.1:{sip_port + RIG_CALLBACK_PORT_OFFSET}"))


def rig_tokens(plan: SitePlan, secrets_dir: Path) -> dict[str, str]:
    return site_tokens(plan, load_secrets(secrets_dir, plan.agents))


def rig_agents(plan: SitePlan, secrets_dir: Path) -> str:
    return _agents_conf(plan, ensure_agent_secrets(secrets_dir / "agents", plan.agents))
