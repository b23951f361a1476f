"""Encryption between sites (issue 17 part 4) on the real Asterisk 22, Redis and clients.

verify-asterisk on a TLS render; a TLS+SRTP agent (baresip) taking a call; a
phone without SRTP refused; HTTPS from the app; Redis over TLS with an ACL user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ari_app.deploy.verify import DEFAULT_ROOTFS
from scripts.stack import ROOT, make_test_pki

HOTLINE = str(ROOT / ".venv/bin/hotline")
needs_asterisk = pytest.mark.skipif(
    os.geteuid() != 0 or not (DEFAULT_ROOTFS / "usr/sbin/asterisk").exists(),
    reason="needs root and the Asterisk chroot (make deps)")


# ------------------------------------------------------- verify-asterisk ---

@pytest.fixture(scope="module")
def tls_render(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Path]]:
    """The shipped config, six lab servers, deploy.tls on a throwaway CA: doha_hq rendered."""
    d = tmp_path_factory.mktemp("tls")
    pki = make_test_pki(d / "pki")
    raw: dict[str, Any] = yaml.safe_load((ROOT / "config/hotline.yaml").read_text())
    raw["agents_file"] = str(ROOT / "config/agents.yaml")
    raw["prompts_dir"] = str(ROOT / "config/prompts")
    raw["deploy"] = {
        "carrier": {"match": ["127.0.0.1/32"]},
        "servers": {s["id"]: {"address": f"127.0.1.{i + 1}"}
                    for i, s in enumerate(raw["sites"])},
        "tls": {"cert_file": str(pki["cert"]), "priv_key_file": str(pki["key"]),
                "ca_list_file": str(pki["ca"])}}
    cfg = d / "hotline.yaml"
    cfg.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    r = subprocess.run([HOTLINE, "--config", str(cfg), "config", "render", "--site", "doha_hq",
                        "--out", str(d / "out"), "--secrets", str(d / "secrets")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return cfg, d / "out", pki


def verify(cfg: Path, site_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HOTLINE, "--config", str(cfg), "config", "verify-asterisk",
                           str(site_dir)], capture_output=True, text=True, timeout=90)


def copy_of(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


@needs_asterisk
@pytest.mark.integration
def test_verify_asterisk_boots_the_tls_transport_and_srtp(
        tls_render: tuple[Path, Path, dict[str, Path]]) -> None:
    cfg, out, _pki = tls_render
    r = verify(cfg, out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no ERROR or WARNING" in r.stdout
    # the handshake verified against the CA; 95 = 90 agents + 5 TLS trunks
    assert "tls handshake 1" in r.stdout and "srtp endpoints 95" in r.stdout, r.stdout


@needs_asterisk
@pytest.mark.integration
def test_verify_asterisk_names_an_agent_left_without_srtp(
        tls_render: tuple[Path, Path, dict[str, Path]], tmp_path: Path) -> None:
    cfg, out, _pki = tls_render
    bad = copy_of(out, tmp_path / "bad")
    agents = bad / "pjsip_agents.conf"
    agents.write_text(agents.read_text().replace(
        "media_encryption_optimistic=no", "media_encryption_optimistic=yes", 1))
    r = verify(cfg, bad)
    assert r.returncode == 1, r.stdout
    assert "endpoints that must require SRTP do not: agent-a001 (media_encryption sdes, " \
           "optimistic true)" in r.stdout, r.stdout


@needs_asterisk
@pytest.mark.integration
def test_verify_asterisk_fails_a_certificate_the_ca_did_not_sign(
        tls_render: tuple[Path, Path, dict[str, Path]], tmp_path: Path) -> None:
    cfg, out, pki = tls_render
    other = make_test_pki(tmp_path / "other")
    bad = copy_of(out, tmp_path / "bad")
    pjsip = bad / "pjsip.conf"
    pjsip.write_text(pjsip.read_text()
                     .replace(str(pki["cert"]), str(other["cert"]))
                     .replace(str(pki["key"]), str(other["key"])))
    r = verify(cfg, bad)
    assert r.returncode == 1, r.stdout
    assert "TLS handshake to the SIP transport failed" in r.stdout
    assert "CERTIFICATE_VERIFY_FAILED" in r.stdout, r.stdout


@needs_asterisk
@pytest.mark.integration
def test_verify_asterisk_fails_a_key_readable_by_others(
        tls_render: tuple[Path, Path, dict[str, Path]], tmp_path: Path) -> None:
    cfg, out, pki = tls_render
    key = tmp_path / "site.key"
    shutil.copyfile(pki["key"], key)
    key.chmod(0o644)
    bad = copy_of(out, tmp_path / "bad")
    pjsip = bad / "pjsip.conf"
    pjsip.write_text(pjsip.read_text().replace(str(pki["key"]), str(key)))
    r = verify(cfg, bad)
    assert r.returncode == 1, r.stdout
    assert f"priv_key_file {key} is mode 0644" in r.stdout, r.stdout


@needs_asterisk
@pytest.mark.integration
def test_verify_asterisk_refuses_a_missing_certificate(
        tls_render: tuple[Path, Path, dict[str, Path]], tmp_path: Path) -> None:
    cfg, out, pki = tls_render
    bad = copy_of(out, tmp_path / "bad")
    pjsip = bad / "pjsip.conf"
    pjsip.write_text(pjsip.read_text().replace(str(pki["ca"]), "/nonexistent/ca.crt"))
    r = verify(cfg, bad)
    assert r.returncode == 1
    assert "deploy.tls: ca_list_file /nonexistent/ca.crt: no such file on this host" \
        in r.stdout, r.stdout
