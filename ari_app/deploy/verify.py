"""Boot a throwaway Asterisk on a rendered site config and check what it loaded.

The rendered directory is copied into a fresh instance dir inside the
project's Asterisk chroot (its own etc/run/log/spool and unused loopback
ports, rewritten in the copy, never in the original), booted with
`asterisk -f`, waited on with `core waitfullybooted`, and then:

* any ERROR or WARNING Asterisk logged (or printed before its logger ran) fails;
* the PJSIP endpoints and AORs must be exactly the ones the config says;
* the dialplan must hold exactly the configured numbers in from-carrier, this
  server's agents in from-sites, and the entry and agents contexts;
* every module modules.conf loads must be running;
* with `deploy.tls`: the TLS transport, its handshake, the key's mode, res_srtp
  and SRTP-required endpoints (ari_app/deploy/verify_tls.py).

Asterisk is stopped afterwards and the instance dir removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ari_app.deploy import verify_tls
from ari_app.deploy.render import AGENTS_FILE, CARRIER_CONTEXT, SITE_CONTEXT, SitePlan

DEFAULT_ROOTFS = Path(os.environ.get("HOTLINE_ROOTFS", "/opt/hotline/rootfs"))
VERIFY_LOG = "hotline-verify.log"
_LOGGED = re.compile(r"\b(WARNING|ERROR)\[\d+\]")
_PRINTED = re.compile(r"\b(WARNING|ERROR)\b")
_KEY = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*)(\s*=>?\s*)(.*?)\s*$")
_INSTANCE_DIRS = {
    "astcachedir": "cache", "astetcdir": "etc", "astdbdir": "lib", "astkeydir": "lib",
    "astspooldir": "spool", "astrundir": "run", "astlogdir": "log",
}


class VerifyError(Exception):
    """The throwaway Asterisk could not be set up or started at all."""


@dataclass(frozen=True)
class Expected:
    endpoints: list[str]
    aors: list[str]
    numbers: list[str]
    site_routes: list[str]
    tls: bool = False
    srtp_endpoints: list[str] = field(default_factory=list)

    @classmethod
    def from_plan(cls, plan: SitePlan) -> Expected:
        return cls(plan.endpoints, plan.aors, list(plan.numbers), plan.site_routes,
                   plan.tls is not None, plan.srtp_endpoints)


@dataclass
class VerifyResult:
    problems: list[str] = field(default_factory=list)
    found: dict[str, int] = field(default_factory=dict)
    boot_seconds: float = 0.0
    instance: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


# ---------------------------------------------------------- the copy -------

def module_dir(rootfs: Path) -> str:
    for cand in sorted((rootfs / "usr/lib").glob("*/asterisk/modules")):
        return "/" + str(cand.relative_to(rootfs))
    return "/usr/lib/asterisk/modules"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rewrite(text: str, values: dict[str, str | Callable[[str], str]],
            sections: Callable[[str], bool] = lambda _s: True) -> str:
    """Set `key = value` lines (in the sections `sections` accepts); keep the rest."""
    out: list[str] = []
    section = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and "]" in stripped:
            section = stripped[1:stripped.index("]")]
        m = _KEY.match(line)
        if m and m.group(2) in values and sections(section) and not stripped.startswith(";"):
            new = values[m.group(2)]
            val = new(m.group(4)) if callable(new) else new
            line = f"{m.group(1)}{m.group(2)}{m.group(3)}{val}"
        out.append(line)
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Instance:
    rootfs: Path
    rel: str  # the instance dir as the chroot sees it

    @property
    def host(self) -> Path:
        return self.rootfs / self.rel.lstrip("/")

    @property
    def conf(self) -> str:
        return f"{self.rel}/etc/asterisk.conf"


def prepare(rendered: Path, rootfs: Path) -> tuple[Instance, dict[str, int]]:
    """Copy `rendered` into a fresh instance inside the chroot, on unused ports."""
    if not (rendered / "asterisk.conf").is_file():
        raise VerifyError(f"{rendered}: no asterisk.conf (is it a rendered site?)")
    if not (rootfs / "usr/sbin/asterisk").exists():
        raise VerifyError(f"{rootfs}: no Asterisk chroot there (make deps; $HOTLINE_ROOTFS)")
    inst = Instance(rootfs, f"/srv/hotline/verify-{secrets.token_hex(4)}")
    etc = inst.host / "etc"
    for sub in ("etc", "run", "log", "spool", "lib", "cache"):
        (inst.host / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(inst.host, 0o700)
    for f in rendered.iterdir():
        if f.is_file():
            shutil.copyfile(f, etc / f.name)
            os.chmod(etc / f.name, 0o600)
    ports = {"sip": free_port(socket.SOCK_DGRAM), "http": free_port(), "ami": free_port()}
    base = 40000 + 2 * secrets.randbelow(5000)
    ports["rtp_start"], ports["rtp_end"] = base, base + 200

    def edit(name: str, fn: Callable[[str], str]) -> None:
        p = etc / name
        if p.exists():
            p.write_text(fn(p.read_text(encoding="utf-8")), encoding="utf-8")

    dirs: dict[str, str | Callable[[str], str]] = {
        k: f"{inst.rel}/{v}" for k, v in _INSTANCE_DIRS.items()}
    dirs["astmoddir"] = module_dir(rootfs)
    edit("asterisk.conf", lambda t: rewrite(t, dirs, lambda s: s == "directories"))
    # every SIP transport on loopback, each on its own unused port
    sip_ports = iter([ports["sip"]] + [free_port(socket.SOCK_DGRAM) for _ in range(7)])
    tls = verify_tls.TLS_SECTION
    edit("pjsip.conf", lambda t: rewrite(t, {"bind": lambda _v: f"127.0.0.1:{next(sip_ports)}"},
                                         lambda s: s != tls))
    files = verify_tls.tls_files((etc / "pjsip.conf").read_text(encoding="utf-8"))
    if files:
        ports["sip_tls"] = free_port()
        try:
            inside: dict[str, str | Callable[[str], str]] = dict(
                verify_tls.copy_into(files, etc, f"{inst.rel}/etc"))
        except verify_tls.TlsFileError as e:
            shutil.rmtree(inst.host, ignore_errors=True)
            raise VerifyError(f"deploy.tls: {e}") from None
        inside["bind"] = f"127.0.0.1:{ports['sip_tls']}"
        edit("pjsip.conf", lambda t: rewrite(t, inside, lambda s: s == tls))
    edit("http.conf", lambda t: rewrite(t, {"bindaddr": "127.0.0.1",
                                            "bindport": str(ports["http"])}))
    edit("manager.conf", lambda t: rewrite(t, {"bindaddr": "127.0.0.1",
                                               "port": str(ports["ami"])},
                                           lambda s: s == "general"))
    edit("rtp.conf", lambda t: rewrite(t, {"rtpstart": str(ports["rtp_start"]),
                                           "rtpend": str(ports["rtp_end"])}))
    edit("logger.conf", _add_verify_log)
    return inst, ports


def _add_verify_log(text: str) -> str:
    line = f"{VERIFY_LOG} => notice,warning,error"
    if re.search(r"^\s*\[logfiles\]", text, re.M):
        return re.sub(r"^(\s*\[logfiles\][^\n]*\n?)", lambda m: m.group(1).rstrip("\n") +
                      "\n" + line + "\n", text, count=1, flags=re.M)
    return text.rstrip("\n") + f"\n\n[logfiles]\n{line}\n"


# ---------------------------------------------------------- the boot -------

class Running:
    """A started throwaway Asterisk; `cli()` runs `asterisk -rx` against it."""

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.out = inst.host / "asterisk.out"
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(
                ["chroot", str(inst.rootfs), "/usr/sbin/asterisk", "-f", "-C", inst.conf],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)

    def cli(self, command: str, timeout: float = 20) -> str:
        r = subprocess.run(["chroot", str(self.inst.rootfs), "/usr/sbin/asterisk", "-C",
                            self.inst.conf, "-rx", command],
                           capture_output=True, text=True, timeout=timeout, check=False)
        return r.stdout

    def wait_booted(self, timeout: float) -> None:
        ctl = self.inst.host / "run/asterisk.ctl"
        deadline = time.monotonic() + timeout
        while not ctl.exists():
            if self.proc.poll() is not None:
                raise VerifyError(f"Asterisk exited with {self.proc.returncode} before "
                                  f"booting:\n{self.output_tail()}")
            if time.monotonic() > deadline:
                raise VerifyError(f"Asterisk not up after {timeout}s:\n{self.output_tail()}")
            time.sleep(0.02)
        left = max(1.0, deadline - time.monotonic())
        r = subprocess.run(["chroot", str(self.inst.rootfs), "/usr/sbin/asterisk", "-C",
                            self.inst.conf, "-rx", "core waitfullybooted"],
                           capture_output=True, text=True, timeout=left, check=False)
        if r.returncode != 0 or "fully booted" not in r.stdout.lower():
            raise VerifyError(f"Asterisk did not report fully booted: {r.stdout.strip()} "
                              f"{r.stderr.strip()}\n{self.output_tail()}")

    def output_tail(self, n: int = 20) -> str:
        try:
            lines = self.out.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.cli("core stop now", timeout=5)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


# ---------------------------------------------------------- parsing --------

def pjsip_names(output: str, kind: str) -> list[str]:
    """Object names from `pjsip show endpoints` ("Endpoint:") or `... aors` ("Aor:")."""
    names: list[str] = []
    for line in output.splitlines():
        m = re.match(rf"^\s*{kind}:\s+(\S+)", line)
        if m and not m.group(1).startswith("<"):
            names.append(m.group(1).split("/", 1)[0])
    return sorted(names)


def dialplan_extens(output: str, context: str) -> list[str] | None:
    """Extensions of one context in `dialplan show CONTEXT`; None when the context is missing."""
    if f"[ Context '{context}'" not in output:
        return None
    found: list[str] = []
    inside = False
    for line in output.splitlines():
        if line.startswith("[ Context "):
            inside = f"'{context}'" in line
            continue
        m = re.match(r"^\s+'([^']+)' =>", line)
        if inside and m:
            found.append(m.group(1))
    return sorted(found)


def loaded_modules(output: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^(\S+\.so)\s", output, re.M)}


def _diff(what: str, want: list[str], got: list[str]) -> str | None:
    if sorted(want) == sorted(got):
        return None
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    parts = [f"{what}: the config says {len(want)}, Asterisk has {len(got)}"]
    if missing:
        parts.append(f"missing {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
    if extra:
        parts.append(f"unexpected {', '.join(extra[:10])}{' ...' if len(extra) > 10 else ''}")
    return "; ".join(parts)


def logged_problems(inst: Instance) -> list[str]:
    lines: list[str] = []
    for name in (f"log/{VERIFY_LOG}", "asterisk.out"):
        p = inst.host / name
        if not p.exists():
            continue
        pattern = _LOGGED if name.startswith("log/") else _PRINTED
        for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
            if pattern.search(line):
                lines.append(line.strip())
    return lines


# ---------------------------------------------------------- the check ------

def verify(rendered: Path, expected: Expected, *, rootfs: Path = DEFAULT_ROOTFS,
           timeout: float = 30.0, keep: bool = False) -> VerifyResult:
    if os.geteuid() != 0:
        raise VerifyError("verify-asterisk runs Asterisk in its chroot: run it as root")
    inst, ports = prepare(rendered, rootfs)
    res = VerifyResult(instance=str(inst.host))
    running: Running | None = None
    try:
        t0 = time.monotonic()
        running = Running(inst)
        running.wait_booted(timeout)
        res.boot_seconds = time.monotonic() - t0
        _check_objects(running, expected, rendered, res)
        _check_tls(running, expected, rendered, ports, res)
    finally:
        if running is not None:
            running.stop()
        res.problems[:0] = [f"Asterisk logged: {line}" for line in logged_problems(inst)]
        if not keep:
            shutil.rmtree(inst.host, ignore_errors=True)
    return res


def _check_objects(run: Running, exp: Expected, rendered: Path, res: VerifyResult) -> None:
    endpoints = pjsip_names(run.cli("pjsip show endpoints"), "Endpoint")
    aors = pjsip_names(run.cli("pjsip show aors"), "Aor")
    res.found["endpoints"] = len(endpoints)
    res.found["aors"] = len(aors)
    for problem in (_diff("PJSIP endpoints", exp.endpoints, endpoints),
                    _diff("PJSIP AORs", exp.aors, aors)):
        if problem:
            res.problems.append(problem)
    contexts = {
        # the carrier's own numbers; anything else falls through the includes to
        # the site-local numbers, then to the refusal
        CARRIER_CONTEXT: [*exp.numbers],
        "from-carrier-refuse": ["_X.", "i"],
        SITE_CONTEXT: [*exp.site_routes, "_X.", "i"],
        "hotline-entry": ["s", "blocked", "unavailable"],
        "agents": ["_*2[1-5]", "_*23X", "_8XX", "_X.", "i"],
    }
    for ctx, want in contexts.items():
        got = dialplan_extens(run.cli(f"dialplan show {ctx}"), ctx)
        if got is None:
            res.problems.append(f"dialplan: context {ctx} is missing")
            continue
        res.found[f"dialplan {ctx}"] = len(got)
        problem = _diff(f"dialplan {ctx}", want, got)
        if problem:
            res.problems.append(problem)
    modules_conf = rendered / "modules.conf"
    if modules_conf.exists():
        wanted = re.findall(r"^\s*load\s*=>?\s*(\S+\.so)", modules_conf.read_text(), re.M)
        have = loaded_modules(run.cli("module show"))
        res.found["modules"] = len(have)
        missing = sorted(set(wanted) - have)
        if missing:
            res.problems.append(f"modules not running: {', '.join(missing)}")
    if not (rendered / AGENTS_FILE).exists():
        res.problems.append(f"{AGENTS_FILE} is missing from {rendered}")


def _check_tls(run: Running, exp: Expected, rendered: Path, ports: dict[str, int],
               res: VerifyResult) -> None:
    files = verify_tls.tls_files((rendered / "pjsip.conf").read_text(encoding="utf-8"))
    if not exp.tls:
        if files:
            res.problems.append("pjsip.conf has a TLS transport the config does not set")
        return
    if set(files) != set(verify_tls.TLS_FILES) or "sip_tls" not in ports:
        res.problems.append("the config sets deploy.tls but pjsip.conf has no "
                            f"{verify_tls.TLS_SECTION} with cert_file, priv_key_file, "
                            "ca_list_file")
        return
    problem = verify_tls.key_mode_problem(files)
    if problem:
        res.problems.append(problem)
    res.problems.extend(verify_tls.check(
        run.cli, port=ports["sip_tls"], ca_file=files["ca_list_file"],
        srtp_endpoints=exp.srtp_endpoints, found=res.found))
