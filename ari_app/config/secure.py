"""TLS and credentials for the app's own connections: Redis (rediss://, ACL user)
and the HTTPS it serves. Built from the validated settings at start-up; errors
name the file or setting, never a secret's value.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from ari_app.config.models import HttpSettings, RedisSettings, resolve_secret


class TlsConfigError(ValueError):
    """A certificate, key or CA file that cannot be used; the message names it."""


def _resolve(p: Path, source: Path | None) -> Path:
    return p if p.is_absolute() or source is None else source.parent / p


def redis_kwargs(settings: RedisSettings, source: Path | None) -> dict[str, Any]:
    """Keyword arguments for redis-py's from_url: the ACL login and, for rediss://,
    certificate checks (TLS 1.2 or better, against `tls_ca_file` when given)."""
    kw: dict[str, Any] = {}
    if settings.username is not None:
        kw["username"] = settings.username
    if settings.password is not None:
        kw["password"] = resolve_secret(settings.password, source).get_secret_value()
    if settings.url.startswith("rediss://"):
        kw["ssl_cert_reqs"] = "required"
        kw["ssl_check_hostname"] = True
        kw["ssl_min_version"] = ssl.TLSVersion.TLSv1_2
        if settings.tls_ca_file is not None:
            ca = _resolve(settings.tls_ca_file, source)
            if not ca.is_file():
                raise TlsConfigError(f"redis.tls_ca_file {ca}: no such file")
            kw["ssl_ca_certs"] = str(ca)
    return kw


def https_context(settings: HttpSettings, source: Path | None) -> ssl.SSLContext | None:
    """The server-side context for `http.tls_cert`/`tls_key`, or None for plain HTTP."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    cert = _resolve(settings.tls_cert, source)
    key = _resolve(settings.tls_key, source)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except FileNotFoundError as e:
        raise TlsConfigError(f"http.tls_cert/tls_key: {e.filename}: no such file") from None
    except ssl.SSLError as e:
        raise TlsConfigError(f"http.tls_cert {cert} / tls_key {key}: unusable ({e.reason})"
                             ) from None
    return ctx
