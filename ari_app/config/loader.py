"""Load the YAML file and turn validation failures into one readable message."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ari_app.config.models import Agent, HotlineConfig

DEFAULT_PATH = Path("config/hotline.yaml")


class ConfigError(Exception):
    """A config that cannot be used. The message names the file, the key and the reason."""


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("HOTLINE_CONFIG")
    return Path(env) if env else DEFAULT_PATH


def read_yaml(path: Path) -> Any:
    """A YAML file's data; any problem is a ConfigError naming the file (and line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{path}:{where}: not valid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None


def _format(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: {err.error_count()} problem(s)"]
    for e in err.errors(include_url=False):
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def _load_agents(path: Path) -> list[Any]:
    data = read_yaml(path)
    if isinstance(data, dict):
        data = data.get("agents")
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected a list of agents (or a mapping with 'agents:')")
    return data


def load_config(path: str | os.PathLike[str] | None = None) -> HotlineConfig:
    """Load and validate; raise ConfigError (never a traceback) on any problem."""
    p = config_path(path)
    data = read_yaml(p)
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys")
    data = dict(data)
    data["source"] = str(p.resolve())
    agents_file = data.get("agents_file")
    if agents_file is not None:
        if not isinstance(agents_file, str):
            raise ConfigError(f"{p}: agents_file: must be a path")
        af = Path(agents_file)
        af = af if af.is_absolute() else p.parent / af
        if data.get("agents"):
            raise ConfigError(f"{p}: agents: give agents inline or in agents_file, not both")
        data["agents"] = _load_agents(af)
    try:
        return HotlineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format(p, e)) from None
    except (TypeError, ValueError, RecursionError) as e:  # pragma: no cover - belt and braces
        raise ConfigError(f"{p}: {e}") from None


def summary(cfg: HotlineConfig) -> dict[str, Any]:
    per_site: dict[str, int] = {s.id: 0 for s in cfg.sites}
    per_lang: dict[str, int] = {lang.code: 0 for lang in cfg.languages}
    for a in cfg.agents:
        per_site[a.site] = per_site.get(a.site, 0) + 1
        for lang in a.languages:
            per_lang[lang] = per_lang.get(lang, 0) + 1
    return {
        "languages": len(cfg.languages),
        "entities": len(cfg.entities),
        "menus": len(cfg.menus),
        "sites": len(cfg.sites),
        "agents": len(cfg.agents),
        "agents_per_site": per_site,
        "agents_per_language": per_lang,
    }


def dump(cfg: HotlineConfig) -> dict[str, Any]:
    """The normalised config with flat lists other tools can count."""
    out = cfg.model_dump(mode="json", exclude={"source", "agents_file"})
    out["entities"] = [
        {**e.model_dump(mode="json"), "skill": e.skill_name, "sector": cfg.sector_of(e.id)}
        for e in cfg.entities
    ]
    out["agents"] = [Agent.model_dump(a, mode="json") for a in cfg.agents]
    return out
