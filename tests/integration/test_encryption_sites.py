"""An inter-site trunk over TLS with SRTP, for real: two Asterisk servers rendered
for doha_hq and al_rayyan with `deploy.tls` (trunks: tls_srtp), one app each, one
Redis. A caller at doha_hq is bridged to an agent at al_rayyan through the trunk."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.stack import Ports, Stack, make_test_pki
from tests.integration.test_two_sites import AGENT_B, SITE_A, SITE_B, TwoSites
from tests.support.stackfix import StackUnderTest, write_test_config


@pytest.fixture(scope="module")
def tls_sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoSites]:
    base = int(os.environ.get("HOTLINE_PORT_OFFSET", "0"))
    pa, pb = Ports(320 + base), Ports(420 + base)
    a_name, b_name = f"tlsA{320 + base}", f"tlsB{420 + base}"
    tmp = tmp_path_factory.mktemp("tls-sites")
    # one lab certificate naming both servers' addresses (each checks the other's)
    pki = make_test_pki(tmp / "pki", ips=("127.0.0.1", "127.0.0.2"))
    a = Stack(a_name, 320 + base, config=tmp / "hotline.yaml", site=SITE_A)
    # Asterisk runs in the chroot: the files go where both instances can read them
    inside = a.rootfs / f"srv/hotline/{a_name}-pki"
    inside.mkdir(parents=True, exist_ok=True, mode=0o700)
    for key, name in (("cert", "site.crt"), ("key", "site.key"), ("ca", "ca.crt")):
        shutil.copyfile(pki[key], inside / name)
        (inside / name).chmod(0o600)
    rel = f"/srv/hotline/{a_name}-pki"
    cfg_path: Path = write_test_config(tmp / "hotline.yaml")
    raw: dict[str, Any] = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    servers: dict[str, Any] = {
        s["id"]: {"address": f"127.0.1.{i}", "sip_port": 5060}
        for i, s in enumerate(raw["sites"], start=10)}
    servers[SITE_A] = {"address": "127.0.0.1", "sip_port": pa.sip, "tls_port": pa.sip_tls}
    servers[SITE_B] = {"address": "127.0.0.2", "sip_port": pb.sip, "tls_port": pb.sip_tls}
    raw["deploy"] = {"servers": servers, "tls": {
        "cert_file": f"{rel}/site.crt", "priv_key_file": f"{rel}/site.key",
        "ca_list_file": f"{rel}/ca.crt", "agents": "plain", "trunks": "tls_srtp"}}
    cfg_path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    b = Stack(b_name, 420 + base, config=cfg_path, site=SITE_B,
              sip_address="127.0.0.2", carrier="127.0.0.250", redis_port=pa.redis)
    shutil.rmtree(a.dir / "redis", ignore_errors=True)  # no agent state from an earlier run
    a.up()
    try:
        b.start_asterisk()
        b.start_app()
        two = TwoSites(a, b)
        # doha_hq qualified the trunk at boot, before al_rayyan listened: a refused
        # TLS connection marks it unavailable until the next qualify (60 s). Ask now.
        a.asterisk_cli(f"pjsip qualify site-{SITE_B}")
        two.wait("the TLS trunk to al_rayyan qualified", lambda: any(
            f"site-{SITE_B}/" in line and " Avail " in line
            for line in a.asterisk_cli("pjsip show contacts").splitlines()))
        two.phone(b, AGENT_B)
        two.wait("al_rayyan's agent reachable", lambda: two.reachable(AGENT_B))
        yield two
    finally:
        for phone in locals().get("two", TwoSites(a, b)).phones:
            phone.stop()
        b.down()
        a.down()
        shutil.rmtree(inside, ignore_errors=True)


def trunk_channel_up(stack: Stack, endpoint: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, chans = stack.ari("GET", "channels")  # raises if ARI is unreachable
        assert code == 200 and isinstance(chans, list), (code, chans)
        for c in chans:
            if c["name"].startswith(f"PJSIP/{endpoint}-") and c["state"] == "Up":
                return str(c["id"])
        time.sleep(0.1)
    raise AssertionError(f"no answered {endpoint} channel on {stack.name} in {timeout}s")


def var(stack: Stack, chan: str, name: str) -> str:
    code, body = stack.ari("GET", f"channels/{chan}/variable?variable={name}")
    assert code == 200 and isinstance(body, dict), (name, code, body)
    return str(body["value"])


@pytest.mark.integration
def test_a_call_crosses_the_inter_site_trunk_over_tls_with_srtp(tls_sites: TwoSites) -> None:
    pjsip = (tls_sites.a.inst / "etc/pjsip.conf").read_text()
    assert f"contact = sip:127.0.0.2:{tls_sites.b.ports.sip_tls}\\;transport=tls" in pjsip
    tls_sites.pool(lambda p: p.login(AGENT_B))
    with ThreadPoolExecutor(1) as ex:
        call = ex.submit(tls_sites.call_a, "wait:400,dtmf:2,wait:6000,hangup")
        # on al_rayyan's server, the call arrives from doha_hq's trunk endpoint
        for stack, endpoint in ((tls_sites.b, f"site-{SITE_A}"),
                                (tls_sites.a, f"site-{SITE_B}")):
            chan = trunk_channel_up(stack, endpoint)
            assert var(stack, chan, "CHANNEL(pjsip,secure)") == "1", stack.name  # TLS
            assert var(stack, chan, "CHANNEL(rtp,secure,audio)") == "1", stack.name  # SRTP
        ok, caller = call.result()
    assert ok
    rec = StackUnderTest(tls_sites.a).record_for(caller)  # folds schema-2 record events
    assert rec["outcome"] == "answered" and rec["agent"] == AGENT_B and rec["site"] == SITE_B
    tls_sites.clean()
