"""`redis.sentinel:` where the app, the archiver and the CLI find the Redis
primary through Redis Sentinel, instead of one fixed `redis.url`.

Each client asks the sentinels which server is the primary of `service_name`
and reconnects to the new one after a failover (docs/deploy.md, "Redis
Sentinel"; docs/operations.md, "Redis failover").
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from ari_app.config.base import SecretRef, Strict

_ADDRESS = re.compile(r"^(?P<host>[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:]+\]):(?P<port>[0-9]{1,5})$")


def parse_address(text: str) -> tuple[str, int]:
    """`host:port` (an IPv6 host in brackets) -> (host, port), or ValueError naming it."""
    m = _ADDRESS.match(text)
    port = int(m["port"]) if m else 0
    if m is None or not 1 <= port <= 65535:
        raise ValueError(f"sentinel address {text!r} is not host:port (port 1-65535)")
    return m["host"].strip("[]"), port


class SentinelSettings(Strict):
    # at least three in production, on separate hosts, so that two agree on a
    # failover (quorum 2) while one of them is down with its host
    sentinels: list[str] = Field(min_length=1)
    service_name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    db: int = Field(0, ge=0, le=15)
    # the sentinels' own `requirepass`; the primary's password is `redis.password`
    password: SecretRef | None = None

    @field_validator("sentinels")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        seen: set[tuple[str, int]] = set()
        for text in v:
            addr = parse_address(text)
            if addr in seen:
                raise ValueError(f"sentinel {text} is listed twice")
            seen.add(addr)
        return v

    def addresses(self) -> list[tuple[str, int]]:
        return [parse_address(s) for s in self.sentinels]
