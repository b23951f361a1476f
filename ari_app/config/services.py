"""How the app reaches the services around it: ARI, AMI, FastAGI, Redis, the
archive, its own HTTP server, and how long it drains at shutdown."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from ari_app.config.base import Ident, SecretRef, Strict
from ari_app.config.sentinel import SentinelSettings
from ari_app.config.tls_rules import check_http, check_redis


class AriSettings(Strict):
    url: str = "http://127.0.0.1:8088/"
    username: str = "hotline"
    password: SecretRef = SecretRef(env="HOTLINE_ARI_PASSWORD")
    app: Ident = "hotline"
    reconnect_initial: float = Field(0.5, gt=0)
    reconnect_max: float = Field(10.0, gt=0)
    # seconds one ARI request may take before the call that made it treats it as failed
    request_timeout: float = Field(10.0, gt=0, le=120)


class AmiSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(5038, ge=1, le=65535)
    username: str = "hotline"
    secret: SecretRef = SecretRef(env="HOTLINE_AMI_SECRET")


class AgiSettings(Strict):
    bind: str = "127.0.0.1"
    port: int = Field(4573, ge=1, le=65535)


class RedisSettings(Strict):
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "hotline"
    max_connections: int = Field(256, ge=8, le=10_000)
    username: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")  # an ACL user
    password: SecretRef | None = None  # never in the url; rediss:// turns TLS on
    tls_ca_file: Path | None = None
    # the primary found through Redis Sentinel instead of `url` (config/sentinel.py)
    sentinel: SentinelSettings | None = None
    # seconds a waiting caller keeps their music and place while Redis is unreachable
    # (a restart, a failover), retrying with backoff; then the queue's fallback
    max_outage: float = Field(120.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _check(self) -> RedisSettings:
        if self.sentinel is not None:
            if "url" in self.model_fields_set:
                raise ValueError("set either url or sentinel, not both: with sentinel the "
                                 "primary's address comes from the sentinels")
            if self.tls_ca_file is not None:
                raise ValueError("tls_ca_file: TLS is not supported with sentinel")
        return check_redis(self)

    def where(self) -> str:
        """Where the clients connect, for logs and `hotline doctor` (no secret in it)."""
        if self.sentinel is None:
            return self.url
        return (f"sentinel service {self.sentinel.service_name} via "
                f"{','.join(self.sentinel.sentinels)}")


class ArchiveSettings(Strict):
    """Where `hotline archiver`, `report` and `records` find the archive when
    neither --db nor HOTLINE_ARCHIVE says: a path, sqlite:///path or
    postgresql://user@host:port/db (no password in it: `password_file`, or libpq's
    PGPASSFILE). Relative paths are the process's, as for --db."""

    url: str = "var/archive.sqlite3"
    password_file: Path | None = None


class HttpSettings(Strict):
    bind: str = "127.0.0.1"
    port: int = Field(8109, ge=1, le=65535)
    token: SecretRef = SecretRef(env="HOTLINE_API_TOKEN")
    tls_cert: Path | None = None  # with tls_key (0600): the app serves HTTPS itself
    tls_key: Path | None = None
    hsts_max_age: int = Field(31_536_000, ge=0)

    @model_validator(mode="after")
    def _check(self) -> HttpSettings:
        return check_http(self)


class ShutdownSettings(Strict):
    drain_timeout: float = Field(30.0, ge=0, le=3600)
