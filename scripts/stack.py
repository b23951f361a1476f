#!/usr/bin/env python3
"""The rig: real Asterisk 22 (in a Debian sid chroot), real Redis, and the app.

Used by `make run`, `make demo`, `make test` and the test fixtures. It is
idempotent: every step checks what is already there. Each stack has a name and
a port offset, so a test stack and a `make run` stack live side by side.

Stdlib only, so it runs before the venv exists.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ROOTFS = Path(os.environ.get("HOTLINE_ROOTFS", "/opt/hotline/rootfs"))
CHROOT_PACKAGES = [
    "asterisk", "asterisk-modules", "asterisk-core-sounds-en-gsm", "asterisk-moh-opsound-gsm",
]
# command on PATH -> Debian package providing it
HOST_PACKAGES = {
    "redis-server": "redis-server",
    "sipp": "sip-tester",
    "espeak-ng": "espeak-ng",
    "sox": "sox",
    "debootstrap": "debootstrap",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
    "curl": "curl",
    "baresip": "baresip-core",  # the TLS+SRTP agent phone in tests/integration/test_encryption.py
    "openssl": "openssl",
}
# files (not on PATH: Debian keeps PostgreSQL's server tools per version) -> package
HOST_PACKAGE_FILES = {
    "/usr/lib/postgresql/*/bin/initdb": "postgresql",
}
READY_MARK = ".hotline-rootfs-ready"


def log(msg: str) -> None:
    print(f"[stack] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- install --

def ensure_host_packages(extra: dict[str, str] | None = None) -> None:
    wanted = dict(HOST_PACKAGES, **(extra or {}))
    missing = sorted({pkg for cmd, pkg in wanted.items() if shutil.which(cmd) is None}
                     | {pkg for pat, pkg in HOST_PACKAGE_FILES.items()
                        if not list(Path("/").glob(pat.lstrip("/")))})
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"missing Debian packages {' '.join(missing)}: install them as root")
    log(f"installing Debian packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                   check=True, env=env, stdout=subprocess.DEVNULL)


def ensure_rootfs(rootfs: Path = DEFAULT_ROOTFS) -> str:
    """Asterisk 22 from Debian sid in a chroot (Debian 12 ships no asterisk)."""
    if not (rootfs / READY_MARK).exists():
        tmp = rootfs.with_name(rootfs.name + ".partial")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        log(f"debootstrap Debian sid with Asterisk into {rootfs} (about a minute)")
        t0 = time.monotonic()
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(CHROOT_PACKAGES)}",
             "sid", str(tmp)], capture_output=True, text=True)
        if proc.returncode != 0 or not (tmp / "usr/sbin/asterisk").exists():
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
            raise SystemExit(
                "could not install Asterisk from Debian sid into the chroot "
                f"(debootstrap exit {proc.returncode}). If sid no longer has the asterisk "
                f"package, that is the cause.\n{tail}")
        (tmp / READY_MARK).write_text(time.strftime("%F %T\n"))
        if rootfs.exists():
            shutil.rmtree(rootfs)
        tmp.rename(rootfs)
        log(f"chroot ready in {time.monotonic() - t0:.0f}s")
    # Without a resolvable hostname Asterisk blocks on DNS and calls fail under load.
    host = socket.gethostname()
    (rootfs / "etc/hosts").write_text(f"127.0.0.1 localhost {host}\n::1 localhost ip6-localhost\n")
    version = subprocess.run(["chroot", str(rootfs), "/usr/sbin/asterisk", "-V"],
                             capture_output=True, text=True, check=True).stdout.strip()
    return version


def chroot_path(rootfs: Path, path: Path) -> Path:
    """Follow symlinks as the chroot sees them (Debian's sounds/en points at
    /etc/alternatives/..., which means nothing on the host)."""
    for _ in range(10):
        if not path.is_symlink():
            return path
        target = Path(os.readlink(path))
        path = rootfs / target.relative_to("/") if target.is_absolute() else path.parent / target
    return path


def module_dir(rootfs: Path) -> str:
    for cand in sorted((rootfs / "usr/lib").glob("*/asterisk/modules")):
        return "/" + str(cand.relative_to(rootfs))
    return "/usr/lib/asterisk/modules"


# -------------------------------------------------------------- test PKI --

def make_test_pki(directory: Path, days: int = 2,
                  ips: tuple[str, ...] = ("127.0.0.1",)) -> dict[str, Path]:
    """A throwaway CA and one server certificate for `ips` and localhost, made
    with openssl in `directory` (a stack's secrets dir, never the repo). Kept if
    already there; keys 0600. Returns {ca, ca_key, cert, key}."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    f = {"ca": directory / "ca.crt", "ca_key": directory / "ca.key",
         "cert": directory / "server.crt", "key": directory / "server.key"}
    if all(p.exists() for p in f.values()):
        return f
    ssl = shutil.which("openssl") or "openssl"

    def run(*args: str) -> None:
        subprocess.run([ssl, *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(f["ca_key"]),
        "-out", str(f["ca"]), "-days", str(days), "-subj", "/CN=Hotline 109 test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    csr = directory / "server.csr"
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(f["key"]), "-out", str(csr),
        "-subj", "/CN=127.0.0.1")
    ext = directory / "server.ext"
    sans = ",".join(f"IP:{ip}" for ip in ips)
    ext.write_text(f"subjectAltName={sans},DNS:localhost\n"
                   "extendedKeyUsage=serverAuth,clientAuth\n"
                   "basicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(f["ca"]), "-CAkey", str(f["ca_key"]),
        "-CAcreateserial", "-out", str(f["cert"]), "-days", str(days), "-extfile", str(ext))
    for p in f.values():
        os.chmod(p, 0o600)
    return f

# ------------------------------------------------------------- postgres --

def postgres_bindir() -> Path:
    """The newest installed PostgreSQL's server tools (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                   else 0)
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise RuntimeError("PostgreSQL's server is not installed: run `make deps` "
                       "(Debian package postgresql)")


class Postgres:
    """A throwaway PostgreSQL cluster on loopback: initdb into a fresh directory,
    start, wait on pg_isready, and at the end stop and delete it.

    initdb refuses to run as root, so as root every server command runs as the
    `postgres` user (Debian's package creates it) and the directory is theirs.
    Password authentication over TCP (scram), so clients exercise the password
    path; `password` is written to a file only the server's user reads.
    Durability is off (fsync, full-page writes): the data dies with the test run.
    The default collation is ICU's en-US, as on many real servers: text that
    must compare bytewise (ISO times, ids) has to say so, and tests see it if not.
    """

    def __init__(self, port: int, *, user: str = "hotline", password: str | None = None,
                 base: Path | None = None) -> None:
        self.port = port
        self.user = user
        self.password = password or secrets.token_urlsafe(18)
        self.base = base
        self.dir: Path | None = None
        self.bindir = postgres_bindir()

    @property
    def data(self) -> Path:
        assert self.dir is not None
        return self.dir / "data"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def _as_server_user(self, argv: list[str], **kw) -> subprocess.CompletedProcess[str]:
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, **kw)

    def start(self, timeout: float = 30.0) -> None:
        """Ready to connect when it returns; on failure nothing is left behind."""
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"hotline-pg-{self.port}-", dir=self.base))
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        proc = self._as_server_user([
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user,
            f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
            "-E", "UTF8", "--locale=C.UTF-8", "--locale-provider=icu", "--icu-locale=en-US",
            "--no-sync"])
        pwfile.unlink()
        if proc.returncode != 0:
            raise RuntimeError(f"initdb failed ({proc.returncode}): {proc.stderr[-2000:]}")
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                f"-c unix_socket_directories={self.dir} -c fsync=off "
                "-c full_page_writes=off -c synchronous_commit=off")
        proc = self._as_server_user([str(self.bindir / "pg_ctl"), "-D", str(self.data),
                                     "-l", str(self.dir / "server.log"), "-o", opts, "-W",
                                     "start"])
        if proc.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {proc.stderr[-2000:]}")
        t0 = time.monotonic()
        deadline = t0 + timeout
        while not self.ready():
            # the postmaster removes its pid file when it gives up (port taken, bad option)
            gone = not (self.data / "postmaster.pid").exists()
            if gone and time.monotonic() - t0 > 2:
                raise RuntimeError(f"PostgreSQL on 127.0.0.1:{self.port} exited at start\n"
                                   f"{_tail(self.dir / 'server.log')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL on 127.0.0.1:{self.port} not ready in "
                                   f"{timeout:.0f}s\n{_tail(self.dir / 'server.log')}")
            time.sleep(0.1)

    def ready(self) -> bool:
        """pg_isready: the server accepts connections on its TCP port."""
        return subprocess.run([str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1",
                               "-p", str(self.port)], check=False).returncode == 0

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL as the superuser over the cluster's own socket (trusted)."""
        assert self.dir is not None
        proc = self._as_server_user([str(self.bindir / "psql"), "-X", "-q", "-At", "-v",
                                     "ON_ERROR_STOP=1", "-h", str(self.dir), "-p",
                                     str(self.port), "-U", self.user, "-d", dbname, "-c", sql])
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed: {proc.stderr.strip()}")
        return proc.stdout

    def stop(self) -> None:
        if self.dir is None:
            return
        if (self.data / "postmaster.pid").exists():
            self._as_server_user([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m",
                                  "fast", "-w", "stop"])
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None


# --------------------------------------------------------- redis sentinel --

class RedisSentinels:
    """A Redis primary, one replica and three sentinels on loopback, for the
    failover tests: what docs/deploy.md recommends, on one host.

    Ports come from the stack's offset: primary 6440+offset, replica 6441+offset,
    sentinels 26440+offset..+2. The primary and the replica require `password`
    (the replica and the sentinels log in with it); the sentinels require
    `sentinel_password`. Sentinels give up on a silent primary after
    `down_after_ms` (quorum 2), so a test's failover takes a few seconds.
    Both passwords are written to files in `dir` (0600), as the app reads them.
    """

    SERVICE = "hotline"

    def __init__(self, directory: Path, offset: int, *, down_after_ms: int = 1000) -> None:
        self.dir = directory
        self.primary_port = 6440 + offset
        self.replica_port = 6441 + offset
        self.sentinel_ports = [26440 + offset + i for i in range(3)]
        self.down_after_ms = down_after_ms
        self.password = secrets.token_urlsafe(18)
        self.sentinel_password = secrets.token_urlsafe(18)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def sentinels(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.sentinel_ports]

    @property
    def password_file(self) -> Path:
        return self.dir / "redis_password"

    @property
    def sentinel_password_file(self) -> Path:
        return self.dir / "sentinel_password"

    def app_settings(self) -> dict:
        """The app config's `redis:` section for this group (no `url`)."""
        return {"password": {"file": str(self.password_file)},
                "sentinel": {"sentinels": self.sentinels, "service_name": self.SERVICE,
                             "password": {"file": str(self.sentinel_password_file)}}}

    def _redis_argv(self, name: str, port: int) -> list[str]:
        d = self.dir / name
        d.mkdir(parents=True, exist_ok=True)
        return [shutil.which("redis-server") or "redis-server", "--port", str(port),
                "--bind", "127.0.0.1", "--dir", str(d), "--appendonly", "yes",
                "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes",
                "--requirepass", self.password, "--masterauth", self.password,
                "--logfile", str(d / "redis.log")]

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.procs[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def start_redis(self, name: str) -> None:
        """(Re)start `primary` or `replica`; a restarted old primary rejoins as the
        replica the sentinels reconfigure it into."""
        port = self.primary_port if name == "primary" else self.replica_port
        argv = self._redis_argv(name, port)
        if name == "replica":
            argv += ["--replicaof", "127.0.0.1", str(self.primary_port)]
        self._spawn(name, argv)
        _wait(lambda: _redis_ping(port, self.password), 10, f"redis {name}", self.procs[name],
              self.dir / name / "redis.log")

    def start(self, timeout: float = 20.0) -> None:
        """Ready when it returns: the replica in sync, every sentinel sees the others."""
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path, value in ((self.password_file, self.password),
                            (self.sentinel_password_file, self.sentinel_password)):
            path.write_text(value + "\n")
            path.chmod(0o600)
        self.start_redis("primary")
        self.start_redis("replica")
        for i, port in enumerate(self.sentinel_ports):
            d = self.dir / f"sentinel{i}"
            d.mkdir(parents=True, exist_ok=True)
            conf = d / "sentinel.conf"  # a sentinel rewrites its own config file
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {d}\nlogfile {d / 'sentinel.log'}\n"
                f"requirepass {self.sentinel_password}\n"
                f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.primary_port} 2\n"
                f"sentinel auth-pass {self.SERVICE} {self.password}\n"
                f"sentinel down-after-milliseconds {self.SERVICE} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.SERVICE} 10000\n"
                f"sentinel parallel-syncs {self.SERVICE} 1\n")
            conf.chmod(0o600)
            self._spawn(f"sentinel{i}", [shutil.which("redis-server") or "redis-server",
                                         str(conf), "--sentinel"])
        _wait(lambda: self.info_replication(self.replica_port).get("master_link_status") == "up"
              and all(self._sentinel_sees_all(p) for p in self.sentinel_ports), timeout,
              "redis sentinels", self.procs["sentinel0"], self.dir / "sentinel0/sentinel.log")

    def _cli(self, port: int, *args: str, password: str | None = None) -> str:
        env = dict(os.environ, REDISCLI_AUTH=password or self.password)
        return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                              text=True, timeout=5, env=env).stdout

    def info_replication(self, port: int) -> dict[str, str]:
        out = self._cli(port, "INFO", "replication")
        return dict(ln.split(":", 1) for ln in out.splitlines() if ":" in ln)

    def _sentinel_sees_all(self, port: int) -> bool:
        out = self._cli(port, "SENTINEL", "MASTER", self.SERVICE,
                        password=self.sentinel_password).split()
        fields = dict(zip(out[::2], out[1::2], strict=False))
        return fields.get("num-other-sentinels") == "2" and fields.get("num-slaves") == "1"

    def primary(self) -> int | None:
        """The port the sentinels name as the primary now (None: none answers)."""
        for port in self.sentinel_ports:
            out = self._cli(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.SERVICE,
                            password=self.sentinel_password).split()
            if len(out) == 2 and out[1].isdigit():
                return int(out[1])
        return None

    def kill(self, name: str) -> None:
        """SIGKILL, as a crashed host: no goodbye to the replica or the sentinels."""
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        for name in list(self.procs):
            proc = self.procs.pop(name)
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


# ------------------------------------------------------------------ stack --

@dataclass(frozen=True)
class Ports:
    offset: int

    @property
    def sip(self) -> int:
        return 5060 + self.offset

    @property
    def http(self) -> int:
        return 8088 + self.offset

    @property
    def ami(self) -> int:
        return 5038 + self.offset

    @property
    def agi(self) -> int:
        return 4573 + self.offset

    @property
    def app_http(self) -> int:
        return 8109 + self.offset

    @property
    def redis(self) -> int:
        return 6390 + self.offset

    @property
    def sip_tls(self) -> int:
        return 5061 + self.offset

    @property
    def rtp(self) -> tuple[int, int]:
        # offsets above 2176 (pytest-xdist workers: tests/support/workers.py) would run
        # past port 65535: they wrap round onto lower ranges, which other stacks may use
        # too (Asterisk skips an RTP port that is taken); offsets up to 2176 are unchanged
        base = 20000 + (self.offset * 20) % 43540
        return base, base + 1999


class Stack:
    """One named stack: its own Asterisk instance dir, Redis, app process and ports."""

    def __init__(self, name: str = "main", offset: int = 0, rootfs: Path = DEFAULT_ROOTFS,
                 config: Path = ROOT / "config/hotline.yaml", app_name: str = "hotline",
                 site: str | None = None, sip_address: str = "127.0.0.1",
                 carrier: str = "127.0.0.1", redis_port: int | None = None,
                 tls: bool = False) -> None:
        """`site` renders one site's server (its agents, trunks to the others, SIP on
        `sip_address`); `redis_port` shares another stack's Redis instead of starting one;
        `tls` adds SIP over TLS with SRTP required for agents, on a throwaway CA."""
        self.tls = tls
        self.name = name
        self.ports = Ports(offset)
        self.site = site
        self.sip_address = sip_address
        self.carrier = carrier
        self.redis_port = redis_port or self.ports.redis
        self.rootfs = rootfs
        self.base_config = config
        self.app_name = app_name
        self.dir = ROOT / ".stack" / name
        self.inst_rel = f"/srv/hotline/{name}"
        self.inst = rootfs / self.inst_rel.lstrip("/")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def pki(self) -> dict[str, Path]:
        """The stack's throwaway CA and server certificate (host paths)."""
        return make_test_pki(self.dir / "secrets" / "tls")

    def _tls_spec(self):  # -> ari_app.deploy.settings.TlsSpec | None
        """Asterisk runs in the chroot: its copies of the files sit in the instance dir."""
        if not self.tls:
            return None
        from ari_app.deploy.settings import TlsSpec

        inside = self.inst / "tls"
        inside.mkdir(parents=True, exist_ok=True, mode=0o700)
        names = {"cert": "server.crt", "key": "server.key", "ca": "ca.crt"}
        for key, name in names.items():
            shutil.copyfile(self.pki[key], inside / name)
            os.chmod(inside / name, 0o600)
        rel = f"{self.inst_rel}/tls"
        return TlsSpec(cert_file=f"{rel}/server.crt", priv_key_file=f"{rel}/server.key",
                       ca_list_file=f"{rel}/ca.crt", trunks="plain")

    # -- files ---------------------------------------------------------------
    def secret(self, key: str) -> str:
        d = self.dir / "secrets"
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        f = d / key
        if not f.exists():
            f.write_text(secrets.token_urlsafe(24))
            f.chmod(0o600)
        return f.read_text().strip()

    @property
    def app_config(self) -> Path:
        return self.dir / "hotline.yaml"

    @property
    def app_log(self) -> Path:
        return self.dir / "app.log"

    @property
    def asterisk_conf(self) -> str:
        return f"{self.inst_rel}/etc/asterisk.conf"

    def _raw_config(self) -> dict:
        import yaml  # only needed once the venv exists (render time)

        return yaml.safe_load(self.base_config.read_text(encoding="utf-8"))

    def _plan(self):  # -> ari_app.deploy.render.SitePlan (the venv exists by now)
        """This stack's server as `hotline config render` plans it: the rig's one
        server holding every agent, or one site's server (the two-site tests)."""
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        from ari_app.deploy import render as dr

        if self.site is None:
            return dr.rig_plan(self.base_config, sip_port=self.ports.sip,
                               http_port=self.ports.http, ami_port=self.ports.ami,
                               agi_port=self.ports.agi, rtp=self.ports.rtp,
                               instance_dir=self.inst_rel, module_dir=module_dir(self.rootfs),
                               tls_port=self.ports.sip_tls, tls=self._tls_spec())
        cfg, deploy = dr.load(self.base_config)
        rtp_start, rtp_end = self.ports.rtp
        server = dr.ServerSpec(address=self.sip_address, sip_port=self.ports.sip,
                               http_port=self.ports.http, ami_port=self.ports.ami,
                               agi_port=self.ports.agi, rtp_start=rtp_start, rtp_end=rtp_end,
                               tls_port=self.ports.sip_tls)
        return dr.plan_site(cfg, deploy, self.site, server=server, instance_dir=self.inst_rel,
                            module_dir=module_dir(self.rootfs),
                            carrier=dr.CarrierSpec(match=[self.carrier]))

    def tokens(self) -> dict[str, str]:
        """The @TOKEN@ values, from the shared renderer (ari_app.deploy.render)."""
        from ari_app.deploy.render import rig_tokens

        return rig_tokens(self._plan(), self.dir / "secrets")

    def render_asterisk(self) -> None:
        """`hotline config render`'s renderer, into this instance's etc dir."""
        for sub in ("etc", "run", "log", "spool", "lib", "cache"):
            (self.inst / sub).mkdir(parents=True, exist_ok=True)
        plan = self._plan()
        from ari_app.deploy.render import render_plan

        render_plan(plan, self.inst / "etc", self.dir / "secrets")

    def render_agents(self) -> str:
        """Agent endpoints come from the config via the app's own renderer."""
        plan = self._plan()
        from ari_app.deploy.render import rig_agents

        return rig_agents(plan, self.dir / "secrets")

    def write_app_config(self) -> None:
        import yaml

        raw = self._raw_config()
        self.secret("api_token")
        raw["ari"] = dict(raw.get("ari", {}), url=f"http://127.0.0.1:{self.ports.http}/",
                          password={"file": "secrets/ari_password"}, app=self.app_name)
        raw["ami"] = dict(raw.get("ami", {}), port=self.ports.ami,
                          secret={"file": "secrets/ami_secret"})
        raw["agi"] = dict(raw.get("agi", {}), port=self.ports.agi)
        raw["redis"] = dict(raw.get("redis", {}), url=f"redis://127.0.0.1:{self.redis_port}/0")
        if self.site is not None:
            raw["site"] = self.site
        # each stack spools its own records: a shared spool would hand one stack's
        # records to another's Redis
        raw["records_spool"] = str(self.dir / "spool" / "records.spool.jsonl")
        raw["http"] = dict(raw.get("http", {}), port=self.ports.app_http,
                           token={"file": "secrets/api_token"})
        if self.tls:  # the app serves HTTPS on the throwaway CA's certificate
            raw["http"].update(tls_cert=str(self.pki["cert"]), tls_key=str(self.pki["key"]))
        if raw.get("agents_file"):
            raw["agents_file"] = str((self.base_config.parent / raw["agents_file"]).resolve())
        raw["prompts_dir"] = str((self.base_config.parent / raw.get("prompts_dir", "prompts"))
                                 .resolve())
        # Asterisk runs in the chroot: the app writes announcements where it reads them
        raw["announcements"] = dict(raw.get("announcements") or {},
                                    dir=str(self.inst / "announcements"),
                                    asterisk_dir=f"{self.inst_rel}/announcements")
        raw["callers"] = dict(raw.get("callers") or {}, salt={"file": "secrets/caller_salt"})
        self.secret("caller_salt")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.app_config.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False),
                                   encoding="utf-8")

    def install_sounds(self, sounds: Path = ROOT / "build/sounds") -> int:
        """Copy rendered prompts into the chroot's sounds tree (only changed files)."""
        dest_root = self.rootfs / "usr/share/asterisk/sounds"
        n = 0
        if not sounds.is_dir():
            return 0
        for src in sounds.rglob("*.wav"):
            rel = src.relative_to(sounds)
            dest = chroot_path(self.rootfs, dest_root / rel.parts[0]) / Path(*rel.parts[1:])
            st = src.stat()
            if dest.exists() and dest.stat().st_size == st.st_size and \
                    dest.stat().st_mtime >= st.st_mtime:
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
            n += 1
        return n

    # -- processes -------------------------------------------------------------
    def _spawn(self, what: str, argv: list[str], logfile: Path,
               env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        out = open(logfile, "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
        out.close()
        (self.dir / f"{what}.pid").write_text(str(proc.pid))
        self.procs[what] = proc
        return proc

    def _pid(self, what: str) -> int | None:
        f = self.dir / f"{what}.pid"
        try:
            pid = int(f.read_text())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def stop(self, what: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        pid = self._pid(what)
        if pid is None:
            return
        proc = self.procs.pop(what, None)
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None:
                if proc.poll() is not None:
                    break
            elif not _alive(pid):
                break
            time.sleep(0.05)
        else:
            log(f"{what} did not stop in {timeout}s: killing")
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            if proc is not None:
                proc.wait()
        (self.dir / f"{what}.pid").unlink(missing_ok=True)

    def start_redis(self) -> None:
        self.stop("redis")
        data = self.dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        self._spawn("redis", [
            shutil.which("redis-server") or "redis-server", "--port", str(self.ports.redis),
            "--bind", "127.0.0.1", "--dir", str(data), "--appendonly", "yes",
            "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes"],
            self.dir / "redis.log")
        _wait(lambda: _redis_ping(self.ports.redis), 10, "redis-server",
              self.procs["redis"], self.dir / "redis.log")

    def start_asterisk(self) -> None:
        self.stop("asterisk")
        self.render_asterisk()
        for stale in ("run/asterisk.ctl", "run/asterisk.pid", "log/messages.log"):
            (self.inst / stale).unlink(missing_ok=True)
        self._spawn("asterisk", ["chroot", str(self.rootfs), "/usr/sbin/asterisk", "-f",
                                 "-C", self.asterisk_conf], self.dir / "asterisk.out")
        _wait(self.ari_ready, 60, "Asterisk (ARI)", self.procs["asterisk"],
              self.inst / "log/messages.log")
        self.asterisk_cli("core waitfullybooted")

    def asterisk_cli(self, command: str) -> str:
        return subprocess.run(["chroot", str(self.rootfs), "/usr/sbin/asterisk", "-C",
                               self.asterisk_conf, "-rx", command],
                              capture_output=True, text=True, timeout=30).stdout

    def start_app(self, extra_env: dict[str, str] | None = None) -> None:
        self.stop("app")
        self.write_app_config()
        exe = ROOT / ".venv/bin/hotline"
        env = dict(os.environ, HOTLINE_LOG_FORMAT="json", **(extra_env or {}))
        self._spawn("app", [str(exe), "--config", str(self.app_config), "run"], self.app_log,
                    env=env)
        _wait(self.app_ready, 30, "hotline app", self.procs["app"], self.app_log)

    @property
    def archive(self) -> Path:
        return self.dir / "archive.sqlite3"

    def start_archiver(self) -> None:
        """The archiver moves records from the Redis stream into the SQLite archive."""
        self.stop("archiver")
        exe = ROOT / ".venv/bin/hotline"
        env = dict(os.environ, HOTLINE_LOG_FORMAT="json")
        self._spawn("archiver", [str(exe), "--config", str(self.app_config), "archiver",
                                 "--db", str(self.archive)], self.dir / "archiver.log", env=env)

    def kill_app(self) -> None:
        self.stop("app", signal.SIGKILL, timeout=5)

    def up(self, app: bool = True) -> None:
        # each stack run starts its logs afresh, so what a test reads is this run's
        for log in ("app.log", "archiver.log"):
            (self.dir / log).unlink(missing_ok=True)
        if self.redis_port == self.ports.redis:
            self.start_redis()
        self.start_asterisk()
        if app:
            self.start_app()
            self.start_archiver()

    def down(self) -> None:
        for what in ("app", "archiver", "asterisk", "redis"):
            self.stop(what)

    # -- probes --------------------------------------------------------------
    def ari(self, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        url = f"http://127.0.0.1:{self.ports.http}/ari/{path.lstrip('/')}"
        auth = base64.b64encode(f"hotline:{self.secret('ari_password')}".encode()).decode()
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"Basic {auth}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            return e.code, None

    def ari_ready(self) -> bool:
        try:
            status, _ = self.ari("GET", "asterisk/info")
        except OSError:
            return False
        return status == 200

    @property
    def app_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.ports.app_http}"

    def app_ready(self) -> bool:
        try:
            ctx = None
            if self.tls:
                import ssl

                ctx = ssl.create_default_context(cafile=str(self.pki["ca"]))
            with urllib.request.urlopen(f"{self.app_url}/health", timeout=2, context=ctx) as r:
                return bool(json.loads(r.read()).get("ready"))
        except (OSError, ValueError):
            return False

    def leftovers(self) -> dict[str, list]:
        """Channels and bridges Asterisk still holds.

        Raises AriUnreachable when ARI does not answer with a list: a blind check
        must never read as "nothing left behind".
        """
        out: dict[str, list] = {}
        for what in ("channels", "bridges"):
            try:
                status, body = self.ari("GET", what)
            except OSError as e:
                raise AriUnreachable(f"ARI on :{self.ports.http} unreachable: {e}") from e
            if status != 200 or not isinstance(body, list):
                raise AriUnreachable(f"ARI GET {what} on :{self.ports.http} answered {status}, "
                                     f"not a list of {what}")
            out[what] = body
        return out


class AriUnreachable(OSError):
    """ARI did not answer a probe (an OSError, so pollers that tolerate a restart can)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with contextlib.suppress(ChildProcessError):  # reap if it is our child and a zombie
        os.waitpid(pid, os.WNOHANG)
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def _redis_ping(port: int, password: str | None = None) -> bool:
    auth = f"AUTH {password}\r\n".encode() if password else b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3) as s:
            s.sendall(auth + b"PING\r\n")
            reply = b""
            while reply.count(b"\r\n") < (2 if auth else 1):
                chunk = s.recv(64)
                if not chunk:
                    break
                reply += chunk
            return reply.endswith(b"+PONG\r\n")
    except OSError:
        return False


def _wait(ready, timeout: float, what: str, proc: subprocess.Popen[bytes], logfile: Path) -> None:
    """Poll a readiness probe; fail fast with the log tail if the process dies."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{_tail(logfile)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout}s:\n{_tail(logfile)}")
        time.sleep(0.05)


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return f"(no log at {path})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="stack", description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["deps", "up", "down", "status", "render"])
    ap.add_argument("--name", default=os.environ.get("HOTLINE_STACK", "main"))
    ap.add_argument("--offset", type=int, default=int(os.environ.get("HOTLINE_PORT_OFFSET", "0")))
    ap.add_argument("--no-app", action="store_true", help="start Asterisk and Redis only")
    args = ap.parse_args(argv)
    stack = Stack(args.name, args.offset)
    if args.command == "deps":
        ensure_host_packages()
        print(ensure_rootfs(stack.rootfs))
    elif args.command == "render":
        stack.render_asterisk()
        stack.write_app_config()
    elif args.command == "up":
        version = ensure_rootfs(stack.rootfs)
        copied = stack.install_sounds()
        log(f"{version}; {copied} prompt files installed")
        stack.up(app=not args.no_app)
        p = stack.ports
        print(f"stack '{stack.name}' up: dial 109 at sip:109@127.0.0.1:{p.sip} "
              f"(ARI :{p.http}, AMI :{p.ami}, app HTTP :{p.app_http}, Redis :{p.redis}); "
              f"app log {stack.app_log}; stop with `make stop`")
    elif args.command == "down":
        stack.down()
        print(f"stack '{stack.name}' stopped")
    elif args.command == "status":
        for what in ("redis", "asterisk", "app"):
            pid = stack._pid(what)
            print(f"{what:9} {'running pid ' + str(pid) if pid else 'stopped'}")
        if stack.ari_ready():
            print(json.dumps(stack.leftovers()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
