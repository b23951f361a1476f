"""`hotline doctor`: one line per real part, and a non-zero exit when any is down.

With `--asterisk-config DIR` it also reads a rendered Asterisk config directory
and warns (file and line, never the value) about every secret held in plain
text there. A warning does not change the exit code: AMI has no hashed form of
its secret, so manager.conf always holds one.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

import httpx
from panoramisk import Manager

from ari_app.config.models import HotlineConfig, resolve_secret


async def check_redis(cfg: HotlineConfig) -> str:
    from ari_app.config.redis_client import redis_client

    r = redis_client(cfg.redis, cfg.source, socket_connect_timeout=2, socket_timeout=2)
    try:
        await r.ping()
        info = await r.info("server")
        return f"redis {info.get('redis_version')} at {cfg.redis.where()}"
    finally:
        await r.aclose()


async def check_ari(cfg: HotlineConfig) -> list[tuple[bool, str]]:
    pw = resolve_secret(cfg.ari.password, cfg.source).get_secret_value()
    base = cfg.ari.url.rstrip("/") + "/ari"
    out: list[tuple[bool, str]] = []
    async with httpx.AsyncClient(auth=(cfg.ari.username, pw), timeout=3) as c:
        r = await c.get(f"{base}/asterisk/info")
        if r.status_code == 401:
            return [(False, f"ARI at {cfg.ari.url}: authentication refused for user "
                            f"{cfg.ari.username!r}")]
        r.raise_for_status()
        version = r.json().get("system", {}).get("version", "?")
        out.append((True, f"ARI reachable at {cfg.ari.url}: Asterisk {version}"))
        r = await c.get(f"{base}/applications/{cfg.ari.app}")
        if r.status_code == 200:
            out.append((True, f"Stasis application {cfg.ari.app!r} registered"))
        else:
            out.append((False, f"Stasis application {cfg.ari.app!r} not registered "
                               "(is `hotline run` connected?)"))
    return out


async def check_ami(cfg: HotlineConfig) -> str:
    secret = resolve_secret(cfg.ami.secret, cfg.source).get_secret_value()
    m = Manager(host=cfg.ami.host, port=cfg.ami.port, username=cfg.ami.username, secret=secret,
                ping_delay=3600, reconnect_timeout=3600, loop=asyncio.get_running_loop())
    try:
        await asyncio.wait_for(m.connect(), 3)
        for _ in range(100):
            if m.authenticated_future is not None:
                break
            await asyncio.sleep(0.01)
        fut = m.authenticated_future
        if fut is None:
            raise RuntimeError("no login exchange")
        resp = await asyncio.wait_for(fut, 3)
        if not resp.success:
            raise RuntimeError(f"login refused for user {cfg.ami.username!r}")
        return f"AMI login as {cfg.ami.username!r} at {cfg.ami.host}:{cfg.ami.port}"
    finally:
        m.close()


# option names whose value is a secret as written (hashes such as md5_cred,
# password_digest or a crypt password are not)
_PLAIN_KEYS = frozenset({"password", "secret", "passwd"})
_OPTION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=>?\s*(.*?)\s*$")
_SECTION = re.compile(r"^\s*\[([^\]]+)\]")


@dataclass(frozen=True)
class PlainSecret:
    path: Path
    line: int
    section: str
    key: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: plain-text {self.key} in [{self.section}]"


def _options(text: str) -> list[tuple[int, str, str, str]]:
    """(line number, section, key, value) of every option; comments stripped."""
    out: list[tuple[int, str, str, str]] = []
    section = ""
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(";", 1)[0]
        if m := _SECTION.match(line):
            section = m.group(1).strip()
        elif m := _OPTION.match(line):
            out.append((n, section, m.group(1).lower(), m.group(2)))
    return out


def plain_secrets(directory: Path) -> list[PlainSecret]:
    """Every password/secret option with a value, in the *.conf files of `directory`.

    ari.conf's `password_format = crypt` makes that section's password a hash."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: not a directory of rendered Asterisk config")
    found: list[PlainSecret] = []
    for path in sorted(directory.glob("*.conf")):
        opts = _options(path.read_text(encoding="utf-8", errors="replace"))
        crypt = {sec for _, sec, key, val in opts
                 if key == "password_format" and val.lower() == "crypt"}
        found += [PlainSecret(path, n, sec, key) for n, sec, key, val in opts
                  if key in _PLAIN_KEYS and val and sec not in crypt]
    return found


def secret_warnings(directory: Path) -> list[str]:
    """The doctor's lines for a rendered directory (a missing one is a FAIL line)."""
    try:
        found = plain_secrets(directory)
    except OSError as e:
        return [f"FAIL {e}"]
    if not found:
        return [f"ok   no plain-text secret in {directory}"]
    return [f"WARN {hit}" for hit in found]


async def run_doctor(cfg: HotlineConfig, asterisk_config: list[Path] | None = None) -> int:
    results: list[tuple[bool, str]] = []
    try:
        results.extend(await check_ari(cfg))
    except Exception as e:  # noqa: BLE001
        results.append((False, f"ARI at {cfg.ari.url} unreachable: {type(e).__name__}: {e}"))
    for name, check in (("AMI", check_ami), ("Redis", check_redis)):
        try:
            results.append((True, await check(cfg)))
        except Exception as e:  # noqa: BLE001
            results.append((False, f"{name} check failed: {type(e).__name__}: {e}"))
    for ok, line in results:
        print(f"{'ok  ' if ok else 'FAIL'} {line}")
    scanned = [ln for d in asterisk_config or [] for ln in secret_warnings(d)]
    for line in scanned:
        print(line)
    failed = any(ln.startswith("FAIL") for ln in scanned)
    return 0 if all(ok for ok, _ in results) and not failed else 1
