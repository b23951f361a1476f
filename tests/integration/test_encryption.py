"""Encryption between sites (issue 17 part 4) on the real Asterisk 22, Redis and clients.

verify-asterisk on a TLS render; a TLS+SRTP agent (baresip) taking a call; a
phone without SRTP refused; HTTPS from the app. Redis over TLS with an ACL user
is in test_encryption_redis.py.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import os
import re
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from ari_app.deploy.verify import DEFAULT_ROOTFS
from scripts.stack import ROOT, Stack, ensure_rootfs, make_test_pki
from tests.support import baresip
from tests.support.sipp import AgentPhone
from tests.support.stackfix import Agents, StackUnderTest, write_test_config

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


# ------------------------------------------------ TLS + SRTP agent phones ---

@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackUnderTest]:
    """The rig with deploy.tls: agents must use SIP over TLS with SRTP."""
    why = baresip.available()
    if why:
        pytest.skip(why)
    offset = 160 + int(os.environ.get("HOTLINE_PORT_OFFSET", "0"))
    cfg = write_test_config(tmp_path_factory.mktemp("tlsconfig") / "hotline.yaml")
    s = Stack(name=f"tls{offset}", offset=offset, config=cfg, tls=True)
    ensure_rootfs(s.rootfs)
    s.install_sounds()
    s.up()
    try:
        yield StackUnderTest(s)
    finally:
        s.down()


@pytest.fixture
def team(tls_stack: StackUnderTest) -> Iterator[Agents]:
    t = Agents(tls_stack)
    try:
        yield t
    finally:
        t.close()
        left = tls_stack.wait_no_leftovers()
        assert not left["channels"] and not left["bridges"], f"left behind: {left}"


def phone(sut: StackUnderTest, agent_id: str, workdir: Path, **kw: Any) -> baresip.Baresip:
    s = sut.stack
    pw = (s.dir / "secrets" / "agents" / f"{agent_id}.secret").read_text().strip()
    return baresip.Baresip(workdir, endpoint=f"agent-{agent_id}", password=pw,
                           tls_port=s.ports.sip_tls, ca_file=s.pki["ca"], **kw)


def channel_var(sut: StackUnderTest, chan: str, var: str) -> str:
    code, body = sut.stack.ari("GET", f"channels/{chan}/variable?variable={var}")
    assert code == 200 and isinstance(body, dict), (var, code, body)
    return str(body["value"])


def wait_agent_channel_up(sut: StackUnderTest, endpoint: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, chans = sut.stack.ari("GET", "channels")  # raises if ARI is unreachable
        assert code == 200 and isinstance(chans, list), (code, chans)
        for c in chans:
            if c["name"].startswith(f"PJSIP/{endpoint}-") and c["state"] == "Up":
                return str(c["id"])
        time.sleep(0.1)
    raise AssertionError(f"no answered channel to {endpoint} within {timeout}s")


@pytest.mark.integration
def test_a_call_over_tls_with_srtp_reaches_an_agent(
        tls_stack: StackUnderTest, team: Agents, tmp_path: Path) -> None:
    agent = phone(tls_stack, "a014", tmp_path / "a014")
    try:
        agent.wait_for("{0/TLS/v4} 200 OK")  # registered over TLS, Asterisk's cert verified
        team.wait_reachable("a014", True)
        team.login("a014")
        with ThreadPoolExecutor(1) as ex:
            # a plain UDP caller from the carrier side -> 1091 -> the queue -> a014
            call = ex.submit(tls_stack.call, "wait:400,dtmf:2,wait:6000,hangup", None, "1091")
            chan = wait_agent_channel_up(tls_stack, "agent-a014")
            assert channel_var(tls_stack, chan, "CHANNEL(pjsip,secure)") == "1"  # TLS
            assert channel_var(tls_stack, chan, "CHANNEL(rtp,secure,audio)") == "1"  # SRTP
            # and SRTP media really flows: Asterisk decrypted packets from the phone
            deadline = time.monotonic() + 5
            while int(channel_var(tls_stack, chan, "CHANNEL(rtcp,rxcount,audio)") or 0) == 0:
                assert time.monotonic() < deadline, "no SRTP packet received from the agent"
                time.sleep(0.1)
            res, caller = call.result()
        assert res.ok, res.stderr
        rec = tls_stack.record_for(caller)
        assert rec["agent"] == "a014" and rec["outcome"] == "answered", rec
        out = agent.output()
        assert "srtp: audio: SRTP is Enabled" in out, out[-2000:]
    finally:
        agent.stop()


@pytest.mark.integration
def test_a_phone_that_offers_no_srtp_is_refused(
        tls_stack: StackUnderTest, team: Agents, tmp_path: Path) -> None:
    log = tls_stack.stack.inst / "log/messages.log"
    before = log.stat().st_size
    # a015's phone has no SRTP; it dials *22 (log out), a feature the app answers
    plain = phone(tls_stack, "a015", tmp_path / "a015", srtp=False, dial="sip:*22@127.0.0.1")
    try:
        out = plain.wait_for("session closed: 488 Not Acceptable Here")
        assert "{0/TLS/v4} 200 OK" in out  # the account is fine: its media is what fails
        with log.open("rb") as f:
            f.seek(before)
            asterisk_said = f.read().decode(errors="replace")
        assert "agent-a015: Couldn't negotiate stream" in asterisk_said, asterisk_said[-2000:]
    finally:
        plain.stop()



@pytest.mark.integration
def test_a_phone_registered_over_udp_is_never_offered_a_call(
        tls_stack: StackUnderTest, team: Agents) -> None:
    """pjsip's registrar takes a REGISTER on any transport, but Asterisk qualifies
    and calls an agent over its endpoint's transport (TLS): a phone that registered
    over UDP stays unavailable and no call reaches it in clear."""
    s = tls_stack.stack
    pw = (s.dir / "secrets" / "agents" / "a014.secret").read_text().strip()
    udp = AgentPhone(s.ports.sip, "agent-a014", pw, mode="answer")
    try:
        udp.register()  # accepted: 200 OK over UDP
        deadline = time.monotonic() + 15
        while "Unavail" not in (line := next(
                (x for x in s.asterisk_cli("pjsip show contacts").splitlines()
                 if "agent-a014/" in x), "")):
            assert time.monotonic() < deadline, f"contact never qualified unavailable: {line!r}"
            time.sleep(0.2)
        team.login("a014")
        assert team.status("a014").reachable is False
        res, caller = tls_stack.call("wait:400,dtmf:2,wait:4000,hangup", number="1091")
        assert res.ok, res.stderr
        rec = tls_stack.record_for(caller)
        assert rec["agent"] is None and rec["offers"] == [], rec
        assert "INVITE sip:" not in udp.messages()
    finally:
        udp.stop()
        with contextlib.suppress(Exception):
            udp.register(expires=0)

# ------------------------------------------------------------------ HTTPS ---

def https_get(url: str, ca: Path) -> tuple[int, dict[str, str], bytes, str]:
    """(status, headers, body, TLS version) of one GET, verified against `ca`."""
    ctx = ssl.create_default_context(cafile=str(ca))
    req = urllib.request.Request(url)
    with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
        version = r.fp.raw._sock.version()  # the TLS socket under the response
        return r.status, dict(r.headers), r.read(), version


@pytest.mark.integration
def test_the_app_serves_health_and_the_wallboard_over_https_with_hsts(
        tls_stack: StackUnderTest) -> None:
    s = tls_stack.stack
    for path, kind in (("/health", "application/json"), ("/wallboard", "text/html")):
        status, headers, body, version = https_get(f"{s.app_url}{path}", s.pki["ca"])
        assert status == 200, (path, body[:200])
        assert headers["Content-Type"].startswith(kind), headers
        assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
        assert version in ("TLSv1.2", "TLSv1.3")
    # the port speaks TLS only: a plain HTTP request gets no page
    with pytest.raises((urllib.error.URLError, http.client.HTTPException, OSError)):
        urllib.request.urlopen(f"http://127.0.0.1:{s.ports.app_http}/health", timeout=5)


def spki_hash(cert: Path) -> str:
    """base64 SHA-256 of the certificate's public key, as Chromium pins it."""
    pub = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         capture_output=True, check=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.mark.integration
@pytest.mark.browser
def test_chromium_loads_the_wallboard_over_https(tls_stack: StackUnderTest,
                                                 tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.browser.conftest import CHROMEDRIVER, CHROMIUM, chrome_options, text_of

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("chromium and chromium-driver are not installed")
    s = tls_stack.stack
    opts = chrome_options(tmp_path / "profile")
    # trust exactly the stack's certificate (a profile-less Chromium has no place
    # for the throwaway CA); any other certificate still fails the load
    opts.add_argument(f"--ignore-certificate-errors-spki-list={spki_hash(s.pki['cert'])}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.set_page_load_timeout(20)
        driver.get(f"{s.app_url}/wallboard")
        assert driver.current_url.startswith("https://")
        # only a snapshot off the event stream (over HTTPS too) sets the clock
        WebDriverWait(driver, 15, poll_frequency=0.1).until(
            lambda d: re.fullmatch(r"\d\d:\d\d:\d\d", text_of(d, "updated-at") or ""),
            message="no snapshot reached the wallboard over HTTPS")
        secure = driver.execute_script("return window.isSecureContext")
        assert secure is True
    finally:
        driver.quit()
