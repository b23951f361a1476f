"""The `deploy:` section: each site's server (addresses, ports) and the carrier.

Validated here rather than in HotlineConfig, because only rendering needs it;
the running app treats it as opaque.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ari_app.config.models import HotlineConfig

DEFAULT_MODULE_DIR = "/usr/lib/x86_64-linux-gnu/asterisk/modules"
DEFAULT_INSTANCE_ROOT = "/srv/hotline"


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
    tls_port: int = Field(5061, ge=1, le=65535, description="SIP over TLS, when deploy.tls is set")
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
               "agi_port": self.agi_port, "tls_port": self.tls_port}
        if len(set(tcp.values())) != len(tcp):
            raise ValueError(f"http_port, ami_port, agi_port and tls_port must differ: {tcp}")
        if self.rtp_start <= self.sip_port <= self.rtp_end:
            raise ValueError(f"sip_port {self.sip_port} lies inside the RTP range")
        if self.rtp_start <= self.tls_port <= self.rtp_end:
            raise ValueError(f"tls_port {self.tls_port} lies inside the RTP range")
        return self

    @property
    def bind(self) -> str:
        return self.sip_bind or self.address


def _path(v: str) -> str:
    if "BEGIN" in v or "\n" in v:
        raise ValueError("name the file by its path: PEM contents never go in the config")
    if not v.startswith("/") or any(c in v for c in ";@ ,"):
        raise ValueError(f"{v!r}: an absolute path without spaces, ';', ',' or '@'")
    return v


class TlsSpec(_Strict):
    """SIP over TLS and SRTP (the `deploy.tls` section). Off when absent.

    The files are named by path on the Asterisk host (readable by the Asterisk
    user only, for the key); their contents never pass through the config.
    """

    cert_file: str = Field(description="the server's certificate (PEM), chain included")
    priv_key_file: str = Field(description="its private key (PEM), mode 0600")
    ca_list_file: str = Field(description="the CA(s) that sign the sites' certificates")
    method: Literal["tlsv1_2", "tlsv1_3"] = "tlsv1_2"
    agents: Literal["tls_srtp", "plain"] = Field(
        "tls_srtp", description="agents' phones: SIP over TLS with SRTP required, or as before")
    trunks: Literal["tls_srtp", "plain"] = Field(
        "tls_srtp", description="inter-site trunks: SIP over TLS with SRTP required, or UDP")

    @field_validator("cert_file", "priv_key_file", "ca_list_file")
    @classmethod
    def _file(cls, v: str) -> str:
        return _path(v)


class DeploySettings(_Strict):
    """The optional `deploy:` section of config/hotline.yaml.

    deploy:
      instance_root: /srv/hotline        # a site's instance dir is <root>/<site id>
      module_dir: /usr/lib/x86_64-linux-gnu/asterisk/modules
      carrier: {match: [192.0.2.0/28]}   # every site, unless its server overrides
      inter_site: true                   # trunks to the other sites' servers
      tls:                               # optional: SIP over TLS + SRTP (docs/deploy.md)
        cert_file: /etc/asterisk/tls/site.crt
        priv_key_file: /etc/asterisk/tls/site.key
        ca_list_file: /etc/asterisk/tls/ca.crt
      servers:
        doha_hq: {address: 10.1.0.10, sip_port: 5060, http_port: 8088, ami_port: 5038,
                  agi_port: 4573, rtp_start: 10000, rtp_end: 20000}
    """

    instance_root: str = DEFAULT_INSTANCE_ROOT
    module_dir: str = DEFAULT_MODULE_DIR
    carrier: CarrierSpec = CarrierSpec()
    inter_site: bool = True
    servers: dict[str, ServerSpec] = Field(default_factory=dict)
    tls: TlsSpec | None = None

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
    from ari_app.config.loader import ConfigError, read_yaml

    p = Path(path)
    data = read_yaml(p)
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
