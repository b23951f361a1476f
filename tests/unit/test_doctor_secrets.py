"""`hotline doctor --asterisk-config DIR`: plain-text secrets in a rendered directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from ari_app.cli import main
from ari_app.doctor import plain_secrets, secret_warnings
from tests.unit.test_deploy_render import SHIPPED


def test_a_fresh_render_holds_no_agent_password(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["--config", str(SHIPPED), "config", "render", "--site", "al_khor",
                 "--out", str(out), "--secrets", str(tmp_path / "sec")]) == 0
    hits = {(h.path.name, h.section, h.key) for h in plain_secrets(out)}
    # what remains in plain text is what Asterisk has no hashed form for here: the ARI
    # user's password (password_format = plain) and the AMI secret
    assert hits == {("ari.conf", "hotline", "password"), ("manager.conf", "hotline", "secret")}


def test_each_plain_secret_is_named_by_file_and_line_never_by_value(tmp_path: Path) -> None:
    (tmp_path / "pjsip_agents.conf").write_text(
        "; password=commented-out is not a secret\n"
        "[agent-a001-auth]\ntype=auth\nauth_type=md5\nmd5_cred=0123456789abcdef\n"
        "[agent-a002-auth]\ntype=auth\nauth_type=userpass\nusername=agent-a002\n"
        "password=hunter2-hunter2-hunter2\n")
    (tmp_path / "ari.conf").write_text(
        "[hashed]\ntype=user\npassword=$6$salt$abc\npassword_format=crypt\n"
        "[plain]\ntype=user\npassword = s3cret-s3cret-s3cret\n")
    (tmp_path / "manager.conf").write_text("[general]\nenabled=yes\n[hotline]\nsecret=\n")
    lines = secret_warnings(tmp_path)
    assert lines == [
        f"WARN {tmp_path / 'ari.conf'}:7: plain-text password in [plain]",
        f"WARN {tmp_path / 'pjsip_agents.conf'}:10: plain-text password in [agent-a002-auth]",
    ]
    assert not any("hunter2" in ln or "s3cret" in ln for ln in lines)


def test_a_clean_directory_and_a_missing_one(tmp_path: Path) -> None:
    (tmp_path / "pjsip.conf").write_text("[agent-auth]\ntype=auth\nmd5_cred=00ff\n")
    assert secret_warnings(tmp_path) == [f"ok   no plain-text secret in {tmp_path}"]
    assert secret_warnings(tmp_path / "nope")[0].startswith("FAIL ")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        plain_secrets(tmp_path / "nope")


def test_the_doctor_command_prints_the_warnings(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pjsip.conf").write_text("[a-auth]\ntype=auth\npassword=plain-plain-plain\n")
    # no ARI/AMI/Redis behind the shipped config here: those lines FAIL, the scan still runs
    main(["--config", str(SHIPPED), "doctor", "--asterisk-config", str(tmp_path)])
    out = capsys.readouterr().out
    assert f"WARN {tmp_path / 'pjsip.conf'}:3: plain-text password in [a-auth]" in out
    assert "plain-plain-plain" not in out
