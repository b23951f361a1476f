"""The static side of the agent pool: who exists, what they serve, what nobody serves.

The Redis pool only knows state; questions about the configured roster (which
endpoint is which agent, which entity/language pairs have no agent at all)
are answered here from the config, without Redis.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ari_app.config.models import Agent, HotlineConfig


@dataclass(frozen=True)
class Gap:
    """An entity/language pair with fewer than the wanted number of agents."""

    entity: str
    language: str
    agents: int


def entity_skills(cfg: HotlineConfig, entity_id: str) -> tuple[str, ...]:
    """The skills that mean "serves this entity directly" (its skill, and its id)."""
    e = cfg.entity(entity_id)
    return tuple(dict.fromkeys((e.skill_name, e.id)))


def matches(agent: Agent, skills: Iterable[str], languages: Iterable[str]) -> bool:
    return bool(set(agent.skills) & set(skills)) and bool(set(agent.languages) & set(languages))


class Roster:
    def __init__(self, agents: Sequence[Agent]):
        self.agents = list(agents)
        self.by_id = {a.id: a for a in self.agents}
        self.by_endpoint = {a.endpoint: a for a in self.agents}

    @classmethod
    def from_config(cls, cfg: HotlineConfig) -> Roster:
        return cls(cfg.agents)

    def serving(self, skills: Iterable[str], languages: Iterable[str]) -> list[Agent]:
        sk, lg = set(skills), set(languages)
        return [a for a in self.agents if matches(a, sk, lg)]

    def gaps(self, cfg: HotlineConfig, minimum: int = 1) -> list[Gap]:
        """Entity/language pairs that routing step 0 cannot serve with `minimum` agents.

        A caller in such a pair always waits for the widening steps; the
        config check reports them so staffing can fix it before go-live.
        """
        out: list[Gap] = []
        for e in cfg.entities:
            skills = entity_skills(cfg, e.id)
            for lang in cfg.languages:
                n = len(self.serving(skills, (lang.code,)))
                if n < minimum:
                    out.append(Gap(e.id, lang.code, n))
        return out
