"""verify-asterisk's TLS and SRTP checks (when the render holds `transport-tls`).

The certificate files the rendered pjsip.conf names are copied into the
throwaway instance (Asterisk runs in its chroot) and the copy's paths point at
them. After boot: the transport must be up as TLS, a real TLS handshake to it
must verify against the configured CA at TLS 1.2 or better, the private key
must be readable by its owner only, res_srtp must be running, and every
endpoint the config requires SRTP on must have media_encryption sdes with no
optimistic fallback.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import stat
from collections.abc import Callable
from pathlib import Path

TLS_SECTION = "transport-tls"
TLS_FILES = ("cert_file", "priv_key_file", "ca_list_file")
_FILE_LINE = re.compile(rf"^\s*({'|'.join(TLS_FILES)})\s*=\s*(\S+)\s*$")


class TlsFileError(Exception):
    """A certificate file the render names cannot be read on this host."""


def tls_files(pjsip_text: str) -> dict[str, str]:
    """{cert_file|priv_key_file|ca_list_file: path} of the transport-tls section."""
    found: dict[str, str] = {}
    section = ""
    for line in pjsip_text.splitlines():
        s = line.strip()
        if s.startswith("[") and "]" in s:
            section = s[1:s.index("]")]
            continue
        m = _FILE_LINE.match(line)
        if m and section == TLS_SECTION:
            found[m.group(1)] = m.group(2)
    return found


def copy_into(files: dict[str, str], etc: Path, rel_etc: str) -> dict[str, str]:
    """Copy the named files into `etc/tls` (0600); their paths as the chroot sees them."""
    dest = etc / "tls"
    dest.mkdir(mode=0o700, exist_ok=True)
    out: dict[str, str] = {}
    for key, path in files.items():
        src = Path(path)
        if not src.is_file():
            raise TlsFileError(f"{key} {path}: no such file on this host")
        target = dest / f"{key}.pem"
        shutil.copyfile(src, target)
        os.chmod(target, 0o600)
        out[key] = f"{rel_etc}/tls/{key}.pem"
    return out


def key_mode_problem(files: dict[str, str]) -> str | None:
    key = files.get("priv_key_file")
    if key is None:
        return None
    mode = stat.S_IMODE(os.stat(key).st_mode)
    if mode & 0o077:
        return (f"priv_key_file {key} is mode {mode:04o}: readable beyond its owner "
                "(make it 0600, owned by the Asterisk user)")
    return None


def handshake(port: int, ca_file: str, timeout: float = 5.0) -> tuple[str, str]:
    """A TLS handshake to Asterisk's transport, verified against the CA: (version, cipher)."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # the sites' certificates name their server's address; the throwaway
    # instance listens on loopback, so only the chain is checked here
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw, \
            ctx.wrap_socket(raw) as tls:
        return str(tls.version()), str((tls.cipher() or ("?",))[0])


def endpoint_media(show_endpoint: str) -> tuple[str | None, str | None]:
    """(media_encryption, media_encryption_optimistic) from `pjsip show endpoint X`."""
    def field(name: str) -> str | None:
        m = re.search(rf"^\s*{name}\s*:\s*(\S+)", show_endpoint, re.M)
        return m.group(1) if m else None
    return field("media_encryption"), field("media_encryption_optimistic")


def check(cli: Callable[[str], str], *, port: int, ca_file: str,
          srtp_endpoints: list[str], found: dict[str, int]) -> list[str]:
    problems: list[str] = []
    transports = cli("pjsip show transports")
    if not re.search(rf"^\s*Transport:\s+{TLS_SECTION}\s+tls\b", transports, re.M):
        problems.append(f"PJSIP transport {TLS_SECTION} is not up as TLS")
    try:
        version, _cipher = handshake(port, ca_file)
        found["tls handshake"] = 1
        if version not in ("TLSv1.2", "TLSv1.3"):
            problems.append(f"TLS transport negotiated {version}: below TLS 1.2")
    except (OSError, ssl.SSLError) as e:
        problems.append(f"TLS handshake to the SIP transport failed: {e}")
    modules = cli("module show like res_srtp.so")
    if not re.search(r"^res_srtp\.so\s.*\bRunning\b", modules, re.M):
        problems.append("res_srtp.so is not running: SRTP calls would fail")
    bad: list[str] = []
    for ep in srtp_endpoints:
        enc, optimistic = endpoint_media(cli(f"pjsip show endpoint {ep}"))
        if enc != "sdes" or optimistic != "false":
            bad.append(f"{ep} (media_encryption {enc}, optimistic {optimistic})")
    found["srtp endpoints"] = len(srtp_endpoints) - len(bad)
    for ep in (e for e in srtp_endpoints if e.startswith("site-")):
        contact = re.search(r"^\s*contact\s*:\s*(\S*)", cli(f"pjsip show aor {ep}"), re.M)
        if contact is None or not contact.group(1).endswith(";transport=tls"):
            bad_contact = contact.group(1) if contact else None
            problems.append(f"trunk {ep}: contact {bad_contact} does not say transport=tls "
                            "(Asterisk would not reach the other site over TLS)")
    if bad:
        problems.append(f"endpoints that must require SRTP do not: {', '.join(bad[:10])}"
                        + (" ..." if len(bad) > 10 else ""))
    return problems
