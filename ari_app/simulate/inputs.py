"""What a simulation is given (demand, roster) and what it reports."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from ari_app.agents.roster import entity_skills
from ari_app.config.models import Agent, HotlineConfig

# ---------------------------------------------------------------- the inputs --

# Assumed when no archive is given; see docs/simulate.md.
DEFAULT_LANGUAGE_MIX: dict[str, float] = {
    "ar": 0.34, "en": 0.26, "ur": 0.09, "hi": 0.08, "ml": 0.08, "bn": 0.06, "ne": 0.05,
    "ta": 0.02, "si": 0.02,
}
# Share of a day's calls per hour of the day (Asia/Qatar), a government
# contact center open around the clock with a late-morning peak.
DEFAULT_HOURLY: tuple[float, ...] = (
    0.6, 0.4, 0.3, 0.3, 0.3, 0.5, 1.2, 3.0, 6.0, 8.0, 8.6, 8.4,
    7.8, 7.2, 6.6, 6.0, 5.6, 5.2, 4.8, 4.2, 3.6, 2.8, 2.0, 1.2,
)
# Sunday..Saturday (Qatar's week: Friday and Saturday are the weekend)
DEFAULT_WEEKDAY: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 0.95, 0.45, 0.6)

MARCH_2025_MIX: dict[str, int] = {
    "phcc": 124_341, "moph": 46_091, "mehe": 19_155, "moci": 21_412, "other": 129_542,
}
MARCH_2025_MENU_ONLY = 15_545  # of "other": ended before a department was chosen


@dataclass(frozen=True)
class Demand:
    """Who calls, when and for how long."""

    calls: int
    entity_mix: Mapping[str, float]
    language_mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_LANGUAGE_MIX))
    start: date = date(2025, 3, 1)
    days: int = 31
    hourly: Sequence[float] = DEFAULT_HOURLY
    weekday: Sequence[float] = DEFAULT_WEEKDAY
    aht: float = 180.0
    aht_dist: str = "lognormal"  # or "exponential"
    aht_cv: float = 1.0
    patience: float | None = 120.0  # mean seconds (exponential); None: nobody hangs up
    ring: float = 0.0  # seconds an agent's phone rings before answering
    uniform: bool = False  # constant rate over the span (the Erlang check)

    def slot_weights(self) -> list[float]:
        """Weight of each hour of the span."""
        out: list[float] = []
        for d in range(self.days):
            day = self.start + timedelta(days=d)
            wd = self.weekday[(day.weekday() + 1) % 7]
            out.extend(1.0 if self.uniform else wd * h for h in self.hourly)
        return out


def split_other(cfg: HotlineConfig, mix: Mapping[str, int], other_key: str = "other",
                menu_only: int = 0) -> dict[str, float]:
    """Spread an 'other' volume evenly over every entity not named in `mix`,
    less `menu_only` calls that never reach a queue."""
    named = {k: float(v) for k, v in mix.items() if k != other_key}
    rest = [e.id for e in cfg.entities if e.id not in named]
    left = max(0.0, float(mix.get(other_key, 0)) - menu_only)
    out = dict(named)
    for e in rest:
        out[e] = left / len(rest)
    return out


def synthetic_roster(cfg: HotlineConfig, per_language: Mapping[str, int],
                     sites: Sequence[str] | None = None) -> list[Agent]:
    """Agents who each speak one language and serve every entity, spread over the sites."""
    site_ids = list(sites or [s.id for s in cfg.sites])
    skills = sorted({s for e in cfg.entities for s in entity_skills(cfg, e.id)})
    out: list[Agent] = []
    for lang, n in per_language.items():
        for i in range(n):
            out.append(Agent(id=f"{lang}{i:04d}", name=f"{lang} {i}",
                             site=site_ids[i % len(site_ids)], endpoint=f"sim-{lang}{i:04d}",
                             languages=[lang], skills=skills))
    return out


# Which agents are logged in during hour slot h of the span; None: all, always.
Schedule = Callable[[int], Iterable[str]] | None


@dataclass
class LangStats:
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    timed_out: int = 0
    no_agents: int = 0
    wait_sum: float = 0.0
    within: int = 0
    est_n: int = 0
    est_abs_err: float = 0.0
    est_phrase_right: int = 0
    busy: float = 0.0
    logged_in: float = 0.0

    def summary(self, target: float) -> dict[str, float | int | None]:
        closed = self.answered + self.abandoned + self.timed_out
        return {
            "offered": self.offered,
            "answered": self.answered,
            "abandoned": self.abandoned,
            "timed_out": self.timed_out,
            "no_agents": self.no_agents,
            "asa": round(self.wait_sum / self.answered, 2) if self.answered else None,
            f"sl{target:g}": round(self.within / closed, 4) if closed else None,
            "abandon_rate": round(self.abandoned / self.offered, 4) if self.offered else None,
            "occupancy": round(self.busy / self.logged_in, 4) if self.logged_in else None,
            "estimate_mae": round(self.est_abs_err / self.est_n, 1) if self.est_n else None,
            "phrase_right": round(self.est_phrase_right / self.est_n, 3) if self.est_n else None,
        }


@dataclass
class Result:
    calls: int
    events: int
    seconds: float
    overall: dict[str, float | int | None]
    by_language: dict[str, dict[str, float | int | None]]
    agent_hours: float

    def as_dict(self) -> dict[str, object]:
        return {"calls": self.calls, "events": self.events, "seconds": self.seconds,
                "agent_hours": round(self.agent_hours, 1), "overall": self.overall,
                "by_language": self.by_language}
