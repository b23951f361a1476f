"""docker/: what can be checked without a Docker engine (none runs here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ari_app.config.models import HttpSettings, RedisSettings
from ari_app.deploy.render import ServerSpec

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
_VAR = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?-([^}]*))?\}")
# generated, not committed: each must be documented with the command that makes it
GENERATED = ("build/", "var/")


def env_example() -> dict[str, str]:
    out = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k] = v
    return out


def expand(s: str) -> str:
    env = env_example()
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(2) or ""), s)


def strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in [*strings(k), *strings(v)]]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return []


def test_compose_parses_with_the_services_and_profile() -> None:
    services = COMPOSE["services"]
    assert {"asterisk", "redis", "app", "archiver", "tester"} <= set(services)
    assert services["tester"]["profiles"] == ["tester"]
    assert "--appendonly" in services["redis"]["command"]
    assert services["redis"]["command"][services["redis"]["command"].index("--appendonly") + 1] \
        == "yes"
    assert services["archiver"]["command"][0] == "archiver"
    assert services["app"]["command"] == ["run"]
    assert "sip-tester" in services["tester"]["build"]["dockerfile_inline"]


def test_every_variable_is_in_env_example_or_has_a_default() -> None:
    env = env_example()
    text = (DOCKER / "compose.yaml").read_text()
    readme = (DOCKER / "README.md").read_text()
    for m in _VAR.finditer(text):
        assert m.group(1) in env or m.group(1) in readme, m.group(1)


def test_every_file_compose_names_exists_or_is_documented_as_generated() -> None:
    readme = (DOCKER / "README.md").read_text()
    paths: list[Path] = []
    for svc in COMPOSE["services"].values():
        build = svc.get("build")
        if isinstance(build, dict):
            ctx = (DOCKER / build["context"]).resolve()
            paths.append(ctx)
            if "dockerfile" in build:
                paths.append(ctx / build["dockerfile"])
        for vol in svc.get("volumes", []):
            src = expand(vol).split(":")[0]
            if src.startswith((".", "/")):
                paths.append((DOCKER / src).resolve())
    for sec in COMPOSE.get("secrets", {}).values():
        paths.append((DOCKER / expand(sec["file"])).resolve())
    assert paths
    for p in paths:
        rel = p.relative_to(ROOT).as_posix() if p != ROOT else "."
        if rel.startswith(GENERATED):
            assert rel.split("/")[0] + "/" in readme, f"{rel}: generated but not documented"
            continue
        assert p.exists(), f"compose names {rel}, which does not exist"


def test_dockerfiles_copy_only_what_exists_or_is_rendered() -> None:
    readme = (DOCKER / "README.md").read_text()
    for name in ("Dockerfile.app", "Dockerfile.asterisk"):
        text = (DOCKER / name).read_text()
        for m in re.finditer(r"^COPY (?:--chmod=\S+ )?(?!--from|<<)(\S+)", text, re.M):
            src = m.group(1).replace("${CONF}", "build/asterisk").replace("${SITE}", "doha_hq")
            if src.startswith(GENERATED):
                assert "hotline config render" in readme and "make prompts" in readme
                continue
            assert (ROOT / src).exists(), f"{name}: COPY {src}: missing"


def test_app_image_is_slim_non_root_with_a_doctor_healthcheck() -> None:
    text = (DOCKER / "Dockerfile.app").read_text()
    # multi-stage on python:3.11-slim, or the base scripts/containers.py imports
    assert "ARG BASE=python:3.11-slim" in text and text.count("FROM ${BASE}") == 2
    assert re.search(r"^USER hotline$", text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n.*doctor", text, re.M)
    ast = (DOCKER / "Dockerfile.asterisk").read_text()
    assert "ARG BASE=debian:sid-slim" in ast and "FROM ${BASE}" in ast
    assert '"/usr/sbin/asterisk", "-f"' in ast


def test_ports_agree_with_the_rendered_defaults() -> None:
    env = env_example()
    srv = ServerSpec()
    assert int(env["SIP_PORT"]) == srv.sip_port
    assert int(env["ARI_PORT"]) == srv.http_port
    assert int(env["AMI_PORT"]) == srv.ami_port
    assert int(env["AGI_PORT"]) == srv.agi_port
    assert (int(env["RTP_START"]), int(env["RTP_END"])) == (srv.rtp_start, srv.rtp_end)
    assert int(env["APP_HTTP_PORT"]) == HttpSettings().port
    assert int(env["REDIS_PORT"]) == int(RedisSettings().url.rsplit(":", 1)[1].split("/")[0])
    services = COMPOSE["services"]
    assert expand(services["tester"]["command"][-1]) == f"127.0.0.1:{srv.sip_port}"
    redis_cmd = [expand(x) for x in services["redis"]["command"]]
    assert redis_cmd[redis_cmd.index("--port") + 1] == env["REDIS_PORT"]


def test_app_drain_fits_in_the_stop_grace_period() -> None:
    from ari_app.config.models import ShutdownSettings

    grace = COMPOSE["services"]["app"]["stop_grace_period"]
    assert int(grace.rstrip("s")) > ShutdownSettings().drain_timeout


def test_docs_say_how_the_images_are_built_and_run_here() -> None:
    for p in (DOCKER / "README.md", ROOT / "docs/deploy.md"):
        assert "make test-containers" in p.read_text(), p
