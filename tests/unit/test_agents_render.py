"""PJSIP rendering for agent phones, and the secrets it needs."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

from ari_app.agents.render import (
    REALM,
    ensure_agent_secrets,
    md5_cred,
    render_pjsip,
    write_pjsip_agents,
)
from ari_app.config.models import Agent

AGENTS = [
    Agent(id="a001", name='Fatima "F" Al-Kuwari', site="doha_hq", endpoint="agent-a001",
          languages=["ar", "en"], skills=["phcc"]),
    Agent(id="a002", name="Ravi Nair", site="lusail", endpoint="agent-a002",
          languages=["en", "ml"], skills=["health"]),
]


def sections(text: str) -> list[tuple[str, dict[str, str]]]:
    out: list[tuple[str, dict[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith("["):
            out.append((line[1:-1], {}))
        else:
            k, _, v = line.partition("=")
            out[-1][1][k] = v
    return out


def test_secrets_are_private_and_stable(tmp_path: Path) -> None:
    d = tmp_path / "secrets"
    first = ensure_agent_secrets(d, AGENTS)
    assert set(first) == {"a001", "a002"} and first["a001"] != first["a002"]
    assert len(first["a001"]) >= 20
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((d / "a001.secret").stat().st_mode) == 0o600
    assert ensure_agent_secrets(d, AGENTS) == first


def test_rendered_objects(tmp_path: Path) -> None:
    pw = ensure_agent_secrets(tmp_path / "s", AGENTS)
    secs = sections(render_pjsip(AGENTS, pw))
    assert [(n, o["type"]) for n, o in secs[:3]] == [
        ("agent-a001", "endpoint"), ("agent-a001-auth", "auth"), ("agent-a001", "aor")]
    ep, auth, aor = (o for _, o in secs[:3])
    assert ep["context"] == "agents"
    for k, v in {"transport": "transport-udp", "disallow": "all", "allow": "ulaw,alaw",
                 "direct_media": "no", "rtp_symmetric": "yes", "force_rport": "yes",
                 "rewrite_contact": "yes", "dtmf_mode": "rfc4733",
                 "auth": "agent-a001-auth", "aors": "agent-a001"}.items():
        assert ep[k] == v, k
    assert ep["callerid"] == '"Fatima F Al-Kuwari" <a001>'
    assert auth["username"] == "agent-a001"
    # a digest credential, never the password: MD5 of username:realm:password with the
    # realm Asterisk challenges with rendered beside it
    assert "password" not in auth and auth["auth_type"] == "md5"
    assert auth["realm"] == REALM == "hotline109"
    ha1 = hashlib.md5(f"agent-a001:hotline109:{pw['a001']}".encode()).hexdigest()
    assert auth["md5_cred"] == ha1 == md5_cred("agent-a001", pw["a001"])
    assert aor["max_contacts"] == "1"
    assert len(secs) == 6


def test_write(tmp_path: Path) -> None:
    out = write_pjsip_agents(tmp_path / "ast" / "pjsip_agents.conf", AGENTS, tmp_path / "s")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = out.read_text()
    assert "agent-a002" in text
    for f in (tmp_path / "s").iterdir():  # no agent's password is in the rendered file
        assert f.read_text().strip() not in text
