#!/usr/bin/env python3
"""Build docker/'s images with podman and run them as one site's stack.

`make test-containers` runs `containers.py test`: install podman and runc,
make the two base images (no image registry is reachable here), build
Dockerfile.app, Dockerfile.asterisk and Dockerfile.redis, then run
tests/containers/ (which starts the services, places a SIPp call and reads
its record back from the archive) and remove every container it started.

Why not Docker Hub's bases: the only network here is the package registries
(Debian, PyPI). The app's base is a debootstrapped Debian 12 root (Python
3.11, as python:3.11-slim); Asterisk's is the rig's Debian sid chroot
(/opt/hotline/rootfs, scripts/stack.py), Asterisk 22 already in it. Both are
imported once and kept in podman's store, so a second run rebuilds nothing.

Why not podman-compose: Debian 12's 1.0.3 cannot build compose.yaml's
`dockerfile_inline` tester, ignores `profiles` and `depends_on: condition`, so the same
services are started here with `podman run`, in compose.yaml's order, with
its options (host network, read-only app, secrets as files in /run/secrets).

podman here needs `--runtime runc` (crun refuses the host's hybrid cgroups)
and `default_ulimits = []`: both are in a containers.conf of our own
(CONTAINERS_CONF), the host's /etc/containers is left alone.

Stdlib only, like scripts/stack.py, so it runs before the venv exists (the
config render step calls the venv's `hotline`).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

# run as a script: the repo root on the path, so scripts.stack imports as in the tests
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts.stack import (
    DEFAULT_ROOTFS,
    READY_MARK,
    ROOT,
    Ports,
    _redis_ping,
    ensure_host_packages,
    ensure_rootfs,
    module_dir,
)

WORK = ROOT / "build" / "containers"
CONF = WORK / "containers.conf"
SITE = "doha_hq"
# ports clear of the lead's stacks (0, 100) and every engineer's test stacks (100 + n)
DEFAULT_OFFSET = int(os.environ.get("HOTLINE_CONTAINERS_OFFSET", "1400"))
PREFIX = "hotline109-ct"  # containers and volumes we own: removed by `down`
SERVICES = ("redis", "asterisk", "app", "archiver")
VOLUMES = (f"{PREFIX}-redis-data", f"{PREFIX}-app-var")
APP_UID = 10109
# what the app's base holds: Debian 12's Python 3.11 (as python:3.11-slim)
APP_BASE_SUITE = "bookworm"
APP_BASE_PACKAGES = ["python3", "python3-venv", "ca-certificates"]
MIRROR = "http://deb.debian.org/debian"
CONTAINERS_CONF_TEXT = """\
# scripts/containers.py: podman on this host (CONTAINERS_CONF points here)
[containers]
# podman's default nofile ulimit is above the host's hard limit: set none
default_ulimits = []
[engine]
# crun refuses the host's hybrid cgroups (v1 controllers beside the unified tree)
runtime = "runc"
"""
HOST_TOOLS = {"podman": "podman", "runc": "runc", "debootstrap": "debootstrap",
              "sipp": "sip-tester"}


def log(msg: str) -> None:
    print(f"[containers] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- podman --

def podman_env() -> dict[str, str]:
    return dict(os.environ, CONTAINERS_CONF=str(CONF))


def podman(*args: str, check: bool = True, capture: bool = True,
           timeout: float | None = 1800) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["podman", *args], env=podman_env(), text=True, timeout=timeout,
                          capture_output=capture)
    if check and proc.returncode != 0:
        err = (proc.stderr or "")[-3000:] if capture else ""
        raise RuntimeError(f"podman {' '.join(args[:3])} ... failed ({proc.returncode}):\n{err}")
    return proc


def image_exists(ref: str) -> bool:
    return podman("image", "exists", ref, check=False).returncode == 0


def ensure_podman() -> None:
    """podman, runc, debootstrap and sipp from Debian; our containers.conf."""
    ensure_host_packages(HOST_TOOLS)
    WORK.mkdir(parents=True, exist_ok=True)
    if not CONF.exists() or CONF.read_text() != CONTAINERS_CONF_TEXT:
        CONF.write_text(CONTAINERS_CONF_TEXT)


def _import_root(root: Path, ref: str, excludes: tuple[str, ...] = ()) -> None:
    """tar the root into `podman import` (no registry: this is the base image)."""
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "--numeric-owner",
                            *[f"--exclude=./{x}" for x in excludes], "."],
                           stdout=subprocess.PIPE)
    try:
        proc = subprocess.run(["podman", "import", "--change", 'CMD ["/bin/sh"]', "-", ref],
                              stdin=tar.stdout, env=podman_env(), capture_output=True,
                              text=True, timeout=1800)
    finally:
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
    # tar's 1 is "a file changed as we read it": the rig's stacks write logs in
    # the chroot while we read it; 2 and up are real failures
    if proc.returncode != 0 or tar.returncode > 1:
        raise RuntimeError(f"podman import {ref} failed (tar {tar.returncode}, "
                           f"import {proc.returncode}): {proc.stderr[-2000:]}")


def _drop_other_tags(repo: str, keep: str) -> None:
    """An older base under another tag only takes space: the builds use `keep`."""
    out = podman("images", "--format", "{{.Repository}}:{{.Tag}}", repo, check=False).stdout
    for ref in out.split():
        if ref != keep and ref.startswith(repo + ":"):
            podman("rmi", "--force", ref, check=False)


def app_base() -> str:
    """Debian 12 minbase with Python 3.11, debootstrapped once (the slow step:
    minutes, once per machine) and kept in podman's store."""
    key = hashlib.sha256(" ".join([APP_BASE_SUITE, *APP_BASE_PACKAGES]).encode()).hexdigest()
    repo = "localhost/hotline109/base-debian"
    ref = f"{repo}:{APP_BASE_SUITE}-{key[:12]}"
    if image_exists(ref):
        return ref
    t0 = time.monotonic()
    log(f"debootstrap Debian {APP_BASE_SUITE} ({', '.join(APP_BASE_PACKAGES)}) for {ref}")
    tmp = Path(tempfile.mkdtemp(prefix="base-", dir=WORK))
    try:
        proc = subprocess.run(["debootstrap", "--variant=minbase",
                               f"--include={','.join(APP_BASE_PACKAGES)}", APP_BASE_SUITE,
                               str(tmp), MIRROR], capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
            raise RuntimeError(f"debootstrap {APP_BASE_SUITE} failed ({proc.returncode}):\n"
                               f"{tail}")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for f in (tmp / junk).glob("*"):
                if f.is_file():
                    f.unlink()
        _import_root(tmp, ref)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _drop_other_tags(repo, ref)
    log(f"{ref} imported in {time.monotonic() - t0:.0f}s")
    return ref


def asterisk_base(rootfs: Path = DEFAULT_ROOTFS) -> str:
    """The rig's Debian sid chroot with Asterisk 22, imported as it is.

    Tagged by the chroot's ready mark, so a rebuilt chroot is imported again
    and an unchanged one never is. The rig's instance dirs (/srv/hotline:
    its stacks' rendered configs and secrets) stay out."""
    version = ensure_rootfs(rootfs)
    stamp = (rootfs / READY_MARK).read_text()
    key = hashlib.sha256(f"{stamp}{version}".encode()).hexdigest()[:12]
    repo = "localhost/hotline109/base-asterisk"
    ref = f"{repo}:{key}"
    if image_exists(ref):
        return ref
    t0 = time.monotonic()
    log(f"importing {rootfs} ({version}) as {ref}")
    _import_root(rootfs, ref, excludes=("srv/hotline", "proc/*", "sys/*", "dev/*",
                                        "var/cache/apt/archives/*.deb", READY_MARK))
    _drop_other_tags(repo, ref)
    log(f"{ref} imported in {time.monotonic() - t0:.0f}s")
    return ref


# ---------------------------------------------------------------- images --

def image(name: str) -> str:
    return f"localhost/hotline109/{name}:dev"


def host_ca_bundle() -> str | None:
    """The host's CA bundle, for pip in the build: egress here goes through a
    TLS-inspecting proxy whose CA only the host trusts (PIP_CERT, SSL_CERT_FILE)."""
    for cand in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"),
                 "/etc/ssl/certs/ca-certificates.crt"):
        if cand and Path(cand).is_file():
            return cand
    return None


def build_images(rootfs: Path = DEFAULT_ROOTFS) -> dict[str, str]:
    """The three images from docker/, on the local bases; podman's layer cache
    makes an unchanged rebuild a matter of seconds."""
    bases = {"app": app_base(), "asterisk": asterisk_base(rootfs)}
    if not (ROOT / "build/sounds").is_dir():
        raise SystemExit("build/sounds is missing: run `make prompts` first")
    render_site()
    plan = {
        "app": ("docker/Dockerfile.app", {"BASE": bases["app"]}),
        "redis": ("docker/Dockerfile.redis", {"BASE": bases["app"]}),
        f"asterisk-{SITE}": ("docker/Dockerfile.asterisk",
                             {"BASE": bases["asterisk"], "SITE": SITE,
                              "CONF": "build/containers/asterisk"}),
    }
    ca_bundle = host_ca_bundle()
    built = {}
    for name, (dockerfile, args) in plan.items():
        t0 = time.monotonic()
        argv = ["build", "--format", "docker", "--network", "host", "--layers",
                "-f", dockerfile, "-t", image(name)]
        for k, v in args.items():
            argv += ["--build-arg", f"{k}={v}"]
        if ca_bundle is not None:
            argv += ["--secret", f"id=ca_bundle,src={ca_bundle}"]
        proc = podman(*argv, str(ROOT), check=False, timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"podman build {dockerfile} failed ({proc.returncode}):\n"
                               f"{(proc.stdout + proc.stderr)[-4000:]}")
        log(f"built {image(name)} from {dockerfile} in {time.monotonic() - t0:.1f}s")
        built[name] = image(name)
    return built


# ---------------------------------------------------------------- config --

def ports(offset: int = DEFAULT_OFFSET) -> Ports:
    return Ports(offset)


def site_dir() -> Path:
    return WORK / "site"


def secrets_dir() -> Path:
    return WORK / "secrets" / SITE


def render_site(offset: int = DEFAULT_OFFSET) -> Path:
    """The site's config at our ports, then `hotline config render` on it: the
    deploy tooling's own render is what the Asterisk image holds."""
    p = ports(offset)
    rtp_start, rtp_end = p.rtp
    deploy = {
        "instance_root": "/srv/hotline",
        "module_dir": module_dir(DEFAULT_ROOTFS),
        "carrier": {"match": ["127.0.0.1/32"]},
        "inter_site": False,
        "servers": {SITE: {"address": "127.0.0.1", "sip_port": p.sip, "http_port": p.http,
                           "ami_port": p.ami, "agi_port": p.agi, "rtp_start": rtp_start,
                           "rtp_end": rtp_end, "tls_port": p.sip_tls}},
    }
    overrides = {
        "ari": {"url": f"http://127.0.0.1:{p.http}/"},
        "ami": {"port": p.ami},
        "agi": {"port": p.agi},
        "redis": {"url": f"redis://127.0.0.1:{p.redis}/0"},
        "http": {"port": p.app_http},
    }
    d = site_dir()
    d.mkdir(parents=True, exist_ok=True)
    cfg = d / "hotline.yaml"
    # JSON is YAML: the shipped config's sections merged with ours, no yaml module
    # needed here (the venv's `hotline` reads it)
    raw = _venv_python("import json,sys,yaml; print(json.dumps(yaml.safe_load("
                       "open(sys.argv[1], encoding='utf-8'))))", str(ROOT / "config/hotline.yaml"))
    data = json.loads(raw)
    for key, val in overrides.items():
        data[key] = dict(data.get(key) or {}, **val)
    data["site"] = SITE
    data["deploy"] = deploy
    # the image's /app/config holds agents.yaml and prompts/; /app/var is the volume
    data["agents_file"] = "/app/config/" + str(data.get("agents_file") or "agents.yaml")
    data["prompts_dir"] = "/app/config/" + str(data.get("prompts_dir") or "prompts")
    data["records_spool"] = "/app/var/records.spool.jsonl"
    # the render runs on the host: it reads agents.yaml from the repo
    host_cfg = d / "render.yaml"
    host = dict(data, agents_file=str(ROOT / "config" / Path(data["agents_file"]).name),
                prompts_dir=str(ROOT / "config" / Path(data["prompts_dir"]).name))
    host_cfg.write_text(json.dumps(host, ensure_ascii=False, indent=1), encoding="utf-8")
    cfg.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    out = WORK / "asterisk" / SITE
    proc = subprocess.run([str(ROOT / ".venv/bin/hotline"), "--config", str(host_cfg),
                           "config", "render", "--site", SITE, "--out", str(out),
                           "--secrets", str(secrets_dir())],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"hotline config render failed: {proc.stdout}{proc.stderr}")
    _run_secrets()
    return out


def _venv_python(code: str, *args: str) -> str:
    exe = ROOT / ".venv/bin/python"
    if not exe.exists():
        raise SystemExit("no .venv: run `make venv` first")
    return subprocess.run([str(exe), "-c", code, *args], capture_output=True, text=True,
                          check=True, timeout=60).stdout


def _run_secrets() -> Path:
    """The files the app's entrypoint reads from /run/secrets, readable by its
    uid only (the rendered site's ARI/AMI secrets, a token and a salt of ours)."""
    src = secrets_dir()
    for key in ("api_token", "caller_salt"):
        f = src / key
        if not f.exists():
            f.write_text(secrets.token_urlsafe(24))
            f.chmod(0o600)
    dest = WORK / "run-secrets"
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(dest, 0o755)
    for key in ("ari_password", "ami_secret", "api_token", "caller_salt"):
        f = dest / key
        f.unlink(missing_ok=True)
        shutil.copyfile(src / key, f)
        os.chmod(f, 0o400)
        if os.geteuid() == 0:
            os.chown(f, APP_UID, APP_UID)
    return dest


def secret(key: str) -> str:
    return (secrets_dir() / key).read_text().strip()


# ------------------------------------------------------------------ stack --

def cname(service: str) -> str:
    return f"{PREFIX}-{service}"


def run_args(service: str, offset: int = DEFAULT_OFFSET) -> list[str]:
    """compose.yaml's service, as `podman run` arguments."""
    p = ports(offset)
    # no healthcheck timer (podman would want systemd for it): up() runs each
    # image's HEALTHCHECK itself with `podman healthcheck run`
    common = ["run", "-d", "--name", cname(service), "--network", "host",
              "--label", f"hotline109.containers={service}", "--health-interval", "disable"]
    app_like = [*common, "--read-only", "--tmpfs", "/tmp", "--security-opt",
                "no-new-privileges", "-e", "HOTLINE_CONFIG=/app/site/hotline.yaml",
                "-e", "HOTLINE_ARCHIVE=/app/var/archive.sqlite3",
                "-v", f"{site_dir()}:/app/site:ro", "-v", f"{VOLUMES[1]}:/app/var",
                "-v", f"{WORK / 'run-secrets'}:/run/secrets:ro", image("app")]
    if service == "redis":
        return [*common, "-v", f"{VOLUMES[0]}:/data", image("redis"), "redis-server",
                "--bind", "127.0.0.1", "--port", str(p.redis), "--appendonly", "yes",
                "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes"]
    if service == "asterisk":
        # compose's `ulimits: nofile 65536` is refused here (the host's hard limit
        # is lower and runc may not raise it): the host's limit applies
        return [*common, image(f"asterisk-{SITE}")]
    if service == "app":
        return [*app_like, "run"]
    if service == "archiver":
        return [*app_like, "archiver", "--db", "/app/var/archive.sqlite3"]
    raise ValueError(service)


def running(service: str) -> bool:
    proc = podman("inspect", "--format", "{{.State.Running}}", cname(service), check=False)
    return proc.returncode == 0 and proc.stdout.strip() == "true"


def logs(service: str, n: int = 30) -> str:
    proc = podman("logs", "--tail", str(n), cname(service), check=False)
    return (proc.stdout + proc.stderr)[-4000:]


def _wait(service: str, ready: Callable[[], bool], timeout: float) -> None:
    """Poll `ready`; fail fast, with the container's log, if it exits."""
    deadline = time.monotonic() + timeout
    while not ready():
        if not running(service):
            raise RuntimeError(f"container {cname(service)} exited:\n{logs(service)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{cname(service)} not ready after {timeout:.0f}s:\n"
                               f"{logs(service)}")
        time.sleep(0.2)


def ari(method: str, path: str, offset: int = DEFAULT_OFFSET) -> tuple[int, object]:
    url = f"http://127.0.0.1:{ports(offset).http}/ari/{path.lstrip('/')}"
    auth = base64.b64encode(f"hotline:{secret('ari_password')}".encode()).decode()
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"Basic {auth}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        return e.code, None


def ari_ready(offset: int = DEFAULT_OFFSET) -> bool:
    try:
        return ari("GET", "asterisk/info", offset)[0] == 200
    except OSError:
        return False


def app_ready(offset: int = DEFAULT_OFFSET) -> bool:
    try:
        url = f"http://127.0.0.1:{ports(offset).app_http}/health"
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(json.loads(r.read()).get("ready"))
    except (OSError, ValueError):
        return False


def up(offset: int = DEFAULT_OFFSET) -> None:
    """compose.yaml's services in its order, each waited on as its
    `depends_on: condition: service_healthy` says. Starts from nothing."""
    down(quiet=True)
    render_site(offset)
    for vol in VOLUMES:
        podman("volume", "create", vol)
    podman(*run_args("redis", offset))
    _wait("redis", lambda: _redis_ping(ports(offset).redis), 30)
    podman(*run_args("asterisk", offset))
    _wait("asterisk", lambda: ari_ready(offset), 60)
    podman(*run_args("app", offset))
    podman(*run_args("archiver", offset))
    _wait("app", lambda: app_ready(offset), 60)
    # the images' own HEALTHCHECKs: Asterisk fully booted; `hotline doctor`
    # (ARI, the Stasis app, AMI, Redis) in the app's container
    for service in ("asterisk", "app"):
        _wait(service, lambda s=service: healthy(s), 60)
    if not running("archiver"):
        raise RuntimeError(f"container {cname('archiver')} exited:\n{logs('archiver')}")


def healthy(service: str) -> bool:
    return podman("healthcheck", "run", cname(service), check=False,
                  timeout=60).returncode == 0


def ours() -> list[str]:
    """Every container we own, running or not."""
    out = podman("ps", "-a", "--filter", "label=hotline109.containers",
                 "--format", "{{.Names}}", check=False).stdout
    return out.split()


def down(quiet: bool = False) -> None:
    """Stop and remove our containers and volumes; raise if any is left."""
    names = ours()
    if names:
        # the app drains calls on SIGTERM (shutdown.drain_timeout 30 s): wait longer
        podman("rm", "--force", "--time", "45", *names, check=False, timeout=120)
    for vol in VOLUMES:
        podman("volume", "rm", "--force", vol, check=False)
    left = ours()
    if left:
        raise RuntimeError(f"containers left after down: {', '.join(left)}")
    if not quiet:
        log(f"removed {len(names)} containers and the volumes")


def export_records(day_from: str, day_to: str) -> list[dict[str, object]]:
    """The archive's records through the image's own `hotline records export`."""
    proc = podman("exec", cname("archiver"), "hotline-entrypoint", "records", "export",
                  "--from", day_from, "--to", day_to, "--tz", "UTC",
                  "--db", "/app/var/archive.sqlite3", check=False, timeout=60)
    if proc.returncode != 0 and "no archive there" in proc.stderr:
        return []  # the archiver has not written its first record yet
    if proc.returncode != 0:
        raise RuntimeError(f"records export failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


# ------------------------------------------------------------------- main --

def test(pytest_args: list[str]) -> int:
    t0 = time.monotonic()
    ensure_podman()
    build_images()
    t_build = time.monotonic() - t0
    log(f"images ready in {t_build:.0f}s")
    t1 = time.monotonic()
    env = dict(os.environ, HOTLINE_CONTAINERS="1")
    rc = subprocess.run([str(ROOT / ".venv/bin/pytest"), "-q", "-s", "-p", "no:cacheprovider",
                         str(ROOT / "tests/containers"), *pytest_args], cwd=ROOT,
                        env=env).returncode
    down(quiet=True)  # whatever the test did, nothing of ours keeps running
    log(f"build {t_build:.0f}s, run {time.monotonic() - t1:.0f}s, "
        f"total {time.monotonic() - t0:.0f}s")
    return rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="containers", description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["deps", "build", "up", "down", "status", "test"])
    ap.add_argument("pytest_args", nargs="*", help="test: passed on to pytest")
    args = ap.parse_args(argv)
    if args.command != "test" and args.pytest_args:
        ap.error("extra arguments are for `test` only")
    ensure_podman()
    if args.command == "deps":
        print(app_base())
        print(asterisk_base())
    elif args.command == "build":
        t0 = time.monotonic()
        build_images()
        log(f"images ready in {time.monotonic() - t0:.0f}s")
    elif args.command == "up":
        t0 = time.monotonic()
        up()
        p = ports()
        print(f"up in {time.monotonic() - t0:.0f}s: dial 109 at sip:109@127.0.0.1:{p.sip} "
              f"(ARI :{p.http}, app HTTP :{p.app_http}, Redis :{p.redis}); "
              "stop with `scripts/containers.py down`")
    elif args.command == "down":
        down()
    elif args.command == "status":
        print(podman("ps", "-a", "--filter", "label=hotline109.containers").stdout, end="")
    elif args.command == "test":
        return test(args.pytest_args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
