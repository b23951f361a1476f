"""What one site's server holds: its agents, its trunks to the other sites, its numbers."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from ari_app.config.models import Agent, HotlineConfig
from ari_app.deploy.callback import callback_extens
from ari_app.deploy.settings import (
    CarrierSpec,
    DeployError,
    DeploySettings,
    ServerSpec,
    TlsSpec,
    check_deploy,
)

# --------------------------------------------------------------- plan ------

@dataclass(frozen=True)
class Peer:
    site: str
    address: str
    sip_port: int
    tls_port: int | None = None  # set: the trunk runs SIP over TLS with SRTP

    @property
    def endpoint(self) -> str:
        return f"site-{self.site}"

    @property
    def host(self) -> str:
        return f"[{self.address}]" if ":" in self.address else self.address

    @property
    def match(self) -> str:
        if self.tls_port is not None:
            # A TLS connection comes from an ephemeral port: the address alone
            # tells the sites apart (plan_site refuses two on one address).
            return self.host
        # Source port too: two sites' servers may share an address in a lab.
        return f"{self.host}:{self.sip_port}"

    @property
    def contact(self) -> str:
        if self.tls_port is not None:
            # `;` starts a comment in Asterisk's config files: escaped, it stays a URI parameter
            return f"sip:{self.host}:{self.tls_port}\\;transport=tls"
        return f"sip:{self.host}:{self.sip_port}"


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
    tls: TlsSpec | None = None
    # the callback-out context's extensions (deploy/callback.py)
    callback_extens: str = ""

    @property
    def agents_srtp(self) -> bool:
        return self.tls is not None and self.tls.agents == "tls_srtp"

    @property
    def srtp_endpoints(self) -> list[str]:
        """Endpoints that must refuse a call without SRTP (media_encryption=sdes)."""
        agents = [a.endpoint for a in self.agents] if self.agents_srtp else []
        return sorted([*agents, *(p.endpoint for p in self.peers if p.tls_port is not None)])

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
            "tls": None if self.tls is None else {
                "port": self.server.tls_port, "method": self.tls.method,
                "cert_file": self.tls.cert_file, "ca_list_file": self.tls.ca_list_file,
                "srtp_endpoints": self.srtp_endpoints},
        }


def plan_site(cfg: HotlineConfig, deploy: DeploySettings, site: str | None, *,
              server: ServerSpec | None = None, instance_dir: str | None = None,
              module_dir: str | None = None, carrier: CarrierSpec | None = None,
              tls: TlsSpec | None = None) -> SitePlan:
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
    tls = tls or deploy.tls
    trunk_tls = tls is not None and tls.trunks == "tls_srtp"
    if site is not None and deploy.inter_site:
        own = (srv.address, srv.sip_port)
        seen: dict[tuple[str, int], str] = {}
        same: list[str] = []
        for other in site_ids:
            if other == site:
                continue
            o = deploy.server(other)
            key = (o.address, o.sip_port)
            if key == own or (trunk_tls and o.address == srv.address):
                same.append(other)
                continue
            # over TLS the source port is ephemeral: one site per address
            if trunk_tls:
                key = (o.address, 0)
            if key in seen:
                where = o.address if trunk_tls else f"{o.address}:{o.sip_port}"
                raise DeployError(f"deploy.servers: {seen[key]} and {other} share {where}: "
                                  "calls from them cannot be told apart"
                                  + (" (TLS trunks match by address only)" if trunk_tls else ""))
            seen[key] = other
            peers.append(Peer(other, o.address, o.sip_port,
                              o.tls_port if trunk_tls else None))
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
        tls=tls,
        callback_extens=callback_extens(cfg.callback, cfg.callback.carrier_address
                                        if cfg.callback.enabled else None),
    )
