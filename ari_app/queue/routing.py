"""Which agents may take a waiting caller, widening with the time waited.

The steps are cumulative: at step 2 the pool still prefers a step-0 agent
(same language, the entity's own skill) if one is free, and only otherwise
falls to the wider sets. `take` evaluates them in order in one script.
"""

from __future__ import annotations

from ari_app.agents.pool import CandidateQuery
from ari_app.agents.roster import entity_skills
from ari_app.config.models import HotlineConfig
from ari_app.config.queue import QueueSettings

__all__ = ["CandidateQuery", "next_step_in", "settings_of", "steps_for"]


def settings_of(cfg: HotlineConfig) -> QueueSettings:
    return cfg.queue


def steps_for(
    cfg: HotlineConfig,
    entity: str,
    language: str,
    waited_seconds: float,
    settings: QueueSettings | None = None,
) -> list[CandidateQuery]:
    """The candidate queries open after `waited_seconds`, narrowest first, no repeats."""
    s = settings or settings_of(cfg)
    r = s.routing_for(entity)
    site = s.site_for(entity)
    own = entity_skills(cfg, entity)
    sector = cfg.sector_of(entity)
    steps = [CandidateQuery(own, (language,), site, 0)]
    if waited_seconds >= r.sector_after and sector is not None:
        steps.append(CandidateQuery((*own, sector), (language,), site, 1))
    if waited_seconds >= r.fallback_language_after:
        langs = tuple(c for c in r.fallback_languages if c != language)
        if langs:
            steps.append(CandidateQuery(own, langs, site, 2))
    return steps


def next_step_in(
    cfg: HotlineConfig, entity: str, waited_seconds: float, settings: QueueSettings | None = None
) -> float | None:
    """Seconds until routing widens next, so a dispatcher can retry then; None if fully open."""
    r = (settings or settings_of(cfg)).routing_for(entity)
    marks = [r.fallback_language_after]
    if cfg.sector_of(entity) is not None:
        marks.append(r.sector_after)
    ahead = [m - waited_seconds for m in marks if m > waited_seconds]
    return min(ahead) if ahead else None
