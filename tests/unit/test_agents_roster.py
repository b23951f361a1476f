"""The shipped roster: loads with the product config and leaves no caller unservable."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ari_app.agents.roster import Roster
from ari_app.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_roster() -> None:
    cfg = load_config(ROOT / "config" / "hotline.yaml")
    assert len(cfg.sites) == 6
    assert len(cfg.agents) == 300
    assert [a.id for a in cfg.agents] == [f"a{n:03d}" for n in range(1, 301)]
    assert all(a.endpoint == f"agent-{a.id}" for a in cfg.agents)
    assert all({"ar", "en"} & set(a.languages) for a in cfg.agents)
    roster = Roster.from_config(cfg)
    assert roster.gaps(cfg, minimum=1) == []
    assert roster.by_endpoint["agent-a007"].id == "a007"


def test_generator_is_deterministic() -> None:
    spec = importlib.util.spec_from_file_location("gen_agents", ROOT / "scripts" / "gen_agents.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cfg = mod.load_menu_config(ROOT / "config" / "hotline.yaml")
    assert mod.generate(cfg) == mod.generate(cfg)
    assert mod.dump(mod.generate(cfg), cfg) == (ROOT / "config" / "agents.yaml").read_text()
