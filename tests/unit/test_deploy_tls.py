"""`deploy.tls`: SIP over TLS and SRTP in what `hotline config render` writes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from ari_app.deploy import render as dr
from ari_app.deploy import verify_tls as vt
from tests.unit.test_deploy_render import SITES, lab_deploy, with_deploy

TLS = {"cert_file": "/etc/asterisk/tls/site.crt", "priv_key_file": "/etc/asterisk/tls/site.key",
       "ca_list_file": "/etc/asterisk/tls/ca.crt"}


def render(tmp_path: Path, deploy: dict[str, Any], site: str = "doha_hq") -> Path:
    tmp_path.mkdir(exist_ok=True)
    cfg, settings = dr.load(with_deploy(tmp_path, deploy))
    out = tmp_path / "out"
    dr.render_site(cfg, settings, site, out, tmp_path / "secrets")
    return out


def sections(text: str) -> list[tuple[str, dict[str, str]]]:
    """[(name, {key: value})] in file order; sections of one name stay apart."""
    out: list[tuple[str, dict[str, str]]] = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            out.append((s[1:-1], {}))
        elif "=" in s and not s.startswith(";") and out:
            k, v = s.split("=", 1)
            out[-1][1][k.strip()] = v.strip()
    return out


def endpoints(text: str) -> dict[str, dict[str, str]]:
    return {n: kv for n, kv in sections(text) if kv.get("type") == "endpoint"}


def test_tls_renders_a_tls_transport_naming_the_files_by_path(tmp_path: Path) -> None:
    out = render(tmp_path, {**lab_deploy(), "tls": TLS})
    pjsip = (out / "pjsip.conf").read_text()
    transport = dict(sections(pjsip))["transport-tls"]
    assert transport == {"type": "transport", "protocol": "tls", "bind": "127.0.1.1:5061",
                         "cert_file": TLS["cert_file"], "priv_key_file": TLS["priv_key_file"],
                         "ca_list_file": TLS["ca_list_file"], "method": "tlsv1_2",
                         "verify_server": "yes", "verify_client": "no",
                         "require_client_cert": "no"}
    assert vt.tls_files(pjsip) == TLS
    assert re.search(r"^load = res_srtp\.so$", (out / "modules.conf").read_text(), re.M)


def test_tls_makes_every_agent_require_srtp_over_tls(tmp_path: Path) -> None:
    out = render(tmp_path, {**lab_deploy(), "tls": TLS})
    eps = endpoints((out / dr.AGENTS_FILE).read_text())
    assert eps, "no agent endpoints rendered"
    for name, ep in eps.items():
        assert (ep["transport"], ep["media_encryption"], ep["media_encryption_optimistic"]) \
            == ("transport-tls", "sdes", "no"), name
    manifest = json.loads((out / dr.MANIFEST).read_text())
    trunks = [f"site-{s}" for s in SITES if s != "doha_hq"]
    assert manifest["tls"]["srtp_endpoints"] == sorted([*eps, *trunks])
    assert manifest["tls"]["port"] == 5061


def test_tls_trunks_run_over_tls_with_srtp_and_match_by_address(tmp_path: Path) -> None:
    out = render(tmp_path, {**lab_deploy(), "tls": TLS})
    secs = sections((out / "pjsip.conf").read_text())
    for i, site in enumerate(SITES[1:], start=2):
        name = f"site-{site}"
        by_type = {kv["type"]: kv for n, kv in secs if n == name}
        ep = by_type["endpoint"]
        assert (ep["transport"], ep["media_encryption"], ep["media_encryption_optimistic"]) \
            == ("transport-tls", "sdes", "no"), name
        # escaped: a bare `;` would start a comment and drop transport=tls
        assert by_type["aor"]["contact"] == f"sip:127.0.1.{i}:5061\\;transport=tls"
        assert by_type["identify"]["match"] == f"127.0.1.{i}"
    # the carrier is a public trunk: it stays on UDP, unencrypted
    assert endpoints((out / "pjsip.conf").read_text())["carrier"]["transport"] == "transport-udp"


def test_without_tls_the_render_is_as_before(tmp_path: Path) -> None:
    out = render(tmp_path, lab_deploy())
    pjsip = (out / "pjsip.conf").read_text()
    assert "transport-tls" not in pjsip and "media_encryption" not in pjsip
    assert "media_encryption" not in (out / dr.AGENTS_FILE).read_text()
    assert not re.search(r"^load = res_srtp", (out / "modules.conf").read_text(), re.M)
    assert json.loads((out / dr.MANIFEST).read_text())["tls"] is None
    assert vt.tls_files(pjsip) == {}


def test_agents_plain_keeps_phones_on_udp_while_trunks_use_tls(tmp_path: Path) -> None:
    out = render(tmp_path, {**lab_deploy(), "tls": {**TLS, "agents": "plain"}})
    for name, ep in endpoints((out / dr.AGENTS_FILE).read_text()).items():
        assert ep["transport"] == "transport-udp" and "media_encryption" not in ep, name
    assert endpoints((out / "pjsip.conf").read_text())["site-dukhan"]["transport"] \
        == "transport-tls"


@pytest.mark.parametrize(("tls", "msg"), [
    ({**TLS, "cert_file": "-----BEGIN CERTIFICATE-----MIIB"}, "PEM contents"),
    ({**TLS, "priv_key_file": "site.key"}, "absolute path"),
    ({**TLS, "method": "tlsv1"}, "method"),
    ({k: v for k, v in TLS.items() if k != "ca_list_file"}, "ca_list_file"),
])
def test_bad_tls_settings_are_refused_with_the_key(tmp_path: Path, tls: dict[str, str],
                                                    msg: str) -> None:
    with pytest.raises(dr.DeployError, match=msg):
        dr.load(with_deploy(tmp_path, {**lab_deploy(), "tls": tls}))


def test_tls_port_inside_the_rtp_range_is_refused(tmp_path: Path) -> None:
    deploy = lab_deploy()
    deploy["servers"]["doha_hq"]["tls_port"] = 15061
    with pytest.raises(dr.DeployError, match=r"tls_port 15061 lies inside the RTP range"):
        dr.load(with_deploy(tmp_path, deploy))


def test_tls_trunks_refuse_two_sites_on_one_address(tmp_path: Path) -> None:
    deploy = lab_deploy()
    deploy["servers"]["dukhan"] = {"address": "127.0.1.5", "sip_port": 5070}  # al_khor's
    render(tmp_path / "udp", deploy)  # over UDP the source port tells them apart
    with pytest.raises(dr.DeployError, match=r"al_khor and dukhan share 127\.0\.1\.5"):
        render(tmp_path / "tls", {**deploy, "tls": TLS})


def test_key_mode_problem_names_a_readable_key(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    key.write_text("x")
    os.chmod(key, 0o600)
    assert vt.key_mode_problem({"priv_key_file": str(key)}) is None
    os.chmod(key, 0o640)
    assert "mode 0640" in (vt.key_mode_problem({"priv_key_file": str(key)}) or "")


def test_endpoint_media_reads_pjsip_show_endpoint() -> None:
    shown = """
 media_encryption                   : sdes
 media_encryption_optimistic        : false
"""
    assert vt.endpoint_media(shown) == ("sdes", "false")
    assert vt.endpoint_media("") == (None, None)
