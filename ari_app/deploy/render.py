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

import ipaddress
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ari_app.agents.render import ensure_agent_secrets, ensure_secret_file, render_pjsip
from ari_app.config.models import Agent, HotlineConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = REPO_ROOT / "asterisk-config"
MANIFEST = "hotline-manifest.json"
AGENTS_FILE = "pjsip_agents.conf"
DEFAULT_MODULE_DIR = "/usr/lib/x86_64-linux-gnu/asterisk/modules"
DEFAULT_INSTANCE_ROOT = "/srv/hotline"
SITE_CONTEXT = "from-sites"
CARRIER_CONTEXT = "from-carrier"
_TOKEN = re.compile(r"@[A-Z][A-Z0-9_]*@")
_SECRET_OK = re.compile(r"^[A-Za-z0-9_-]{20,200}$")


class DeployError(Exception):
    """A deploy section or a render request that cannot work; the message says why."""


# ------------------------------------------------------------------ model --

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _ip(v: str) -> str:
    try:
        return str(ipaddress.ip_address(v))
    except ValueError:
        # A hostname would make Asterisk block on DNS: addresses only.
        raise ValueError(f"{v!r} is not an IP address (hostnames are refused)") from None


def _net(v: str) -> str:
    try:
        return str(ipaddress.ip_network(v, strict=False))
    except ValueError:
        raise ValueError(f"{v!r} is not an IP address or CIDR network") from None


class CarrierSpec(_Strict):
    """Where the carrier's SIP comes from: calls are identified by address only."""

    match: list[str] = Field(default_factory=lambda: ["127.0.0.1/32"], min_length=1)

    @field_validator("match")
    @classmethod
    def _nets(cls, v: list[str]) -> list[str]:
        return [_net(x) for x in v]


class ServerSpec(_Strict):
    """One site's Asterisk server.

    `address` is where the carrier and the other sites send SIP; SIP binds
    there (or to `sip_bind`). ARI, AMI and the app's FastAGI stay on
    `control_bind` (loopback): the app runs beside Asterisk on the same host.
    """

    address: str = "127.0.0.1"
    sip_bind: str | None = None
    control_bind: str = "127.0.0.1"
    sip_port: int = Field(5060, ge=1, le=65535)
    http_port: int = Field(8088, ge=1, le=65535)
    ami_port: int = Field(5038, ge=1, le=65535)
    agi_port: int = Field(4573, ge=1, le=65535)
    rtp_start: int = Field(10000, ge=1024, le=65535)
    rtp_end: int = Field(20000, ge=1024, le=65535)
    carrier: CarrierSpec | None = Field(None, description="overrides deploy.carrier here")

    @field_validator("address", "control_bind")
    @classmethod
    def _addr(cls, v: str) -> str:
        return _ip(v)

    @field_validator("sip_bind")
    @classmethod
    def _bind(cls, v: str | None) -> str | None:
        return None if v is None else _ip(v)

    @model_validator(mode="after")
    def _ports(self) -> ServerSpec:
        if self.rtp_end - self.rtp_start < 100:
            raise ValueError(f"rtp_start..rtp_end ({self.rtp_start}..{self.rtp_end}) must "
                             "span at least 100 ports")
        tcp = {"http_port": self.http_port, "ami_port": self.ami_port,
               "agi_port": self.agi_port}
        if len(set(tcp.values())) != len(tcp):
            raise ValueError(f"http_port, ami_port and agi_port must differ: {tcp}")
        if self.rtp_start <= self.sip_port <= self.rtp_end:
            raise ValueError(f"sip_port {self.sip_port} lies inside the RTP range")
        return self

    @property
    def bind(self) -> str:
        return self.sip_bind or self.address


class DeploySettings(_Strict):
    """The optional `deploy:` section of config/hotline.yaml.

    deploy:
      instance_root: /srv/hotline        # a site's instance dir is <root>/<site id>
      module_dir: /usr/lib/x86_64-linux-gnu/asterisk/modules
      carrier: {match: [192.0.2.0/28]}   # every site, unless its server overrides
      inter_site: true                   # trunks to the other sites' servers
      servers:
        doha_hq: {address: 10.1.0.10, sip_port: 5060, http_port: 8088, ami_port: 5038,
                  agi_port: 4573, rtp_start: 10000, rtp_end: 20000}
    """

    instance_root: str = DEFAULT_INSTANCE_ROOT
    module_dir: str = DEFAULT_MODULE_DIR
    carrier: CarrierSpec = CarrierSpec()
    inter_site: bool = True
    servers: dict[str, ServerSpec] = Field(default_factory=dict)

    @field_validator("instance_root", "module_dir")
    @classmethod
    def _abs(cls, v: str) -> str:
        if not v.startswith("/") or any(c in v for c in "\n;@ "):
            raise ValueError(f"{v!r}: an absolute path without spaces, ';' or '@'")
        return v.rstrip("/") or "/"

    def server(self, site: str) -> ServerSpec:
        return self.servers.get(site, ServerSpec())

    def carrier_for(self, site: str) -> CarrierSpec:
        return self.server(site).carrier or self.carrier


# ------------------------------------------------------------ loading ------

def read_raw(path: str | os.PathLike[str]) -> dict[str, Any]:
    from ari_app.config.loader import ConfigError

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{p}: cannot read: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys")
    return data


def deploy_settings(raw: Mapping[str, Any], where: str = "config") -> DeploySettings:
    section = raw.get("deploy") or {}
    try:
        return DeploySettings.model_validate(section)
    except ValidationError as e:
        lines = [f"{where}: deploy: {e.error_count()} problem(s)"]
        for err in e.errors(include_url=False):
            key = ".".join(str(x) for x in err["loc"])
            lines.append(f"  deploy.{key}: {err['msg'].removeprefix('Value error, ')}")
        raise DeployError("\n".join(lines)) from None


def load(path: str | os.PathLike[str] | None = None) -> tuple[HotlineConfig, DeploySettings]:
    """The validated config and its deploy section.

    Until HotlineConfig has a `deploy` field, a config holding `deploy:` is
    validated without it (HotlineConfig forbids unknown keys)."""
    from ari_app.config import loader

    p = loader.config_path(path)
    raw = read_raw(p)
    deploy = deploy_settings(raw, str(p))
    if "deploy" not in raw or "deploy" in HotlineConfig.model_fields:
        cfg = loader.load_config(p)
    else:
        data = {k: v for k, v in raw.items() if k != "deploy"}
        data["source"] = str(p.resolve())
        if data.get("agents_file") is not None:
            af = Path(str(data["agents_file"]))
            data["agents"] = loader._load_agents(af if af.is_absolute() else p.parent / af)
        try:
            cfg = HotlineConfig.model_validate(data)
        except ValidationError as e:
            raise loader.ConfigError(loader._format(p, e)) from None
    check_deploy(cfg, deploy)
    return cfg, deploy


def check_deploy(cfg: HotlineConfig, deploy: DeploySettings) -> None:
    sites = {s.id for s in cfg.sites}
    unknown = sorted(set(deploy.servers) - sites)
    if unknown:
        raise DeployError(f"deploy.servers: unknown site(s) {', '.join(unknown)} "
                          f"(sites: {', '.join(sorted(sites))})")


# --------------------------------------------------------------- plan ------

@dataclass(frozen=True)
class Peer:
    site: str
    address: str
    sip_port: int

    @property
    def endpoint(self) -> str:
        return f"site-{self.site}"

    @property
    def match(self) -> str:
        # Source port too: two sites' servers may share an address in a lab.
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.sip_port}"

    @property
    def contact(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"sip:{host}:{self.sip_port}"


@dataclass(frozen=True)
class SitePlan:
    """Everything one server's render holds, before secrets."""

    site: str | None
    server: ServerSpec
    carrier: CarrierSpec
    agents: tuple[Agent, ...]
    peers: tuple[Peer, ...]
    numbers: tuple[str, ...]
    app_name: str
    default_language: str
    instance_dir: str
    module_dir: str
    notes: tuple[str, ...] = field(default=())

    @property
    def endpoints(self) -> list[str]:
        return sorted(["carrier", *(a.endpoint for a in self.agents),
                       *(p.endpoint for p in self.peers)])

    @property
    def aors(self) -> list[str]:
        return sorted([*(a.endpoint for a in self.agents), *(p.endpoint for p in self.peers)])

    @property
    def site_routes(self) -> list[str]:
        """Extensions of the from-sites context: this server's own agents."""
        return sorted(a.endpoint for a in self.agents)

    def manifest(self) -> dict[str, Any]:
        """What the render holds, without secrets: verify-asterisk checks against it."""
        return {
            "site": self.site,
            "address": self.server.address,
            "sip_port": self.server.sip_port,
            "endpoints": self.endpoints,
            "aors": self.aors,
            "numbers": list(self.numbers),
            "site_routes": self.site_routes,
            "peers": {p.site: p.match for p in self.peers},
            "carrier_match": list(self.carrier.match),
            "notes": list(self.notes),
        }


def plan_site(cfg: HotlineConfig, deploy: DeploySettings, site: str | None, *,
              server: ServerSpec | None = None, instance_dir: str | None = None,
              module_dir: str | None = None, carrier: CarrierSpec | None = None) -> SitePlan:
    """What `site`'s server holds. `site=None` is the single-server rig: every
    agent, no inter-site trunks. Keyword arguments override the deploy section
    (the rig uses them for its own ports and paths)."""
    site_ids = [s.id for s in cfg.sites]
    if site is not None and site not in site_ids:
        raise DeployError(f"unknown site {site!r} (sites: {', '.join(site_ids) or 'none'})")
    check_deploy(cfg, deploy)
    srv = server or (deploy.server(site) if site else ServerSpec())
    agents = tuple(a for a in cfg.agents if site is None or a.site == site)
    notes: list[str] = []
    peers: list[Peer] = []
    if site is not None and deploy.inter_site:
        own = (srv.address, srv.sip_port)
        seen: dict[tuple[str, int], str] = {}
        same: list[str] = []
        for other in site_ids:
            if other == site:
                continue
            o = deploy.server(other)
            key = (o.address, o.sip_port)
            if key == own:
                same.append(other)
                continue
            if key in seen:
                raise DeployError(f"deploy.servers: {seen[key]} and {other} share "
                                  f"{o.address}:{o.sip_port}: calls from them cannot be told "
                                  "apart")
            seen[key] = other
            peers.append(Peer(other, o.address, o.sip_port))
        if same:
            notes.append(f"no trunk to {', '.join(same)}: same address and port as this "
                         f"server ({srv.address}:{srv.sip_port}); set deploy.servers")
    carr = carrier or (deploy.carrier_for(site) if site else deploy.carrier)
    nets = [ipaddress.ip_network(n) for n in carr.match]
    for p in peers:
        addr = ipaddress.ip_address(p.address)
        if any(addr.version == n.version and addr in n for n in nets):
            raise DeployError(f"site {p.site}'s server {p.address} lies inside the carrier "
                              f"match {', '.join(carr.match)}: Asterisk could not tell "
                              "its calls from the carrier's")
    return SitePlan(
        site=site,
        server=srv,
        carrier=carr,
        agents=agents,
        peers=tuple(peers),
        numbers=tuple(cfg.numbers),
        app_name=cfg.ari.app,
        default_language=cfg.default_language,
        instance_dir=instance_dir or f"{deploy.instance_root}/{site or 'main'}",
        module_dir=module_dir or deploy.module_dir,
        notes=tuple(notes),
    )


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
        out.append(f"""\
; to/from the {p.site} site's server
[{p.endpoint}]
type = endpoint
transport = transport-udp
context = {SITE_CONTEXT}
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
    _write(out / AGENTS_FILE, render_pjsip(plan.agents, sec.agents))
    written.append(AGENTS_FILE)
    _write(out / MANIFEST, json.dumps(plan.manifest(), indent=1) + "\n")
    written.append(MANIFEST)
    return RenderResult(plan, out, sorted(written))


def render_site(cfg: HotlineConfig, deploy: DeploySettings, site: str | None, out: Path,
                secrets_dir: Path, **overrides: Any) -> RenderResult:
    return render_plan(plan_site(cfg, deploy, site, **overrides), out, secrets_dir)


def rig_plan(config: str | os.PathLike[str], *, sip_port: int, http_port: int, ami_port: int,
             agi_port: int, rtp: tuple[int, int], instance_dir: str,
             module_dir: str) -> SitePlan:
    """The dev/test rig (scripts/stack.py): one loopback server holding every
    agent, on the stack's own ports and instance dir, the carrier on 127.0.0.1."""
    cfg, deploy = load(config)
    server = ServerSpec(address="127.0.0.1", sip_port=sip_port, http_port=http_port,
                        ami_port=ami_port, agi_port=agi_port, rtp_start=rtp[0], rtp_end=rtp[1])
    return plan_site(cfg, deploy, None, server=server, instance_dir=instance_dir,
                     module_dir=module_dir, carrier=CarrierSpec(match=["127.0.0.1"]))


def rig_tokens(plan: SitePlan, secrets_dir: Path) -> dict[str, str]:
    return site_tokens(plan, load_secrets(secrets_dir, plan.agents))


def rig_agents(plan: SitePlan, secrets_dir: Path) -> str:
    return render_pjsip(plan.agents, ensure_agent_secrets(secrets_dir / "agents", plan.agents))
