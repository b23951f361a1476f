"""bench/load.py's stack: the tree's rig with bench agents, short timers and the
baseline dialplan and queue installed next to the app's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from scripts.stack import Stack

BENCH = Path(__file__).resolve().parent
ENTITY = "other"


# ------------------------------------------------------------------ config --

def write_bench_config(tree: Path, n_agents: int, dest_dir: Path) -> Path:
    """The tree's shipped config, with short timers, wrap-up 0 and `n_agents` bench
    agents (English, skill `other`, all at one site) in place of the real roster."""
    raw = yaml.safe_load((tree / "config/hotline.yaml").read_text(encoding="utf-8"))
    raw["timers"] = {"digit_timeout": 3, "tries": 2, "inter_digit_timeout": 2}
    raw["callers"] = dict(raw.get("callers") or {}, anonymous="allow", blocklist=[])
    raw["queue"] = dict(raw.get("queue") or {}, ring_timeout=5, wrapup_seconds=0,
                        announce_first_after=600, announce_interval=600, max_wait=300)
    site = raw["sites"][0]["id"]
    agents = [{"id": f"b{i:03d}", "name": f"Bench Agent {i}", "site": site,
               "endpoint": f"bench-b{i:03d}", "languages": ["en"], "skills": [ENTITY]}
              for i in range(1, n_agents + 1)]
    dest_dir.mkdir(parents=True, exist_ok=True)
    (dest_dir / "agents.yaml").write_text(yaml.safe_dump({"agents": agents}, sort_keys=False))
    raw["agents_file"] = str((dest_dir / "agents.yaml").resolve())
    raw["prompts_dir"] = str((tree / "config" / raw.get("prompts_dir", "prompts")).resolve())
    cfg = dest_dir / "hotline.yaml"
    cfg.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return cfg


def main_menu_prompts(config: Path) -> str:
    from ari_app.config.loader import load_config
    from ari_app.journey.menus import menu_prompts

    cfg = load_config(config)
    return "&".join(f"hotline/{n}" for n in menu_prompts(cfg, cfg.menu))


class BenchStack(Stack):
    """The rig's stack, plus (when the baseline runs) the bench-only baseline dialplan
    and queue in its etc dir."""

    def __init__(self, config: Path, agent_endpoints: list[str], name: str, offset: int,
                 redis_max_connections: int = 0, baseline: bool = True,
                 recording_share: float = 0.0, **kw: Any) -> None:
        super().__init__(name=name, offset=offset, config=config, **kw)
        self.recording_share = recording_share
        self.agent_endpoints = agent_endpoints
        self.baseline = baseline
        self.redis_max_connections = redis_max_connections

    def write_app_config(self) -> None:
        """The rig's app config; optionally a given redis-py connection pool size."""
        super().write_app_config()
        if self.recording_share:  # Asterisk records into this stack's own spool
            raw = yaml.safe_load(self.app_config.read_text(encoding="utf-8"))
            raw["supervision"] = {"recording": {
                "share": self.recording_share,
                "directory": str(self.inst / "spool" / "recording")}}
            self.app_config.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False),
                                       encoding="utf-8")
        if self.redis_max_connections:
            raw = yaml.safe_load(self.app_config.read_text(encoding="utf-8"))
            raw["redis"]["url"] += f"?max_connections={self.redis_max_connections}"
            self.app_config.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False),
                                       encoding="utf-8")

    def render_asterisk(self) -> None:
        super().render_asterisk()
        if not self.baseline:  # the app leg alone needs nothing of the tree's internals here
            return
        etc = self.inst / "etc"
        tpl = (BENCH.parent / "asterisk-config/extensions_bench.conf").read_text(encoding="utf-8")
        active = "\n".join(line[len(";bench; "):] if line.startswith(";bench; ") else
                           ("" if line.startswith(";bench;") else line)
                           for line in tpl.splitlines())
        active = active.replace("{{MAIN_MENU}}", main_menu_prompts(self.base_config))
        (etc / "extensions_bench.conf").write_text(active + "\n", encoding="utf-8")
        members = "\n".join(f"member => PJSIP/{ep},0,{ep}" for ep in self.agent_endpoints)
        (etc / "queues_bench.conf").write_text(
            "; written by bench/load.py\n[bench]\nstrategy = leastrecent\ntimeout = 5\n"
            "retry = 1\nwrapuptime = 0\nringinuse = no\njoinempty = yes\n"
            "leavewhenempty = no\nannounce-frequency = 0\nperiodic-announce-frequency = 0\n"
            "announce-position = no\nannounce-holdtime = no\nautopause = no\n"
            "musicclass = default\n" + members + "\n", encoding="utf-8")


