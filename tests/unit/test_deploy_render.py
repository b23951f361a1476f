"""`hotline config render`: the shipped templates and config, per site."""

from __future__ import annotations

import json
import re
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from ari_app.cli import main
from ari_app.config.loader import load_config
from ari_app.deploy import render as dr
from ari_app.deploy import verify as dv

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config/hotline.yaml"
CFG = load_config(SHIPPED)
SITES = [s.id for s in CFG.sites]


def agent_endpoints(pjsip_agents: str) -> list[str]:
    out = []
    sections = re.findall(r"^\[([^\]]+)\]\n((?:[^\[].*\n?)*)", pjsip_agents, re.M)
    for name, body in sections:
        if "type=endpoint" in body:
            out.append(name)
    return sorted(out)


def with_deploy(tmp_path: Path, deploy: dict[str, Any]) -> Path:
    raw = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    raw["agents_file"] = str(ROOT / "config/agents.yaml")
    raw["prompts_dir"] = str(ROOT / "config/prompts")
    raw["deploy"] = deploy
    p = tmp_path / "hotline.yaml"
    p.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return p


def lab_deploy() -> dict[str, Any]:
    return {"carrier": {"match": ["127.0.0.1/32"]},
            "servers": {s: {"address": f"127.0.1.{i + 1}"} for i, s in enumerate(SITES)}}


def test_shipped_config_has_six_sites() -> None:
    assert len(SITES) == 6


@pytest.mark.parametrize("site", SITES)
def test_each_site_renders_every_template_with_no_token_left(tmp_path: Path, site: str) -> None:
    cfg, deploy = dr.load(SHIPPED)
    res = dr.render_site(cfg, deploy, site, tmp_path / "out", tmp_path / "secrets")
    templates = sorted(p.name for p in dr.TEMPLATES_DIR.glob("*.conf"))
    assert set(templates) <= set(res.files)
    for name in res.files:
        text = (tmp_path / "out" / name).read_text(encoding="utf-8")
        assert not dr.leftover_tokens(text), f"{site}/{name}: {dr.leftover_tokens(text)}"
        assert stat.S_IMODE((tmp_path / "out" / name).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o700


@pytest.mark.parametrize("site", SITES)
def test_a_site_holds_exactly_its_own_agents(tmp_path: Path, site: str) -> None:
    cfg, deploy = dr.load(SHIPPED)
    dr.render_site(cfg, deploy, site, tmp_path / "out", tmp_path / "secrets")
    text = (tmp_path / "out" / dr.AGENTS_FILE).read_text(encoding="utf-8")
    own = sorted(a.endpoint for a in cfg.agents if a.site == site)
    assert own and agent_endpoints(text) == own
    # the comment on each agent names its site: no other site's agent slipped in
    assert set(re.findall(r"^; \S+ \((\w+)\)$", text, re.M)) == {site}
    # the from-sites context reaches exactly these agents
    ext = (tmp_path / "out" / "extensions.conf").read_text(encoding="utf-8")
    routed = sorted(re.findall(r"^exten => (agent-[^,]+),1,Dial", ext, re.M))
    assert routed == own
    manifest = json.loads((tmp_path / "out" / dr.MANIFEST).read_text())
    assert manifest["site"] == site and manifest["aors"] == own
    assert manifest["endpoints"] == sorted(["carrier", *own])


def test_numbers_reach_the_entry_and_defaults_are_loopback(tmp_path: Path) -> None:
    cfg, deploy = dr.load(SHIPPED)
    dr.render_site(cfg, deploy, "doha_hq", tmp_path / "o", tmp_path / "s")
    ext = (tmp_path / "o/extensions.conf").read_text()
    carrier = ext.split("[from-carrier]")[1].split("\n[")[0]
    assert sorted(re.findall(r"^exten => (\d+),1,", carrier, re.M)) == sorted(cfg.numbers)
    assert "Stasis(hotline," in ext and "agi://127.0.0.1:4573/lookup" in ext
    pjsip = (tmp_path / "o/pjsip.conf").read_text()
    assert "bind = 127.0.0.1:5060" in pjsip and "match = 127.0.0.1/32" in pjsip
    assert "bindaddr = 127.0.0.1\nbindport = 8088" in (tmp_path / "o/http.conf").read_text()
    assert "port = 5038\nbindaddr = 127.0.0.1" in (tmp_path / "o/manager.conf").read_text()
    rtp = (tmp_path / "o/rtp.conf").read_text()
    assert "rtpstart = 10000" in rtp and "rtpend = 20000" in rtp
    assert "astetcdir => /srv/hotline/doha_hq/etc" in (tmp_path / "o/asterisk.conf").read_text()
    # all six on one default address: no trunk to itself, and it says so
    assert "site-" not in pjsip


def test_inter_site_trunks_are_identified_by_address_and_port(tmp_path: Path) -> None:
    cfg, deploy = dr.load(with_deploy(tmp_path, lab_deploy()))
    res = dr.render_site(cfg, deploy, "lusail", tmp_path / "o", tmp_path / "s")
    assert [p.site for p in res.plan.peers] == [s for s in SITES if s != "lusail"]
    pjsip = (tmp_path / "o/pjsip.conf").read_text()
    assert "bind = 127.0.1.4:5060" in pjsip
    for i, s in enumerate(SITES):
        if s == "lusail":
            assert f"[site-{s}]" not in pjsip
            continue
        assert f"[site-{s}]\ntype = identify\nendpoint = site-{s}\nmatch = 127.0.1.{i + 1}:5060" \
            in pjsip
        assert f"contact = sip:127.0.1.{i + 1}:5060" in pjsip
    assert "context = from-sites" in pjsip
    # ARI and AMI stay on loopback even when SIP binds a site address
    assert "bindaddr = 127.0.0.1" in (tmp_path / "o/http.conf").read_text()


def test_ambiguous_deploy_sections_are_refused(tmp_path: Path) -> None:
    cfg = CFG
    clash = dr.DeploySettings.model_validate({"servers": {
        "lusail": {"address": "10.0.0.5"}, "dukhan": {"address": "10.0.0.5"}}})
    with pytest.raises(dr.DeployError, match=r"share 10\.0\.0\.5:5060"):
        dr.plan_site(cfg, clash, "doha_hq")
    inside = dr.DeploySettings.model_validate({"carrier": {"match": ["10.0.0.0/24"]},
                                               "servers": {"lusail": {"address": "10.0.0.5"}}})
    with pytest.raises(dr.DeployError, match="inside the carrier match"):
        dr.plan_site(cfg, inside, "doha_hq")
    unknown = dr.DeploySettings.model_validate({"servers": {"mars": {}}})
    with pytest.raises(dr.DeployError, match="unknown site"):
        dr.plan_site(cfg, unknown, "doha_hq")
    with pytest.raises(dr.DeployError, match="unknown site 'mars'"):
        dr.plan_site(cfg, dr.DeploySettings(), "mars")


@pytest.mark.parametrize("bad", [
    {"servers": {"lusail": {"address": "pbx.example.org"}}},
    {"carrier": {"match": ["not-a-net"]}},
    {"servers": {"lusail": {"rtp_start": 20000, "rtp_end": 20010}}},
    {"servers": {"lusail": {"http_port": 5038}}},
    {"servers": {"lusail": {"sip_port": 15000}}},
    {"instance_root": "relative/path"},
    {"surprise": 1},
])
def test_deploy_model_refuses_bad_values(bad: dict[str, Any]) -> None:
    with pytest.raises(dr.DeployError, match="deploy"):
        dr.deploy_settings({"deploy": bad})


def test_deploy_defaults_are_safe() -> None:
    d = dr.deploy_settings({})
    s = d.server("anything")
    assert (s.address, s.bind, s.control_bind) == ("127.0.0.1",) * 3
    assert (s.sip_port, s.http_port, s.ami_port, s.agi_port) == (5060, 8088, 5038, 4573)
    assert (s.rtp_start, s.rtp_end) == (10000, 20000)
    assert d.carrier.match == ["127.0.0.1/32"] and d.inter_site


def test_per_site_carrier_override(tmp_path: Path) -> None:
    dep = lab_deploy()
    dep["servers"]["dukhan"]["carrier"] = {"match": ["192.0.2.0/28"]}
    cfg, deploy = dr.load(with_deploy(tmp_path, dep))
    assert dr.plan_site(cfg, deploy, "dukhan").carrier.match == ["192.0.2.0/28"]
    assert dr.plan_site(cfg, deploy, "lusail").carrier.match == ["127.0.0.1/32"]


def test_secrets_are_created_private_kept_and_never_printed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sec = tmp_path / "secrets"
    argv = ["--config", str(SHIPPED), "config", "render", "--site", "al_khor",
            "--out", str(tmp_path / "out"), "--secrets", str(sec)]
    assert main(argv) == 0
    first = capsys.readouterr()
    values = [p.read_text().strip() for p in sec.rglob("*") if p.is_file()]
    assert len(values) == 2 + sum(1 for a in CFG.agents if a.site == "al_khor")
    for p in sec.rglob("*"):
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600)
    ari = (sec / "ari_password").read_text().strip()
    assert f"password = {ari}" in (tmp_path / "out/ari.conf").read_text()
    # agents' SIP passwords are in no rendered file; the rendered files are 0600
    agents_conf = (tmp_path / "out/pjsip_agents.conf").read_text()
    assert "md5_cred=" in agents_conf and "password=" not in agents_conf
    for p in (sec / "agents").iterdir():
        pw = p.read_text().strip()
        assert all(pw not in f.read_text() for f in (tmp_path / "out").iterdir())
    for f in (tmp_path / "out").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert main(argv) == 0  # re-render: same secrets, phones stay registered
    second = capsys.readouterr()
    assert (sec / "ari_password").read_text().strip() == ari
    for out in (first, second):
        for v in values:
            assert v not in out.out and v not in out.err
    assert "al_khor: rendered" in first.out


def test_render_all_sites_writes_one_directory_each(tmp_path: Path) -> None:
    cfg_path = with_deploy(tmp_path, lab_deploy())
    assert main(["--config", str(cfg_path), "config", "render", "--site", "all",
                 "--out", str(tmp_path / "out"), "--secrets", str(tmp_path / "sec")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(SITES)
    assert sorted(p.name for p in (tmp_path / "sec").iterdir()) == sorted(SITES)


def test_render_refuses_an_unknown_site(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(SHIPPED), "config", "render", "--site", "atlantis",
                 "--out", str(tmp_path / "o"), "--secrets", str(tmp_path / "s")]) == 2
    assert "unknown site 'atlantis'" in capsys.readouterr().err


def test_templates_hold_only_tokens_the_renderer_fills() -> None:
    plan = dr.plan_site(CFG, dr.DeploySettings(), "doha_hq")
    filled = set(dr.site_tokens(plan, dr.Secrets("x" * 24, "y" * 24, {})))
    used = set()
    for tpl in dr.TEMPLATES_DIR.glob("*.conf"):
        for line in tpl.read_text().splitlines():
            used |= {t.strip("@") for t in dr.leftover_tokens(line)}
    assert used <= filled, used - filled
    readme = (dr.TEMPLATES_DIR / "README.md").read_text()
    for token in used:
        assert f"@{token}@" in readme, f"@{token}@ is not documented in asterisk-config/README"


def test_the_rig_renders_through_the_same_renderer(tmp_path: Path) -> None:
    from scripts.stack import Stack

    name = f"unit-deploy-{tmp_path.name}"
    s = Stack(name=name, offset=700, rootfs=tmp_path / "rootfs")
    try:
        s.render_asterisk()
        etc = s.inst / "etc"
        for f in etc.iterdir():
            assert not dr.leftover_tokens(f.read_text()), f.name
        assert agent_endpoints((etc / dr.AGENTS_FILE).read_text()) == \
            sorted(a.endpoint for a in CFG.agents)  # the rig is one server for all
        pjsip = (etc / "pjsip.conf").read_text()
        assert f"bind = 127.0.0.1:{5060 + 700}" in pjsip and "site-" not in pjsip
        tokens = s.tokens()
        assert tokens["SIP_PORT"] == str(5060 + 700)
        assert tokens["ARI_PASSWORD"] == s.secret("ari_password")
        assert tokens["INSTANCE_DIR"] == f"/srv/hotline/{name}"
    finally:
        shutil.rmtree(s.dir, ignore_errors=True)


# ---- verify-asterisk's parsing and rewriting, without Asterisk ------------

ENDPOINTS = """
 Endpoint:  <Endpoint/CID.....................................>  <State.....>  <Channels.>
        Aor:  <Aor............................................>  <MaxContact>
==========================================================================================

 Endpoint:  agent-a196/a196                                      Unavailable   0 of inf
     InAuth:  agent-a196-auth/agent-a196
        Aor:  agent-a196                                         1
 Endpoint:  carrier                                              Not in use    0 of inf

Objects found: 2
"""

DIALPLAN = """[ Context 'from-carrier' created by 'pbx_config' ]
  '109' =>          1. Set(__HOTLINE_DIALLED=${EXTEN})            [extensions.conf:14]
                    2. Goto(hotline-entry,s,1)                    [extensions.conf:15]
  'i' =>            1. Hangup(1)                                  [extensions.conf:22]
  '_X.' =>          1. Hangup(1)                                  [extensions.conf:21]

-= 3 extensions (4 priorities) in 1 context. =-
"""


def test_parsers_read_asterisk_cli_output() -> None:
    assert dv.pjsip_names(ENDPOINTS, "Endpoint") == ["agent-a196", "carrier"]
    assert dv.pjsip_names(ENDPOINTS, "Aor") == ["agent-a196"]
    assert dv.dialplan_extens(DIALPLAN, "from-carrier") == ["109", "_X.", "i"]
    assert dv.dialplan_extens("There is no existence of 'x' context\n", "x") is None


def test_rewrite_changes_only_the_copy_keys_asked_for() -> None:
    text = "[general]\nport = 5038\nbindaddr = 10.0.0.1\n;port = 1\n[hotline]\nport = 9\n"
    out = dv.rewrite(text, {"port": "1234", "bindaddr": "127.0.0.1"}, lambda s: s == "general")
    assert out == "[general]\nport = 1234\nbindaddr = 127.0.0.1\n;port = 1\n[hotline]\nport = 9\n"
    conf = "[directories]\nastetcdir => /srv/hotline/x/etc\n"
    assert dv.rewrite(conf, {"astetcdir": "/y"}) == "[directories]\nastetcdir => /y\n"
    log = dv._add_verify_log("[general]\n[logfiles]\nmessages.log => notice\n")
    assert f"[logfiles]\n{dv.VERIFY_LOG} => notice,warning,error\nmessages.log" in log
    assert dv.VERIFY_LOG in dv._add_verify_log("[general]\n")
