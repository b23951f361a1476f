"""The rules of the `redis:` and `http:` TLS and login settings (models.py calls them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from ari_app.config.services import HttpSettings, RedisSettings

R = TypeVar("R", bound="RedisSettings")
H = TypeVar("H", bound="HttpSettings")


def check_redis(r: R) -> R:
    scheme, _, rest = r.url.partition("://")
    userinfo = rest.split("/", 1)[0].rpartition("@")[0]
    if ":" in userinfo:
        raise ValueError("url: holds a password; put it in redis.password "
                         "({file: ...} or {env: ...}) instead")
    if r.tls_ca_file is not None and scheme != "rediss":
        raise ValueError("tls_ca_file is set but the url is not rediss://")
    if r.username is not None and r.password is None:
        raise ValueError("username is set without a password")
    return r


def check_http(h: H) -> H:
    if (h.tls_cert is None) != (h.tls_key is None):
        raise ValueError("set both tls_cert and tls_key (or neither)")
    return h
