"""`hotline config verify-asterisk` on each of the six rendered sites (real Asterisk 22)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from ari_app.deploy.verify import DEFAULT_ROOTFS
from scripts.stack import ROOT

HOTLINE = str(ROOT / ".venv/bin/hotline")
SITES = [s["id"] for s in yaml.safe_load((ROOT / "config/hotline.yaml").read_text())["sites"]]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not (DEFAULT_ROOTFS / "usr/sbin/asterisk").exists(),
    reason="needs root and the Asterisk chroot (make deps)")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The shipped config with a lab deploy section: six servers, so the
    inter-site trunks are in what Asterisk boots on."""
    d = tmp_path_factory.mktemp("deploy")
    raw = yaml.safe_load((ROOT / "config/hotline.yaml").read_text(encoding="utf-8"))
    raw["agents_file"] = str(ROOT / "config/agents.yaml")
    raw["prompts_dir"] = str(ROOT / "config/prompts")
    raw["deploy"] = {"carrier": {"match": ["127.0.0.1/32"]},
                     "servers": {s: {"address": f"127.0.1.{i + 1}"}
                                 for i, s in enumerate(SITES)}}
    cfg = d / "hotline.yaml"
    cfg.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    r = subprocess.run([HOTLINE, "--config", str(cfg), "config", "render", "--site", "all",
                        "--out", str(d / "out"), "--secrets", str(d / "secrets")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return cfg, d / "out"


def verify(cfg: Path, site_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HOTLINE, "--config", str(cfg), "config", "verify-asterisk",
                           str(site_dir)], capture_output=True, text=True, timeout=90)


def digest(d: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(d.iterdir()):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("site", SITES)
def test_each_rendered_site_boots_clean_with_the_configured_objects(
        rendered: tuple[Path, Path], site: str) -> None:
    cfg, out = rendered
    before = digest(out / site)
    r = verify(cfg, out / site)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith(f"OK {out / site} ({site})"), r.stdout
    assert "no ERROR or WARNING" in r.stdout
    assert digest(out / site) == before, "verify-asterisk changed the rendered directory"


def test_a_broken_site_fails_and_names_the_problems(rendered: tuple[Path, Path],
                                                    tmp_path: Path) -> None:
    cfg, out = rendered
    bad = tmp_path / "dukhan"
    bad.mkdir()
    for f in (out / "dukhan").iterdir():
        bad.joinpath(f.name).write_bytes(f.read_bytes())
    pjsip = bad / "pjsip.conf"
    pjsip.write_text(pjsip.read_text().replace("dtmf_mode = rfc4733", "dtmf_mode = bogus", 1))
    agents = bad / "pjsip_agents.conf"
    blocks = agents.read_text().split("\n; ")  # header lines, then one block per agent
    first = next(i for i, b in enumerate(blocks) if b.split("\n", 1)[0].endswith("(dukhan)"))
    agents.write_text("\n; ".join(blocks[:first] + blocks[first + 1:]))  # one agent gone
    r = verify(cfg, bad)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Error parsing dtmf_mode=bogus" in r.stdout
    gone = blocks[first].split(" ", 1)[0]
    lines = {ln.strip().split(":")[0]: ln for ln in r.stdout.splitlines()}
    # the broken dtmf_mode loses the carrier endpoint; the dropped agent loses both
    assert "carrier" in lines["PJSIP endpoints"] and f"agent-{gone}" in lines["PJSIP endpoints"]
    assert f"missing agent-{gone}" in lines["PJSIP AORs"]


def test_no_instance_is_left_in_the_chroot(rendered: tuple[Path, Path]) -> None:
    left = list((DEFAULT_ROOTFS / "srv/hotline").glob("verify-*"))
    assert not left, left
